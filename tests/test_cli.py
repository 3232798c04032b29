"""The command line, in process: outputs and one-line errors with exit code 2."""

import json

import pytest

from symcost.cli import main
from symcost.layers.base import REQUIRED


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cost_lenet5_json(capsys):
    code, out, err = run(capsys, "cost", "lenet5", "--format", "json")
    assert code == 0 and err == ""
    d = json.loads(out)
    assert (d["params"], d["activations"], d["input"], d["macs"]) == (61706, 8094, 1024, 416520)
    assert d["flops"] == sum(d["ops"].values())
    assert d["layers"][0]["flops"] == 235200 and d["layers"][0]["fma_ops"] == 122304
    assert d["memory_bytes"]["total"] == (61706 + 8094) * 4


def test_cost_symbolic_then_set(capsys):
    code, out, _ = run(capsys, "cost", "mnist_mlp", "--format", "json")
    assert code == 0 and json.loads(out)["params"] == "795*Nh + 10"
    code, out, _ = run(capsys, "cost", "mnist_mlp", "--set", "Nh=100", "--format", "json", "--dtype", "fp16")
    d = json.loads(out)
    assert d["params"] == 795 * 100 + 10 and d["memory_bytes"]["params"] == 2 * d["params"]


@pytest.mark.parametrize("fmt", ["table", "markdown", "latex"])
def test_formats(capsys, fmt):
    code, out, _ = run(capsys, "cost", "lenet5", "--format", fmt)
    assert code == 0 and "conv1" in out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["cost", "lenet6"], ["lenet5"]),
        (["cost", "mnist_mlp", "--set", "Nx=3"], ["Nx", "Nh"]),
        (["cost", "mnist_mlp", "--set", "Nh=2.5"], ["Nh"]),
        (["cost", "mnist_mlp", "--set", "Nh=__import__('os')"], ["Nh"]),
        (["cost", "mnist_mlp", "--set", "Nh"], ["NAME=VALUE"]),
        (["cost", "lenet5", "--dtype", "fp12"], ["fp12"]),
        (["bogus"], ["bogus"]),
    ],
)
def test_user_errors_are_one_line_exit_2(capsys, argv, words):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("symcost: error:")
    for w in words:
        assert w in err


def test_models_lists_every_builtin_on_one_short_line(capsys):
    from symcost.spec import builtin_names

    code, out, _ = run(capsys, "models")
    lines = out.splitlines()
    assert code == 0
    for name in builtin_names():
        assert sum(line.split()[0] == name for line in lines if line.strip()) == 1
    assert all(len(line) <= 100 for line in lines)


@pytest.mark.parametrize("columns", [200, 80, 60, 40])
def test_ops_lists_every_kind_with_its_arguments_and_defaults_within_the_terminal(capsys, monkeypatch, columns):
    from symcost.layers import REGISTRY, load_all
    from symcost.reference import default_text

    load_all()
    monkeypatch.setenv("COLUMNS", str(columns))
    code, out, _ = run(capsys, "ops")
    assert code == 0
    lines = out.splitlines()
    assert all(len(line) <= columns for line in lines), max(lines, key=len)
    names = [line.split()[0] for line in lines if line and not line[0].isspace()]
    flat = " ".join(out.split())  # wrapping breaks only between arguments
    for name, kind in REGISTRY.items():
        assert name in names, name
        for arg in kind.args:
            assert arg.name in flat if arg.default is REQUIRED else f"{arg.name}={default_text(arg)}" in flat


def test_ops_kind_prints_the_reference_of_one_kind(capsys, monkeypatch):
    from symcost.layers import get_kind
    from symcost.reference import default_text

    monkeypatch.setenv("COLUMNS", "100")
    code, out, err = run(capsys, "ops", "conv2d")
    assert code == 0 and err == ""
    flat = " ".join(out.split())
    kind = get_kind("conv2d")
    assert "rank 3" in out and "K·M1·N1·(C/G)·W·H" in out      # its input rank and its formula
    for arg in kind.args:
        assert " ".join(arg.doc.split()) in flat
        assert any(line.split()[:2] == [arg.name, default_text(arg)] for line in out.splitlines() if line.strip())
    arguments = out.split("What it counts:")[0]  # the docstring's formulas are printed as written
    assert all(len(line) <= 100 for line in arguments.splitlines())


def test_ops_of_an_unknown_kind_is_one_line_with_a_suggestion(capsys):
    code, out, err = run(capsys, "ops", "lineer")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("symcost: error:") and "did you mean 'linear'" in err


def test_torch_imports_from_the_current_directory(tmp_path, monkeypatch, capsys):
    """`symcost cost --torch mypkg.models:build` from the folder that holds mypkg, as `python -m`
    and pytest import (it used to need PYTHONPATH=.); the import path is left as it was."""
    import torch  # noqa: F401
    import sys

    pkg = tmp_path / "cwd_probe_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text("import torch.nn as nn\n\ndef build():\n    return nn.Linear(3, 5)\n")
    path = [p for p in sys.path if p not in ("", ".", str(tmp_path))]
    monkeypatch.setattr(sys, "path", list(path))
    monkeypatch.delitem(sys.modules, "cwd_probe_pkg", raising=False)
    monkeypatch.delitem(sys.modules, "cwd_probe_pkg.models", raising=False)
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "cost", "--torch", "cwd_probe_pkg.models:build", "--input", "3", "--format", "json")
    assert (code, err) == (0, "") and json.loads(out)["params"] == 3 * 5 + 5
    assert sys.path == path
    # from elsewhere: one line that says where it looked
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delitem(sys.modules, "cwd_probe_pkg", raising=False)
    monkeypatch.delitem(sys.modules, "cwd_probe_pkg.models", raising=False)
    code, out, err = run(capsys, "cost", "--torch", "cwd_probe_pkg.models:build", "--input", "3")
    assert code == 2 and err.count("\n") == 1
    assert "No module named 'cwd_probe_pkg'" in err and f"the current directory {elsewhere}" in err
    assert "PYTHONPATH" in err


ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def _env(unbuffered: bool) -> dict:
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    return env


def test_version_is_the_package_version(capsys):
    import sys
    import tomllib

    import symcost

    code, out, err = run(capsys, "--version")
    assert (code, out, err) == (0, f"symcost {symcost.__version__}\n", "")
    with open(ROOT / "pyproject.toml", "rb") as f:
        assert tomllib.load(f)["project"]["version"] == symcost.__version__
    import subprocess  # python -m symcost is the same command

    p = subprocess.run([sys.executable, "-m", "symcost", "--version"], capture_output=True, text=True,
                       env=_env(False), cwd=ROOT, timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (0, f"symcost {symcost.__version__}\n", "")


@pytest.mark.parametrize("argv, where", [
    (["cost", "lenet5", "--sett", "T=1"], "symcost cost"),
    (["derive", "lenet5", "--bogus"], "symcost derive"),
    (["--bogus", "cost", "lenet5"], "symcost"),
    (["cost", "lenet5", "--dtype", "fp12"], "symcost cost"),
])
def test_a_mistyped_flag_points_at_its_commands_help(capsys, argv, where):
    code, out, err = run(capsys, *argv)
    assert code == 2 and err.count("\n") == 1
    assert err.rstrip().endswith(f"(see '{where} --help')"), err


def test_every_subcommand_help_says_what_it_does(capsys):
    from symcost.cli import COMMANDS, build_parser

    build_parser()
    for name in COMMANDS:
        code, out, err = run(capsys, name, "--help")
        assert code == 0 and err == ""
        body = out.split("\n\n")[1]  # argparse: usage, blank line, description
        assert not body.startswith(("options:", "positional arguments:")), (name, out)
        assert len(body.split()) >= 3, (name, body)
    code, out, _ = run(capsys, "models", "--help")
    assert "built-in models" in out and "symcost cost lenet5" in out
    code, out, _ = run(capsys, "ops", "--help")
    assert "layer kinds" in out


@pytest.mark.parametrize("unbuffered", [False, True])
@pytest.mark.parametrize("argv", [["models"], ["cost", "lenet5", "--format", "json"]])
def test_a_full_disk_is_one_line_and_a_closed_pipe_is_quiet(argv, unbuffered):
    """stdout on /dev/full: one line, exit 2 (it was 'internal error', exit 1, or Python's
    'Exception ignored' and exit 120); a reader that has gone (symcost models | head -1): silent."""
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "symcost", *argv]
    with open("/dev/full", "w") as full:
        p = subprocess.run(cmd, stdout=full, stderr=subprocess.PIPE, text=True, env=_env(unbuffered), timeout=120)
    assert (p.returncode, p.stderr) == (2, "symcost: error: cannot write output: No space left on device\n")
    read, write = os.pipe()
    os.close(read)  # the reader has gone before the first byte
    try:
        p = subprocess.run(cmd, stdout=write, stderr=subprocess.PIPE, text=True, env=_env(unbuffered), timeout=120)
    finally:
        os.close(write)
    assert (p.returncode, p.stderr) == (0, "")
    p = subprocess.run(" ".join(cmd) + " >&-", shell=True, stderr=subprocess.PIPE, text=True,
                       env=_env(unbuffered), timeout=120)  # started with stdout closed
    assert (p.returncode, p.stderr) == (2, "symcost: error: cannot write output: standard output is closed\n")


def test_the_benchmarks_rewrite_the_tracked_docs_only_when_asked(tmp_path, monkeypatch):
    """`python tests/benchmarks/run.py`, as the README says to run it, rewrote docs/performance.md."""
    import importlib.util

    monkeypatch.syspath_prepend(str(ROOT / "tests" / "benchmarks"))
    spec = importlib.util.spec_from_file_location("bench_run_probe", ROOT / "tests" / "benchmarks" / "run.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n", encoding="utf-8")
    monkeypatch.setattr(bench, "DOC", doc)
    monkeypatch.setattr(bench, "ROOT", tmp_path)
    monkeypatch.setattr(bench, "machine", lambda: "a machine")
    for name in ("bench_derive", "bench_growth", "bench_sweep", "bench_startup", "bench_refuse"):
        monkeypatch.setattr(bench, name, lambda table, notes, quick: table.add("b", "1 ms", "x", "2 ms", "0.5×", "t", True))
    assert bench.main([]) == 0
    assert doc.read_text(encoding="utf-8") == "# Performance\n"
    assert bench.main(["--write-docs"]) == 0
    assert "| b | 1 ms |" in doc.read_text(encoding="utf-8") and "run.py --write-docs" in doc.read_text(encoding="utf-8")
    with pytest.raises(SystemExit):
        bench.main(["--write-docs", "--only", "sweep"])


def test_a_convention_with_a_sweep_is_refused_not_ignored(capsys):
    """--convention used to return before --sweep was read: the sweep was dropped with exit 0."""
    code, out, err = run(capsys, "cost", "gpt2", "--convention", "kaplan", "--sweep", "T=128,256")
    assert code == 2 and out == "" and err.count("\n") == 1 and "--convention and --sweep" in err
