"""The ``symcost`` command: a thin layer over the library.

``main(argv) -> int`` parses, calls the library, prints.  A user error is
one line on stderr and exit code 2; anything else is a bug: exit code 1
with a short request to report it.

One module per subcommand, each with its ``add_parser(sub) -> {name: command}``:
:mod:`.cost` (and :mod:`.torch_input` for ``--torch``), :mod:`.compare`, :mod:`.derive`,
:mod:`.catalog` (``models``, ``ops``) and :mod:`.lm` (``train``, ``generate``);
:mod:`.common` holds what they share.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..errors import SymcostError, one_line
from . import catalog, compare, cost, derive, lm
from .common import FORMATS, parse_sets

__all__ = ["main", "build_parser", "COMMANDS", "FORMATS", "parse_sets"]

COMMANDS: dict = {}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints usage + error)
        raise SymcostError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="symcost", description="Closed-form costs of neural networks with symbolic sizes.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in (cost, compare, derive, catalog, lm):
        for name, command in module.add_parser(sub).items():
            COMMANDS.setdefault(name, command)  # the dispatch table is filled once (tests may replace an entry)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        sys.stdout.write(COMMANDS[args.command](args))
        return 0
    except SymcostError as err:
        print(f"symcost: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except ValueError as err:  # an exact count too long to print (Python refuses str() of > 4300 digits)
        if "integer string conversion" not in str(err):
            return _bug(err)
        print("symcost: error: a count of this model has more than 4,300 digits, too many to print; "
              "use smaller sizes or fewer nested repeats", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except Exception as err:  # noqa: BLE001 - anything else is our bug
        return _bug(err)


def _bug(err: Exception) -> int:
    text = one_line(str(err))[:300]
    print(f"symcost: internal error ({type(err).__name__}: {text}); this is a bug, please report it",
          file=sys.stderr)
    return 1
