"""The optional external tools some tests use, and the only skips the suite allows.

Everything the README's test command installs (torch, the peers, matplotlib, hypothesis, numpy)
is required: tests import it plainly, and a missing one is an error, not a skip.  Only the tools
below may be absent; a test that needs one is marked with :func:`requires`, on the test itself,
and skips with the tool's reason.  ``conftest.py`` fails the run on any skip whose reason is not
one of :data:`ALLOWED_SKIPS`.
"""

from __future__ import annotations

import shutil

import pytest

#: tool -> (the executables that provide it, how to install it)
TOOLS = {
    "pdflatex": (("pdflatex",), "Debian: apt-get install texlive-latex-base texlive-latex-recommended"),
    "chromium": (("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"),
                 "Debian: apt-get install chromium"),
}


def which(tool: str) -> str | None:
    """The path of the tool's executable on PATH, or None."""
    for name in TOOLS[tool][0]:
        path = shutil.which(name)
        if path:
            return path
    return None


def reason(tool: str) -> str:
    return f"{tool} is not installed ({TOOLS[tool][1]})"


def requires(tool: str):
    """``@requires("pdflatex")``: skip this test, with the reason, when the tool is not on PATH.
    The test is also marked ``optional_tool``, so ``pytest -m optional_tool`` runs exactly these."""
    skip = pytest.mark.skipif(which(tool) is None, reason=reason(tool))

    def mark(test):
        return pytest.mark.optional_tool(skip(test))
    return mark


#: every skip reason the suite may report; anything else fails the run (conftest.py)
ALLOWED_SKIPS = tuple(reason(tool) for tool in TOOLS) + (
    "PyYAML without libyaml",  # the C loader is an optional speed-up of PyYAML's own build
)
