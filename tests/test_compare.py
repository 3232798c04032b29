"""`symcost compare`: the lecture's table "Complexity vs. parameter count", derived from the zoo.

The expected expressions are typed from the slides (seed 001, last slides), in their notation
(T time, H hidden channels, I input channels, K kernel width; Kt × Kf for the 2-D kernel over
T frames × F frequency bins), and compared mathematically (expanded difference), never as text:

    Model      Complexity          Parameter count          Time scaling
    DNN        T×I×H               T×I×H                    Fixed
    CNN (1D)   T×H×I×K             H×I×K                    T
    CNN (2D)   T×H×I×Kt×Kf (×F)    H×I×Kt×Kf                T
    RNN        T×(I×H + H×H)       I×H + H×H                T
    Attention  T_self×T_cross×H    I×H + H×I + I×H + H×I    T_self × T_cross

The slides leave biases out: ``--no-bias`` matches them term for term; the default view adds
exactly the bias vectors PyTorch's modules have.  Attention's "complexity" is one dot-product
stage (the slides' D×N×M); the model has two (scores, then the weighted sum of the values) and
the four projections, so its MACs are 2·T²·H + T·(4·I·H), led by 2·T²·H.
"""

import json

import pytest
import sympy

from symcost.cli import main
from symcost.sizes import parse_size, symbol


def expr(text):
    return parse_size(str(text))   # the restricted grammar, never sympify


def equal(a, b):
    return sympy.expand(expr(a) - expr(b)) == 0


SLIDES = {
    #  model        MACs (complexity)         params (slides)           time scaling
    "dnn": ("T*I*H", "T*I*H", "fixed"),
    "cnn1d": ("T*H*I*K", "H*I*K", "T"),
    "cnn2d": ("T*F*H*I*Kt*Kf", "H*I*Kt*Kf", "T"),
    "rnn": ("T*(I*H + H*H)", "I*H + H*H", "T"),
    "attention": ("T*(I*H + H*I + I*H + H*I) + 2*T*T*H", "I*H + H*I + I*H + H*I", "T²"),
}
LEADING = {"dnn": "T*I*H", "cnn1d": "T*H*I*K", "cnn2d": "T*F*H*I*Kt*Kf", "rnn": "T*(I*H + H*H)",
           "attention": "2*T*T*H"}
STEPS = {"dnn": "1", "cnn1d": "1", "cnn2d": "1", "rnn": "T", "attention": "3"}


def compare_json(capsys, *argv):
    code = main(["compare", *argv, "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return {row["model"]: row for row in json.loads(out)}


def test_no_bias_view_is_the_slides_table_term_for_term(capsys):
    rows = compare_json(capsys, *SLIDES, "--in", "T", "--no-bias")
    assert list(rows) == list(SLIDES)
    for name, (macs, params, verdict) in SLIDES.items():
        row = rows[name]
        assert equal(row["macs"], macs), name
        assert equal(row["params"], params), name
        assert row["time_scaling"] == verdict, name
        assert equal(row["macs_leading"], LEADING[name]), name
        assert equal(row["steps"], STEPS[name]), name
    assert rows["attention"]["macs_order"] == "Θ(T²)" and rows["rnn"]["steps_order"] == "Θ(T)"
    assert rows["cnn1d"]["steps_order"] == "Θ(1)" and rows["dnn"]["params_order"] == "Θ(T)"


def bias_vectors(name, s):
    """Elements of the bias vectors of the PyTorch modules the zoo model stands for."""
    import torch
    nn = torch.nn
    I, H, T = s["I"], s["H"], s["T"]
    modules = {
        "dnn": lambda: [nn.Linear(T * I, H)],
        "cnn1d": lambda: [nn.Conv1d(I, H, s["K"], padding="same")],
        "cnn2d": lambda: [nn.Conv2d(I, H, (s["Kt"], s["Kf"]), padding="same")],
        "rnn": lambda: [nn.RNN(I, H)],
        "attention": lambda: [nn.Linear(I, H), nn.Linear(I, H), nn.Linear(I, H), nn.Linear(H, I)],
    }[name]()
    return sum(p.numel() for m in modules for n, p in m.named_parameters() if "bias" in n)


def test_default_view_differs_by_exactly_the_bias_vectors(capsys):
    with_bias = compare_json(capsys, *SLIDES, "--in", "T")
    sizes = dict(T=11, I=3, H=5, K=3, Kt=3, Kf=5, F=7)
    for name, (macs, params, verdict) in SLIDES.items():
        row = with_bias[name]
        assert equal(row["macs"], macs), name      # MACs never include biases
        assert row["time_scaling"] == verdict
        extra = (expr(row["params"]) - expr(params)).xreplace({symbol(k): v for k, v in sizes.items()})
        assert extra == bias_vectors(name, sizes), name


def test_cross_attention_scales_as_t_self_times_t_cross(capsys):
    rows = compare_json(capsys, "cross_attention", "attention", "rnn", "--in", "T_self,T_cross", "--in", "T",
                        "--no-bias")
    cross = rows["cross_attention"]
    assert cross["time_scaling"] == "T_self·T_cross"
    assert equal(cross["macs_leading"], "2*T_self*T_cross*H")
    assert equal(cross["params"], "I*H + H*I + I*H + H*I")
    assert rows["attention"]["time_scaling"] == "T²" and rows["rnn"]["time_scaling"] == "T"


def test_set_substitutes_where_a_model_has_the_size(capsys):
    rows = compare_json(capsys, "rnn", "cnn1d", "--in", "T", "--set", "H=4", "--set", "K=3")
    assert equal(rows["rnn"]["macs"], "T*(I*4 + 16)") and equal(rows["cnn1d"]["macs"], "T*4*I*3")
    assert rows["rnn"]["time_scaling"] == "T"


def test_markdown_table_of_the_done_criterion(capsys):
    code = main(["compare", "dnn", "cnn1d", "cnn2d", "rnn", "attention", "--in", "T", "--format", "markdown"])
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].startswith("| model |") and "time scaling" in lines[0]
    assert len(lines) == 2 + 5 and lines[2].startswith("| dnn |") and lines[2].endswith("| fixed |")


@pytest.mark.parametrize("fmt", ["table", "latex"])
def test_other_formats(capsys, fmt):
    code = main(["compare", "rnn", "attention", "--in", "T", "--format", fmt])
    out = capsys.readouterr().out
    assert code == 0 and "rnn" in out and "attention" in out


@pytest.mark.parametrize(
    "argv, word",
    [
        (["compare", "rnn", "--in", "Q"], "Q"),
        (["compare", "rnn", "--in", "T", "--set", "Zz=3"], "Zz"),
        (["compare", "rnnn", "--in", "T"], "rnn"),
        (["compare", "rnn"], "--in"),
        (["compare", "rnn", "--in", "T", "--set", "H=0"], "H"),
        (["compare", "rnn", "cross_attention", "--in", "T,T_self", "--plot", "x.png"], "--plot"),
    ],
)
def test_user_errors_are_one_line(capsys, argv, word):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("symcost: error:") and word in err


def test_compare_html_page_is_self_contained_mathml(capsys):
    from symcost.cli import main

    code = main(["compare", "dnn", "rnn", "attention", "--in", "T", "--format", "html", "--no-bias"])
    page = capsys.readouterr().out
    assert code == 0 and page.startswith("<!DOCTYPE html>")
    fetchable = page.replace('xmlns="http://www.w3.org/1998/Math/MathML"', "")  # a namespace, not a fetch
    assert "<script" not in page.lower() and "http" not in fetchable and "$" not in page and "\\cdot" not in page
    rows = page.split("<tr>")[2:]  # header row first
    assert [r.split("<code>")[1].split("</code>")[0] for r in rows] == ["dnn", "rnn", "attention"]
    assert all(r.count("<math") >= 6 for r in rows)
    assert rows[0].rstrip().endswith("<td>fixed</td></tr>")   # dnn: parameters grow with T
    assert "--no-bias --format html" in page                    # the footer names the command
