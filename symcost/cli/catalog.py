"""``symcost models`` and ``symcost ops``: what is built in."""

from __future__ import annotations

import re


def add_parser(sub) -> dict:
    sub.add_parser("models", help="list the built-in models",
                   description="List the built-in models, one a line: its name and the first clause of its "
                               "description.",
                   epilog="Use a name wherever a spec is expected: 'symcost cost lenet5', 'symcost derive gpt2'.")
    ops = sub.add_parser("ops", help="list the layer kinds and their arguments",
                         description="List the layer kinds a spec's layers and nodes may use, with their "
                                     "arguments and defaults; with KIND, that kind's reference: its arguments, "
                                     "input and formulas.",
                         epilog="A layer is written '- KIND: {ARG: VALUE, ...}' in a spec's layers (docs/spec.md).")
    ops.add_argument("kind", nargs="?", help="one kind: its arguments, input and formulas")
    return {"models": cmd_models, "ops": cmd_ops}


def cmd_models(args) -> str:
    from ..spec import ZOO, builtin_names, parse_yaml

    lines = []
    for name in builtin_names():
        spec = parse_yaml((ZOO / f"{name}.yaml").read_text(encoding="utf-8"))
        lines.append(f"{name:<20} {_summary(str(spec.get('description') or spec.get('name', '')))}")
    return "\n".join(lines) + "\nFull descriptions: the 'description' of each spec in symcost/zoo/.\n"


def _summary(text: str, width: int = 76) -> str:
    """The first clause of a description, cut to ``width`` characters."""
    first = re.split(r"(?<=[:;])\s|(?<=[^l]\.)\s(?=[A-Z])", text.strip(), maxsplit=1)[0].rstrip(".:;")
    return first if len(first) <= width else first[: width - 1].rstrip() + "…"


def cmd_ops(args) -> str:
    """The kinds with their arguments and defaults, or one kind's reference (docs/spec.md's entry),
    fitted to the terminal."""
    from ..reference import kind_text, kinds_table
    from ..render.table import terminal_width

    width = terminal_width()  # as every other table: COLUMNS, the terminal, else 100
    kind = getattr(args, "kind", None)
    return kinds_table(width) if kind is None else kind_text(kind, width)
