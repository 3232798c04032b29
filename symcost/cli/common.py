"""What the subcommands share: output formats and the ``--set NAME=VALUE`` / ``--rename OLD=NEW`` pairs."""

from __future__ import annotations

from typing import Sequence

from ..errors import SymcostError

FORMATS = ("table", "json", "latex", "markdown")

SET_HELP = ("substitute a size (repeatable): a number, or an expression of numbers and the model's own sizes, "
            "e.g. --set T=128 --set H=2*D")
RENAME_HELP = "give a size a new name (repeatable), e.g. --rename T=tokens"


def parse_sets(pairs: Sequence[str], flag: str = "--set") -> dict[str, str]:
    """``["T=128", "H=2*D"]`` -> ``{"T": "128", "H": "2*D"}``; each name once."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise SymcostError(f"{flag} expects NAME=VALUE, got {pair!r}")
        if name in values:
            raise SymcostError(f"{flag} gives {name!r} twice")
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


def add_substitutions(parser, set_help: str = SET_HELP) -> None:
    """The ``--set`` and ``--rename`` options of a subcommand."""
    parser.add_argument("--set", dest="sets", metavar="NAME=VALUE", action="append", default=[], help=set_help)
    parser.add_argument("--rename", dest="renames", metavar="OLD=NEW", action="append", default=[], help=RENAME_HELP)


def substitutions(args) -> dict:
    """``--set`` values (text, read by the size grammar with the model's names) and ``--rename``
    pairs (:class:`symcost.substitution.Rename`) as one mapping for ``Report.subs``."""
    from ..substitution import Rename

    values: dict = parse_sets(args.sets)
    for old, new in parse_sets(getattr(args, "renames", []), "--rename").items():
        if old in values:
            raise SymcostError(f"{old!r} is both set (--set {old}={values[old]}) and renamed (--rename {old}={new})")
        try:
            values[old] = Rename(new)
        except SymcostError as err:
            raise err.at(f"--rename {old}={new}") from None
    return values


def substitution_words(args) -> list[str]:
    """The ``--set`` and ``--rename`` options as they were given (for a page's command line)."""
    return [f"--set {v}" for v in args.sets] + [f"--rename {v}" for v in getattr(args, "renames", [])]
