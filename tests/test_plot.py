"""The scaling figure: a real PNG/SVG, and lines whose log-log slopes are the orders in T."""

import math
import xml.etree.ElementTree as ET

import pytest

import symcost
from symcost.cli import main
from symcost.plot import PlotError, loglog_slope, plot_lines, scaling_lines

import matplotlib  # noqa: F401 - a test dependency: missing is an error, not a skip

RNN = """
name: RNN
input: [T, I]
layers:
  - rnn: {hidden_size: H}
"""

ATTENTION = """
name: attention
input: [T, E]
layers:
  - multihead_attention: {num_heads: 1}
"""

CNN = """
name: CNN
input: [I, T]
layers:
  - conv1d: {out_channels: H, kernel_size: K, padding: same}
"""


@pytest.fixture
def specs(tmp_path):
    paths = {}
    for name, text in (("rnn", RNN), ("attention", ATTENTION), ("cnn", CNN)):
        p = tmp_path / f"{name}.yaml"
        p.write_text(text)
        paths[name] = str(p)
    return paths


def fitted(line2d, upper_half=True):
    """Slope of log y against log x of the points as plotted (read back from the figure)."""
    x, y = line2d.get_xdata(), line2d.get_ydata()
    if upper_half:
        n = len(x) // 2
        x, y = x[n:], y[n:]
    lx, ly = [math.log(v) for v in x], [math.log(v) for v in y]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def test_png_lines_have_the_orders_as_slopes(specs, tmp_path):
    reports = [symcost.load(specs[n]).cost() for n in ("rnn", "attention", "cnn")]
    T = [2**k for k in range(4, 15)]
    lines = scaling_lines(reports, "T", T, sizes={"I": 8, "H": 8, "E": 8}, labels=["rnn", "attention", "cnn"])
    out = tmp_path / "scaling.png"
    fig = plot_lines(lines, str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    plotted = {ln.get_gid(): ln for ln in fig.axes[0].get_lines()}
    assert set(plotted) == {"rnn", "attention", "cnn"}
    assert abs(fitted(plotted["rnn"]) - 1) < 0.01
    assert abs(fitted(plotted["cnn"]) - 1) < 0.01
    assert abs(fitted(plotted["attention"]) - 2) < 0.05
    # the plotted points are the exact counts: RNN (I·H + H·H)·T, attention 4·E²·T + 2·E·T²
    assert list(plotted["rnn"].get_ydata()) == [float(t * (8 * 8 + 8 * 8)) for t in T]
    assert list(plotted["attention"].get_ydata()) == [float(4 * 64 * t + 2 * 8 * t * t) for t in T]
    # the labelled slope is the fitted one, and the legend says it
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    att = next(ln for ln in lines if ln.label == "attention")
    assert any(f"slope {att.slope:.2f}" in s and "Θ(T²)" in s for s in labels)
    assert att.slope == pytest.approx(fitted(plotted["attention"]), abs=1e-9)


def test_cli_plot_svg(specs, tmp_path, capsys):
    out = tmp_path / "fig.svg"
    code = main(["compare", specs["rnn"], specs["attention"], "--in", "T", "--plot", str(out),
                 "--range", "32:8192:x4", "--set", "E=16"])
    assert code == 0, capsys.readouterr().err
    root = ET.parse(out).getroot()
    assert root.tag.endswith("svg")
    text = out.read_text()
    assert "RNN" in text and "attention" in text   # each spec's name: (RNN, attention)


def test_plot_defaults_and_errors(specs, tmp_path, capsys):
    # H and I take the documented defaults
    code = main(["compare", specs["rnn"], "--in", "T", "--plot", str(tmp_path / "a.png")])
    assert code == 0
    code = main(["compare", specs["rnn"], "--in", "T", "--plot", str(tmp_path / "a.pdf")])
    err = capsys.readouterr().err
    assert code == 2 and ".png or .svg" in err and err.count("\n") == 1
    m = symcost.Model("odd", inputs={"x": ["T", "Zq"]})
    m.add("linear", out_features=3)
    with pytest.raises(PlotError, match="Zq"):
        scaling_lines([m.cost()], "T", [1, 2, 4])
    with pytest.raises(PlotError):
        loglog_slope([4, 4], [1, 2])
    with pytest.raises(PlotError, match="png or .svg"):
        plot_lines([], str(tmp_path / "x.jpg"))


def figure_text(fig) -> str:
    """Every piece of text drawn on a figure (title, labels, legend entries and title)."""
    from matplotlib.text import Text

    return "\n".join(t.get_text() for t in fig.findobj(Text) if t.get_visible())


@pytest.fixture
def figures(monkeypatch):
    """The Figure objects the CLI's --plot draws, captured as plot_lines returns them."""
    import symcost.plot

    drawn, real = [], symcost.plot.plot_lines

    def capture(*args, **kwargs):
        drawn.append(real(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(symcost.plot, "plot_lines", capture)
    return drawn


def test_the_figure_states_every_size_it_substituted(specs, tmp_path, figures, capsys):
    """RNN's I and H, CNN's I, H and K take the documented defaults (docs/scaling.md: I = H = 64,
    K = 3); attention's E is set.  The figure says so, and its points are the counts at those sizes."""
    code = main(["compare", specs["rnn"], specs["cnn"], specs["attention"], "--in", "T", "--set", "E=16",
                 "--plot", str(tmp_path / "f.png"), "--range", "16:256:x2"])
    assert code == 0, capsys.readouterr().err
    (fig,) = figures
    text = figure_text(fig)
    note = fig.axes[0].get_legend().get_title().get_text()
    for size in ("H = 64", "I = 64", "K = 3", "E = 16"):
        assert size in note, (size, note)
    assert "defaults" in note and "--set" in note and "E = 16 (set)" in " ".join(note.split())
    assert note in text
    # the stated sizes are the ones the points were computed at: RNN (I·H + H·H)·T, CNN H·I·K·T,
    # attention 4·E²·T + 2·E·T² (the test's own formulas, not symcost's)
    plotted = {ln.get_gid(): ln for ln in fig.axes[0].get_lines()}
    T = [16, 32, 64, 128, 256]
    assert list(plotted["RNN"].get_ydata()) == [float(t * (64 * 64 + 64 * 64)) for t in T]
    assert list(plotted["CNN"].get_ydata()) == [float(64 * 64 * 3 * t) for t in T]
    assert list(plotted["attention"].get_ydata()) == [float(4 * 16 * 16 * t + 2 * 16 * t * t) for t in T]


def test_a_figure_with_every_size_set_says_so(specs, tmp_path, figures):
    assert main(["compare", specs["rnn"], "--in", "T", "--set", "I=8", "--set", "H=4096",
                 "--plot", str(tmp_path / "f.svg")]) == 0
    note = figures[0].axes[0].get_legend().get_title().get_text()
    assert " ".join(note.split()) == "sizes: H = 4,096, I = 8 (set)"


def test_every_missing_size_of_every_model_is_in_one_message(tmp_path):
    a = symcost.Model("a", inputs={"x": ["T", "Zq"]})
    a.add("linear", out_features=3)
    b = symcost.Model("b", inputs={"x": ["T", "Zq"]})
    b.add("linear", out_features="Zr")
    with pytest.raises(PlotError) as err:
        scaling_lines([a.cost(), b.cost()], "T", [1, 2, 4])
    message = str(err.value)
    assert "Zq (a, b)" in message and "Zr (b)" in message and "--set" in message


def test_cli_names_every_missing_size_in_one_line(tmp_path, capsys):
    code = main(["compare", "gpt2", "llama", "rnn", "--in", "T", "--plot", str(tmp_path / "f.png")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    for size in ("d_model", "n_layer", "n_vocab", "d_ff"):   # gpt2's d_ff has a default (4·d_model), llama's not
        assert size in err, (size, err)
    assert "d_ff (LLaMA)" in err and "GPT-2" in err


def test_a_file_name_with_dollars_is_drawn_as_written(tmp_path, figures, capsys):
    """matplotlib reads $…$ as mathtext: a spec file named so made --plot exit 1."""
    path = tmp_path / "$\\input{x}$.yaml"
    path.write_text(RNN.replace("name: RNN\n", ""))   # no name: the file stem labels the line
    code = main(["compare", str(path), "--in", "T", "--plot", str(tmp_path / "f.png")])
    assert code == 0, capsys.readouterr().err
    labels = [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()]
    assert labels[0].startswith("\\$\\input{x}\\$: slope")     # escaped for matplotlib, drawn as $\input{x}$


def test_a_hostile_spec_name_in_an_svg(tmp_path, capsys):
    path = tmp_path / "m.yaml"
    path.write_text(RNN.replace("name: RNN", "name: '<script>alert(1)</script> | *x* $\\input{/etc/passwd}$ --'"))
    out = tmp_path / "f.svg"
    code = main(["compare", str(path), "--in", "T", "--plot", str(out)])
    assert code == 0, capsys.readouterr().err
    root = ET.parse(out).getroot()                      # well-formed XML, the name escaped in it
    assert not [e for e in root.iter() if e.tag.rsplit("}", 1)[-1].lower() == "script"]
