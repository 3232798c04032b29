"""Suite-wide policy: no hidden skips.

A skip is allowed only for a reason listed in ``optional_tools.ALLOWED_SKIPS`` (an external
tool that is not installed); any other skip -- an ``importorskip`` of a required dependency,
a skip left in by accident -- is reported and fails the run, so a broken environment cannot
pass quietly with its oracles skipped.
"""

from __future__ import annotations

import pytest

from optional_tools import ALLOWED_SKIPS

_unexpected: list[str] = []


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        text = _skip_reason(report)
        if text not in ALLOWED_SKIPS:
            _unexpected.append(f"{report.nodeid}: {text}")


def pytest_collectreport(report):
    if report.skipped:  # a whole module skipped at import (pytest.importorskip at module level)
        text = _skip_reason(report)
        if text not in ALLOWED_SKIPS:
            _unexpected.append(f"{report.nodeid}: {text}")


def pytest_terminal_summary(terminalreporter):
    if _unexpected:
        terminalreporter.section("skips that are not allowed (tests/optional_tools.py)", red=True)
        for line in _unexpected:
            terminalreporter.write_line(line)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    if _unexpected and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
