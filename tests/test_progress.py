"""Progress bars appear only on a terminal, and chunked exact evaluation equals the direct one."""

import io

import pytest

import symcost
from symcost import progress as progress_module
from symcost.progress import progress
from symcost.sweep import CHUNK, sweep


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_no_bar_off_a_terminal():
    items = [1, 2, 3]
    assert progress(items, stream=io.StringIO()) is items


def test_bar_on_a_terminal_yields_the_same_items():
    import tqdm  # noqa: F401
    items = list(range(5))
    wrapped = progress(items, stream=FakeTTY(), desc="x")
    assert wrapped is not items
    assert list(wrapped) == items


def test_chunked_exact_sweep_equals_direct_evaluation(monkeypatch):
    # Values above 2**63 force exact Python-int columns, which are evaluated in chunks.
    report = symcost.load("mnist_mlp").cost()
    big = [2**62 + i for i in range(CHUNK + 7)]
    monkeypatch.setattr(progress_module, "enabled", lambda stream=None: True)
    result = sweep(report, {"Nh": big}, fields=["params"])
    assert result.fields["params"] == [795 * v + 10 for v in big]


def test_rendering_a_derivation_is_a_stage_of_its_own(monkeypatch):
    """Issue 12 item 9: the bar of a long derive ended, then the screen stayed blank while the output was
    rendered.  Rendering has its own bar, which runs over every layer, and the text is unchanged."""
    from symcost.derivation import derive, render

    class Bar:
        def __init__(self, total, **kw):
            self.total, self.kw, self.walks, self.closed = total, kw, [], False

        def reset(self, total):
            self.walks.append(0)

        def update(self, n):
            self.walks[-1] += n

        def close(self):
            self.closed = True

    d = derive(symcost.load("lenet5"))
    plain = {fmt: render(d, fmt) for fmt in ("markdown", "latex", "html")}  # off a terminal: no bar
    bars = []
    monkeypatch.setattr(progress_module, "stage", lambda total, **kw: bars.append(Bar(total, **kw)) or bars[-1])
    for fmt in ("markdown", "latex", "html"):
        bars.clear()
        assert render(d, fmt) == plain[fmt]
        (bar,) = bars[:1]
        n = len(d.layers)
        assert bar.total == n and bar.kw["desc"] == "rendering" and bar.closed
        assert bar.walks and bar.walks[-1] == n, bar.walks  # the last walk (the sections) covers every layer


def test_derive_on_a_terminal_shows_deriving_then_rendering(monkeypatch, capsys):
    import tqdm  # noqa: F401 - a dependency of symcost
    import sys

    from symcost.cli import main

    monkeypatch.setattr(progress_module, "DELAY_SECONDS", 0)
    monkeypatch.setattr(sys, "stderr", FakeTTY())
    assert main(["derive", "lenet5"]) == 0
    shown = sys.stderr.getvalue()
    assert "deriving" in shown and "rendering" in shown
    assert shown.index("deriving") < shown.rindex("rendering")
