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


def brief(value: object, limit: int = 80) -> str:
    """A bounded repr of a user value for a message: never walks or prints more than a few elements
    (an alias-bomb list of 10**9 shared elements, a 4,000-digit number) and never exceeds ``limit``."""
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxdict, r.maxtuple, r.maxset = 3, 4, 4, 4, 4
    r.maxstring, r.maxother, r.maxlong = limit, limit, 40
    try:
        text = r.repr(value)
    except Exception:  # noqa: BLE001 - a hostile __repr__ must not turn an error into a crash
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


class TemplateError(SymcostError):
    """A user's template (``--templates``) that does not parse, does not render, or tries what the
    sandbox forbids; the message names the template's file and line."""


def _one_edit_apart(a: str, b: str) -> bool:
    """Whether one substitution, insertion or deletion turns ``a`` into ``b``."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))


def nearest(word: str, candidates: Iterable[str]) -> str:
    """A ' (did you mean ...?)' suffix naming the closest candidates, or ''.

    Close by difflib's ratio, or -- for short names such as sizes ('Nx' for 'Nh') -- differing
    only in case or by one character."""
    word = str(word)[:200]
    pool = sorted(str(c) for c in candidates)
    close = difflib.get_close_matches(word, pool, n=3, cutoff=0.6)
    if len(close) < 3 and len(word) <= 64:
        for c in pool:
            if c not in close and len(close) < 3 and (c.lower() == word.lower() or
                                                       (len(word) >= 2 and _one_edit_apart(word, c))):
                close.append(c)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
