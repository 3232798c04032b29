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
    assert "rnn" in text and "attention" in text


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
