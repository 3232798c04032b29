"""The exceptions symcost raises for user mistakes.

Every user error is a :class:`SymcostError`; its ``str`` is one line that
names where the problem is (file, layer) and what is wrong.  Inner code
raises precise errors without context; the spec loader and the graph add
the layer or file once, at the boundary (:meth:`SymcostError.at`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped (``\\n``, ``\\x1b``), so
    that a message quoting hostile input stays one line and cannot drive a terminal."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


class SymcostError(Exception):
    """Base class of every error caused by the user's input."""

    def __init__(self, message: str, *, where: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where

    def at(self, where: str) -> "SymcostError":
        """Attach a location (``layer 'conv1'``, ``file lenet.yaml``) unless one is set."""
        if self.where is None:
            self.where = where
        else:
            self.where = f"{where}, {self.where}"
        return self

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        return one_line(text)


class SizeError(SymcostError):
    """A size expression that does not parse or is not a valid size."""


class SymbolError(SymcostError):
    """A symbol that is unknown or given a value that is not allowed."""


class SpecError(SymcostError):
    """A model specification that is malformed (unknown op, missing key, cycle...)."""


class ShapeError(SymcostError):
    """Shapes that do not fit a layer (mismatch, kernel larger than input...)."""


def nearest(word: str, candidates: Iterable[str]) -> str:
    """A ' (did you mean ...?)' suffix naming the closest candidates, or ''."""
    close = difflib.get_close_matches(str(word), sorted(candidates), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
