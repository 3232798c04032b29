"""Sweeps: ranges, exact evaluation over grids (int64 and Python ints), the CLI."""

import csv
import io
import json

import numpy as np
import pytest
import sympy

import symcost
from symcost.cli import main
from symcost.sweep import INT64_SAFE, Compiled, SweepError, _bound, _integerize, parse_range, parse_sweeps, sweep
from symcost.sizes import symbol

T, H = symbol("T"), symbol("H")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "text, values",
    [
        ("16:4096:x2", [16 * 2**i for i in range(9)]),
        ("16:100:x2", [16, 32, 64]),
        ("1:1000:x10", [1, 10, 100, 1000]),
        ("0:20:+5", [0, 5, 10, 15, 20]),
        ("3:10:+4", [3, 7]),
        ("8, 16,64", [8, 16, 64]),
        ("128", [128]),
    ],
)
def test_ranges(text, values):
    assert parse_range(text) == values


@pytest.mark.parametrize(
    "text", ["", "1:2", "1:2:3:4", "16:8:x2", "1:10:x1", "1:10:*0", "0:10:x2", "1:10:+0", "1:10:-1",
             "1:10:y2", "a,b", "__import__('os')", "1e3", "2**10", "1:100000000:+1", "-5"],
)
def test_bad_ranges_are_errors(text):
    with pytest.raises(SweepError):
        parse_range(text, "T")


def test_parse_sweeps():
    assert parse_sweeps(["T=1,2", "H=4:8:x2"]) == {"T": [1, 2], "H": [4, 8]}
    for bad in (["T"], ["T=1", "T=2"], ["=1,2"], ["1T=3"]):
        with pytest.raises(symcost.SymcostError):
            parse_sweeps(bad)


def rnn_model():
    m = symcost.Model("rnn", inputs={"x": ["T", "I"]})
    m.add("rnn", hidden_size="H")
    return m


def test_rnn_grid_matches_torch_params_and_the_slides_macs():
    import torch
    r = rnn_model().cost().subs(I=3)
    res = sweep(r, {"T": [1, 7, 64], "H": [2, 5]}, fields=["params", "macs", "steps"])
    assert res.sizes == {"T": [1, 1, 7, 7, 64, 64], "H": [2, 5, 2, 5, 2, 5]}   # first size slowest
    for t, h, params, macs, steps in zip(res.sizes["T"], res.sizes["H"], *res.fields.values()):
        assert params == sum(p.numel() for p in torch.nn.RNN(3, h).parameters())
        assert macs == t * (3 * h + h * h)          # the slides' (I×H + H×H)·T
        assert steps == t                           # one step per time step


def test_strided_conv_floors_are_exact():
    m = symcost.Model("conv", inputs={"x": ["C", "T"]})
    m.add("conv1d", out_channels="H", kernel_size="K", stride="S", padding="P")
    r = m.cost().subs(C=3, K=5, H=4)
    res = sweep(r, {"T": list(range(5, 40)), "S": [1, 2, 3], "P": [0, 1, 2]}, fields=["macs", "activations"])
    for t, s, p, macs, act in zip(res.sizes["T"], res.sizes["S"], res.sizes["P"], *res.fields.values()):
        out = (t + 2 * p - 5) // s + 1     # PyTorch's output length
        assert macs == 4 * out * 3 * 5 and act == 4 * out


def test_values_beyond_int64_are_exact_python_ints():
    m = symcost.Model("wide", inputs={"x": ["T", "I"]})
    m.add("flatten", start_dim=0)
    m.add("linear", out_features="H")
    r = m.cost().subs(I=10**6)
    t, h = 10**9, [10**6, 10**12]
    res = sweep(r, {"T": [t], "H": h}, fields=["macs", "params"])
    assert res.fields["macs"] == [t * 10**6 * x for x in h]
    assert res.fields["params"] == [t * 10**6 * x + x for x in h]
    assert res.fields["macs"][1] > 2**63 and all(type(v) is int for v in res.fields["macs"])


def test_int64_path_is_chosen_only_when_the_bound_proves_it_fits():
    expr = T**3 * H + sympy.floor(T / 3) * sympy.Max(H, 2)
    c = Compiled("x", expr, (T, H))
    assert c.fits_int64({T: 1000, H: 1000})
    assert not c.fits_int64({T: 2**21, H: 2**2})        # T³ alone is 2^63
    # the bound is an upper bound of the true magnitudes
    num, den = _integerize(expr)
    assert den == 1 and _bound(num, {T: 1000, H: 1000}) >= 1000**4 + 1000 * 1000 // 3
    small = c.values([np.array([999, 1000], dtype=np.int64), np.array([1, 1000], dtype=np.int64)], 2)
    assert [int(v) for v in small] == [999**3 + 333 * 2, 1000**4 + 333 * 1000]
    assert INT64_SAFE <= 2**63


def test_rational_coefficients_divide_exactly():
    expr = T * (T + 1) / 2 + sympy.ceiling(T / 4)
    c = Compiled("tri", expr, (T,))
    vals = c.values([np.arange(1, 50, dtype=np.int64)], 49)
    assert [int(v) for v in vals] == [t * (t + 1) // 2 + -(-t // 4) for t in range(1, 50)]


def test_unswept_sizes_and_bad_points_are_errors():
    r = rnn_model().cost()
    with pytest.raises(symcost.SymbolError, match="I"):
        sweep(r, {"T": [1, 2]}, fields=["macs"])
    with pytest.raises(symcost.SymbolError, match="Q"):
        sweep(r, {"Q": [1, 2]})
    with pytest.raises(SweepError, match="both set and swept"):
        sweep(r.subs(T=3), {"T": [1]})
    m = symcost.Model("conv", inputs={"x": [1, "T"]})
    m.add("conv1d", out_channels=2, kernel_size=5)
    with pytest.raises(symcost.ShapeError, match="T=3"):
        sweep(m.cost(), {"T": [8, 3]})


def test_cli_sweep_csv_and_table(capsys):
    code, out, err = run(capsys, "cost", "mnist_mlp", "--sweep", "Nh=10:40:+10", "--format", "csv",
                         "--fields", "params,macs")
    assert code == 0 and err == ""
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [int(r["Nh"]) for r in rows] == [10, 20, 30, 40]
    for r in rows:   # 784 -> Nh -> 10 with biases, checked by hand
        nh = int(r["Nh"])
        assert int(r["params"]) == 784 * nh + nh + nh * 10 + 10 and int(r["macs"]) == 784 * nh + 10 * nh
    code, out, _ = run(capsys, "cost", "mnist_mlp", "--sweep", "Nh=16:64:x2")
    assert code == 0 and "Nh" in out and "50,890" in out   # 784·64 + 64·10 = 50,816 MACs; params 50,890
    code, out, _ = run(capsys, "cost", "mnist_mlp", "--sweep", "Nh=16,32", "--format", "json")
    assert [p["params"] for p in json.loads(out)["points"]] == [784 * n + n + 10 * n + 10 for n in (16, 32)]


def test_cli_csv_without_sweep_is_per_layer(capsys):
    code, out, _ = run(capsys, "cost", "lenet5", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0]["layer"] == "conv1" and int(rows[0]["params"]) == 156
    assert rows[-1]["layer"] == "total" and int(rows[-1]["params"]) == 61706
    assert sum(int(r["macs"]) for r in rows[:-1]) == int(rows[-1]["macs"])


@pytest.mark.parametrize(
    "argv, word",
    [
        (["cost", "mnist_mlp", "--sweep", "Nh=1:10:x1"], "factor"),
        (["cost", "mnist_mlp", "--sweep", "Nh=__import__('os')"], "Nh"),
        (["cost", "mnist_mlp", "--sweep", "Nx=1,2"], "Nx"),
        (["cost", "mnist_mlp", "--sweep", "Nh=1,2", "--fields", "macz"], "macs"),
        (["cost", "mnist_mlp", "--sweep", "Nh=1,2", "--format", "latex"], "latex"),
    ],
)
def test_cli_sweep_errors_are_one_line(capsys, argv, word):
    code, out, err = run(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and word in err


def test_report_sweep_method_is_the_same_sweep():
    r = rnn_model().cost().subs(I=4)
    with pytest.raises(symcost.SymbolError, match="H"):
        r.sweep({"T": [2, 3]})
    res = r.sweep({"T": [2, 3], "H": [8]}, fields=["macs"])
    assert res.fields["macs"] == [t * (4 * 8 + 8 * 8) for t in (2, 3)]


def _linear(out_features):
    m = symcost.Model("lin", inputs={"x": ["H"]})
    m.add("linear", out_features=out_features, id="lin")
    return m.cost()


def test_every_output_dimension_is_checked_at_every_point_not_only_conditions():
    """out_features H - 5 printed params -16 and 0 for H=1, 5 with exit 0."""
    r = _linear("H-5")
    assert r.conditions == []          # no layer condition: only the output dimension can catch it
    with pytest.raises(symcost.ShapeError, match=r"layer 'lin'.*H - 5 is 0 at the sweep's point H=5"):
        sweep(r, {"H": [6, 5, 7]})
    assert sweep(r, {"H": [6, 7]}, fields=["params"]).fields["params"] == [6 * 1 + 1, 7 * 2 + 2]


def test_a_zero_divisor_at_a_point_is_reported_without_numpy_warnings():
    import warnings

    r = _linear("12//(H-2)")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(symcost.ShapeError, match=r"division by zero.*H - 2.*H=2"):
            sweep(r, {"H": [3, 2]})
        with pytest.raises(symcost.ShapeError, match=r"is 0 at the sweep's point H=15"):
            sweep(r, {"H": [3, 15]})


def test_the_first_failing_point_is_reported_whichever_check_fails_first():
    m = symcost.Model("two", inputs={"x": ["H"]})
    m.add("linear", out_features="H-5", id="a")
    m.add("linear", out_features="H-1", id="b")
    with pytest.raises(symcost.ShapeError, match=r"layer 'a'.*H=3"):
        sweep(m.cost(), {"H": [9, 3, 1]})     # H=3 breaks a (first point); H=1 would break b too


def test_conditions_with_fractions_are_compared_exactly():
    """multihead attention: 1 − frac(E/h) >= 1, i.e. h divides E: E=12, h=5 is refused, h=4 and 6 pass."""
    m = symcost.Model("att", inputs={"x": ["T", "E"]})
    m.add("multihead_attention", num_heads="h", id="att")
    r = m.cost().subs(T=3)
    assert sweep(r, {"E": [12], "h": [4, 6]}, fields=["params"]).fields["params"] == [4 * 12 * 12 + 4 * 12] * 2
    with pytest.raises(symcost.ShapeError, match=r"layer 'att'.*E=12, h=5"):
        sweep(r, {"E": [12], "h": [4, 5]})


def test_swept_values_are_whole_numbers():
    r = _linear("H")
    for bad in ([2.5], [True], [-1]):
        with pytest.raises(SweepError, match="whole numbers"):
            sweep(r, {"H": bad})


def test_a_size_with_a_default_can_be_swept():
    r = symcost.load("gpt2").cost().subs(n_layer=1, d_model=8, n_head=2, n_vocab=5, n_ctx=4, T=4)
    res = sweep(r, {"d_ff": [8, 16]}, fields=["params"])
    with_default = r.params                     # d_ff = 4*d_model = 32
    # each block has two d_model x d_ff linears (with biases d_ff and d_model): params grow 2·8 + 1 per unit of d_ff
    assert [with_default - (32 - f) * (2 * 8 + 1) for f in (8, 16)] == res.fields["params"]
    with pytest.raises(SweepError, match="both set and swept"):
        sweep(r, {"T": [1]})


def test_memory_fields_use_the_contracts_name(capsys):
    code, out, err = run(capsys, "cost", "mnist_mlp", "--sweep", "Nh=1,2", "--format", "json",
                         "--fields", "memory_bytes.params,memory_bytes.total,activations")
    assert code == 0, err
    points = json.loads(out)["points"]
    assert [p["memory_bytes.params"] for p in points] == [4 * (795 * n + 10) for n in (1, 2)]
    assert all(p["memory_bytes.total"] == 4 * (p["activations"] + 795 * n + 10) for p, n in zip(points, (1, 2)))
    code, out, err = run(capsys, "cost", "mnist_mlp", "--sweep", "Nh=1", "--fields", "memory.total")
    assert code == 2 and "memory_bytes.total" in err
