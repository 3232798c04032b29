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
