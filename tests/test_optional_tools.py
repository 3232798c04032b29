"""The suite's skip policy: tests that need pdflatex or Chromium skip, with the reason, on a
machine without them (the README's test command passes there), and no other skip is allowed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from optional_tools import ALLOWED_SKIPS, TOOLS, reason

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _path_without_tools(tmp_path: Path) -> str:
    """A PATH with every executable of the current one except the optional tools' (a folder of
    symlinks), as on a fresh machine where they were never installed."""
    hidden = {name for names, _ in TOOLS.values() for name in names}
    farm = tmp_path / "bin"
    farm.mkdir()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or not os.path.isdir(folder):
            continue
        for entry in os.scandir(folder):
            target = farm / entry.name
            if entry.name not in hidden and not target.exists():
                target.symlink_to(entry.path)
    return str(farm)


def _pytest(tmp_path, *args, env_path=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS), os.environ.get("PYTHONPATH", "")]))
    if env_path is not None:
        env["PATH"] = env_path
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_tests_that_need_pdflatex_or_chromium_skip_with_their_reason_when_those_are_absent(tmp_path):
    run = _pytest(tmp_path, "-m", "optional_tool", "tests", env_path=_path_without_tools(tmp_path))
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert " failed" not in out and " error" not in out, out[-3000:]
    for tool in TOOLS:
        assert reason(tool) in out, f"no test skipped for want of {tool}:\n{out[-3000:]}"
    assert " passed" not in out.splitlines()[-1], "a test marked optional_tool ran without its tool"


def test_every_use_of_an_optional_tool_is_marked(tmp_path):
    """A test that calls pdflatex or Chromium without @requires would fail, not skip, without them:
    with the tools hidden, everything *not* marked optional_tool still passes untouched by them."""
    import ast

    hidden = _path_without_tools(tmp_path)
    tools = [n for names, _ in TOOLS.values() for n in names]
    ids = []  # the tests whose own source names a tool (their helpers are covered by the grep of the file)
    for f in sorted(TESTS.glob("test_*.py")):
        text = f.read_text(encoding="utf-8")
        if f.name == Path(__file__).name or not any(n in text for n in tools):
            continue
        helpers = {d.name for d in ast.parse(text).body if isinstance(d, ast.FunctionDef)
                   and not d.name.startswith("test_") and any(n in ast.get_source_segment(text, d) for n in tools)}
        for d in ast.parse(text).body:
            if isinstance(d, ast.FunctionDef) and d.name.startswith("test_"):
                body = ast.get_source_segment(text, d)
                if any(n in body for n in [*tools, *helpers]):
                    ids.append(f"{f.relative_to(ROOT)}::{d.name}")
    assert ids, "no test names an optional tool: nothing to check"
    run = _pytest(tmp_path, "-m", "not optional_tool", *ids, env_path=hidden)
    out = run.stdout + run.stderr
    assert run.returncode in (0, 5), out[-3000:]  # 5: every such test is marked (none left to run)


def test_a_skip_that_is_not_allowed_fails_the_run(tmp_path):
    case = tmp_path / "test_case.py"
    case.write_text(
        "import pytest\n"
        "def test_quiet():\n    pytest.skip('torch failed to import')\n"
        "def test_fine():\n    pass\n", encoding="utf-8")
    run = _pytest(tmp_path, "-p", "conftest", str(case))
    assert run.returncode == 1, run.stdout
    assert "skips that are not allowed" in run.stdout and "torch failed to import" in run.stdout


def test_a_module_skipped_at_import_fails_the_run(tmp_path):
    case = tmp_path / "test_module.py"
    case.write_text("import pytest\nnp = pytest.importorskip('no_such_module_symcost')\n"
                    "def test_x():\n    pass\n", encoding="utf-8")
    run = _pytest(tmp_path, "-p", "conftest", str(case))
    assert run.returncode == 1, run.stdout
    assert "no_such_module_symcost" in run.stdout


@pytest.mark.parametrize("allowed", ALLOWED_SKIPS)
def test_the_allowed_skips_pass(tmp_path, allowed):
    case = tmp_path / "test_allowed.py"
    case.write_text(f"import pytest\ndef test_tool():\n    pytest.skip({allowed!r})\n", encoding="utf-8")
    run = _pytest(tmp_path, "-p", "conftest", str(case))
    assert run.returncode == 0, run.stdout
