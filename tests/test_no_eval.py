"""No path in the package evaluates user text: a static grep, and a run with the evaluators booby-trapped.

sympy's text parsing (``sympify``, ``S("...")``, ``parse_expr``) runs Python's ``eval``; ``yaml.load``
with a full loader builds arbitrary objects.  Every size a user writes must go through
``symcost.sizes.parse_size`` instead.  The grep fails on any hit that is not in ``ALLOWED`` below (a
``# safe: ...`` comment in the source is documentation, not permission).
"""

import io
import re
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import sympy

import symcost
from symcost.cli import main

PACKAGE = Path(symcost.__file__).parent

#: What is refused, by name: the regex finds the call or the attribute.
PATTERNS = {
    "eval(": r"(?<![\w.])eval\s*\(",
    "exec(": r"(?<![\w.])exec\s*\(",
    "sympify(": r"sympify\s*\(",
    "S(": r"(?<![\w])S\s*\(",
    "parse_expr(": r"parse_expr\s*\(",
    "yaml.load(": r"yaml\.(load|load_all|full_load|full_load_all)\s*\(",
    "yaml.unsafe_load": r"yaml\.unsafe_load",
    "yaml.Loader": r"yaml\.(Loader|FullLoader|UnsafeLoader)\b",
    "__import__": r"__import__",
    "compile(": r"(?<![\w.])compile\s*\(",
    "pickle": r"\b(pickle|marshal|shelve)\b",
    "subprocess/os.system": r"\bsubprocess\b|os\.system|os\.popen",
    "import_module(": r"import_module\s*\(",
}

#: (file relative to the package, pattern name, text on the line) -> why it is safe.
ALLOWED = {
    ("spec.py", "yaml.load(", "yaml.load(text, Loader=_Loader)"):
        "_Loader subclasses yaml.SafeLoader (no python/* tags); test_hostile checks !!python tags are refused",
    ("layers/__init__.py", "import_module(", 'importlib.import_module(f"{__name__}.{family}")'):
        "the fixed family names of FAMILIES, never user text",
    ("cli/torch_input.py", "import_module(", "importlib.import_module(modname)"):
        "--torch MODULE:FACTORY imports the user's own PyTorch code by design (the one option that runs code; "
        "no spec can reach it; private/dunder attributes are refused)",
}

#: sympify(x, strict=True) never parses text (it raises SympifyError on a str: checked below), so it
#: is allowed wherever it appears.
STRICT_SYMPIFY = re.compile(r"sympify\s*\([^#]*strict\s*=\s*True")


def hits():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name, pattern in PATTERNS.items():
                if not re.search(pattern, line):
                    continue
                if name == "sympify(" and STRICT_SYMPIFY.search(line):
                    continue
                if any(f == rel and n == name and text in line for (f, n, text) in ALLOWED):
                    continue
                found.append(f"{rel}:{lineno}: {name}: {line.strip()}")
    return found


def test_no_evaluator_outside_the_allow_list():
    found = hits()
    assert not found, "evaluators of text in the package (use symcost.sizes.parse_size):\n" + "\n".join(found)


def test_allow_list_entries_still_match_something():
    """A stale allow-list entry would silently allow a future line: every entry must match a real line."""
    for (rel, name, text), reason in ALLOWED.items():
        assert reason
        source = (PACKAGE / rel).read_text(encoding="utf-8")
        assert any(text in line and re.search(PATTERNS[name], line) for line in source.splitlines()), (rel, text)


def test_the_grep_finds_what_it_must():
    """The patterns are not vacuous: each catches the forbidden form and passes look-alikes."""
    must_hit = {
        "eval(": "x = eval(text)", "exec(": "exec(code)", "sympify(": "sympy.sympify(s)", "S(": "sympy.S('x')",
        "parse_expr(": "parse_expr(s)", "yaml.load(": "yaml.load(f)", "yaml.unsafe_load": "yaml.unsafe_load(f)",
        "yaml.Loader": "Loader=yaml.Loader", "__import__": "__import__('os')", "compile(": "compile(s, 'f', 'eval')",
        "pickle": "import pickle", "subprocess/os.system": "os.system('x')",
        "import_module(": "importlib.import_module(name)",
    }
    for name, line in must_hit.items():
        assert re.search(PATTERNS[name], line), name
    for line in ["re.compile('x')", "model.eval()", "literal = 'EVAL'", "ops(mul=1)", "yaml.SafeLoader"]:
        assert not any(re.search(p, line) for p in PATTERNS.values()), line
    assert STRICT_SYMPIFY.search("v = sympy.sympify(d, strict=True).xreplace(values)")
    assert not STRICT_SYMPIFY.search("v = sympy.sympify(d)  # strict=True")
    with pytest.raises(sympy.SympifyError):
        sympy.sympify("__import__('os')", strict=True)


@pytest.fixture
def trapped(monkeypatch):
    """Make sympy's text evaluator fail loudly (sympify, S(), Max(x, "y"), x.subs("x", ...) all reach it)."""
    import sympy.parsing.sympy_parser as parser

    calls = []

    def trap(*args, **kwargs):
        calls.append(args[:1])
        raise AssertionError(f"text evaluator called with {args[:1]!r}")

    monkeypatch.setattr(parser, "parse_expr", trap)
    monkeypatch.setattr(parser, "eval_expr", trap)
    return calls


RUNS = [
    ["cost", "lenet5", "--format", "json"],
    ["cost", "mnist_mlp", "--set", "Nh=2*K + 1", "--set", "K=4", "--format", "markdown"],
    ["cost", "mnist_mlp", "--set", "Nh=__import__('os').system('true')"],
    ["cost", "mnist_mlp", "--set", "Nh=max(3, floor(10/3))", "--format", "latex"],
    ["cost", "cnn_autoencoder", "--batch", "B"],
    ["cost", "dnn_autoencoder"],
    ["cost", "input: ['__import__(\"os\")']\nlayers: [{relu: {}}]\n"],
    ["cost", "input: [C, M, N]\nlayers: [{conv2d: {out_channels: K, kernel_size: 'W', stride: 'S'}}]\n",
     "--set", "M=4", "--set", "W=5", "--set", "C=1", "--set", "N=8", "--set", "K=2", "--set", "S=1"],
]


def test_the_trap_catches_sympy_parsing_text(trapped):
    x = sympy.Symbol("x")
    for attempt in (lambda: sympy.sympify("x"), lambda: sympy.Max(x, "y"), lambda: x.subs("x", "y")):
        with pytest.raises(Exception):
            attempt()
    assert len(trapped) == 3


@pytest.mark.parametrize("argv", RUNS, ids=range(len(RUNS)))
def test_runs_never_reach_a_text_evaluator(trapped, argv):
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()) as err:
        code = main(argv)
    assert not trapped, trapped
    assert code in (0, 2), err.getvalue()
