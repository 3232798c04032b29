"""What the subcommands share: output formats and the ``--set NAME=VALUE`` pairs."""

from __future__ import annotations

from typing import Sequence

from ..errors import SymcostError

FORMATS = ("table", "json", "latex", "markdown")


def parse_sets(pairs: Sequence[str]) -> dict[str, str]:
    """``["T=128", "H=2*D"]`` -> ``{"T": "128", "H": "2*D"}``; each name once."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise SymcostError(f"--set expects NAME=VALUE, got {pair!r}")
        if name in values:
            raise SymcostError(f"--set gives {name!r} twice")
        values[name] = value
    return values


def write_output(text: str, path: str | None) -> str:
    """``-o FILE``: write ``text`` to FILE and print nothing; without it, ``text`` is printed."""
    if path is None:
        return text
    from pathlib import Path

    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as err:
        raise SymcostError(f"cannot write {path!r}: {err.strerror or err}") from None
    return ""
