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


#: The zoo's spec names, which label the rows (compare shows a spec's ``name:``, not its file name).
NAMES = {"dnn": "DNN", "cnn1d": "CNN (1D)", "cnn2d": "CNN (2D)", "rnn": "RNN", "attention": "Attention",
         "cross_attention": "Cross-attention", "lstm": "LSTM"}


def compare_json(capsys, *argv):
    """The rows of ``compare ... --format json``, keyed by the zoo name of each model."""
    code = main(["compare", *argv, "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    by_name = {v: k for k, v in NAMES.items()}
    return {by_name[row["model"]]: row for row in json.loads(out)}


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
    assert len(lines) == 2 + 5 and lines[2].startswith("| DNN |") and lines[2].endswith("| fixed |")


@pytest.mark.parametrize("fmt", ["table", "latex"])
def test_other_formats(capsys, fmt):
    code = main(["compare", "rnn", "attention", "--in", "T", "--format", fmt])
    out = capsys.readouterr().out
    assert code == 0 and "RNN" in out and "Attention" in out


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
    assert [r.split("<code>")[1].split("</code>")[0] for r in rows] == ["DNN", "RNN", "Attention"]
    assert all(r.count("<math") >= 6 for r in rows)
    assert rows[0].rstrip().endswith("<td>fixed</td></tr>")   # dnn: parameters grow with T
    assert "--no-bias --format html" in page                    # the footer names the command


# --------------------------------------------------------------------------- labels, -o, numbers

ONE_LINEAR = "input: [T, {n}]\nlayers:\n  - linear: {{out_features: {n}}}\n"


def compare_rows(capsys, *argv):
    code = main(["compare", *argv, "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return [row["model"] for row in json.loads(out)]


def test_rows_are_labelled_by_the_specs_names(tmp_path, capsys):
    named = tmp_path / "file_name.yaml"
    named.write_text("name: My model\n" + ONE_LINEAR.format(n=3))
    unnamed = tmp_path / "unnamed_spec.yaml"
    unnamed.write_text(ONE_LINEAR.format(n=3))
    assert compare_rows(capsys, str(named), str(unnamed), "rnn", "--in", "T") == ["My model", "unnamed_spec", "RNN"]


def test_equal_names_are_told_apart(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for d in (a, b):
        (d / "rnn.yaml").write_text("name: RNN\n" + ONE_LINEAR.format(n=3))
    (a / "other.yaml").write_text("name: RNN\n" + ONE_LINEAR.format(n=3))
    labels = compare_rows(capsys, "rnn", str(a / "other.yaml"), str(a / "rnn.yaml"), str(b / "rnn.yaml"), "--in", "T")
    assert labels[:2] == ["RNN (rnn)", "RNN (other)"]                  # the built-in and the file stem
    assert labels[2:] == [f"RNN ({a / 'rnn.yaml'})", f"RNN ({b / 'rnn.yaml'})"]   # same stem: the paths
    labels = compare_rows(capsys, "rnn", "rnn", "--in", "T")
    assert labels == ["RNN [1]", "RNN [2]"]                            # the same model twice: numbered


def test_output_writes_the_table_to_a_file(tmp_path, capsys):
    out = tmp_path / "table.md"
    assert main(["compare", "rnn", "attention", "--in", "T", "--format", "markdown", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed == ""
    assert main(["compare", "rnn", "attention", "--in", "T", "--format", "markdown"]) == 0
    assert out.read_text(encoding="utf-8") == capsys.readouterr().out
    code = main(["compare", "rnn", "--in", "T", "--output", str(tmp_path / "no" / "such" / "dir.md")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "cannot write" in err


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_concrete_counts_have_thousands_separators(tmp_path, capsys, fmt):
    """A 1000 -> 1000 linear layer: 1000·1000 weights + 1000 biases = 1,001,000 parameters."""
    path = tmp_path / "wide.yaml"
    path.write_text("name: wide\n" + ONE_LINEAR.format(n=1000))
    assert main(["compare", str(path), "--in", "T", "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert "1,001,000" in out and "1001000" not in out
    assert "1,000,000·T" not in out   # a formula's coefficients stay as sympy prints them (as in the cost table)


@pytest.mark.parametrize("fmt", ["table", "markdown", "latex", "json", "csv"])
def test_cost_output_writes_to_a_file(tmp_path, capsys, fmt):
    """A sibling of compare -o: cost had no -o either (derive has)."""
    out = tmp_path / "cost.txt"
    assert main(["cost", "lenet5", "--format", fmt, "-o", str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert main(["cost", "lenet5", "--format", fmt]) == 0
    assert out.read_text(encoding="utf-8") == capsys.readouterr().out
