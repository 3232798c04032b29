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
