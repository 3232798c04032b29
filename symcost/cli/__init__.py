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
import os
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
    parser = _Parser(prog="symcost", description="Closed-form costs of neural networks with symbolic sizes.",
                     epilog="'symcost COMMAND --help' describes a command's options.")
    parser.add_argument("--version", action="store_true", help="print symcost's version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    add = sub.add_parser

    def add_parser(name, **kwargs):  # a subcommand's --help opens with what it does (its one-line help)
        if kwargs.get("help") and not kwargs.get("description"):
            kwargs["description"] = kwargs["help"][0].upper() + kwargs["help"][1:] + "."
        return add(name, **kwargs)

    sub.add_parser = add_parser
    for module in (cost, compare, derive, catalog, lm):
        for name, command in module.add_parser(sub).items():
            COMMANDS.setdefault(name, command)  # the dispatch table is filled once (tests may replace an entry)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser()
        try:
            args, extra = parser.parse_known_args(argv)
        except SystemExit as done:  # --help printed its text
            return _write("") or (done.code if isinstance(done.code, int) else 2)
        if extra:  # argparse would send every one to 'symcost --help'; a subcommand's flag belongs to its help
            raise SymcostError(f"unrecognized arguments: {' '.join(extra)} (see '{_help_of(args, argv, extra)} --help')")
        if args.version:
            from .. import __version__

            return _write(f"symcost {__version__}\n")
        if args.command is None:
            parser.print_help()
            return 2
        return _write(COMMANDS[args.command](args))
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
    except BrokenPipeError:  # the reader has gone (symcost models | head -1): nothing to say
        _drop_stdout()
        return 0
    except Exception as err:  # noqa: BLE001 - anything else is our bug
        return _bug(err)


def _help_of(args, argv, extra) -> str:
    """``symcost cost`` when the unknown flag follows the subcommand's name, else ``symcost``."""
    if args.command is None or args.command not in argv:
        return "symcost"
    first = next((i for i, a in enumerate(argv) if a in extra), len(argv))
    return f"symcost {args.command}" if first > argv.index(args.command) else "symcost"


def _write(text: str) -> int:
    """Print the result (flushed here, so that a full disk is reported, not lost at exit)."""
    if sys.stdout is None:  # started with stdout closed (symcost ... >&-)
        raise SymcostError("cannot write output: standard output is closed")
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except (OSError, ValueError) as err:  # ENOSPC, EIO, ...; ValueError: a closed file object
        _drop_stdout()
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise SymcostError(f"cannot write output: {reason}") from None
    return 0


def _drop_stdout() -> None:
    """Point the process's stdout at /dev/null so Python's flush at exit neither fails again
    nor prints 'Exception ignored'; in process (a test's StringIO) there is nothing to do."""
    if sys.stdout is None or sys.stdout is not sys.__stdout__:
        return
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _bug(err: Exception) -> int:
    text = one_line(str(err))[:300]
    print(f"symcost: internal error ({type(err).__name__}: {text}); this is a bug, please report it",
          file=sys.stderr)
    return 1
