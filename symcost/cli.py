"""The ``symcost`` command: a thin layer over the library.

``main(argv) -> int`` parses, calls the library, prints.  A user error is
one line on stderr and exit code 2; anything else is a bug: exit code 1
with a short request to report it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .errors import SymcostError, one_line

FORMATS = ("table", "json", "latex", "markdown")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints usage + error)
        raise SymcostError(f"{message} (see '{self.prog} --help')")


def _sets(pairs: Sequence[str]) -> dict[str, str]:
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


def build_parser() -> argparse.ArgumentParser:
    from .report import DTYPES

    parser = _Parser(prog="symcost", description="Closed-form costs of neural networks with symbolic sizes.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    cost = sub.add_parser("cost", help="parameters, memory and operation counts of a model")
    cost.add_argument("model", metavar="MODEL", help="a YAML spec or the name of a built-in model")
    cost.add_argument("--set", dest="sets", metavar="NAME=VALUE", action="append", default=[],
                      help="substitute a size (repeatable), e.g. --set T=128 --set H=2*D")
    cost.add_argument("--batch", metavar="B", help="batch size: a number or a size name (default 1)")
    cost.add_argument("--dtype", choices=tuple(DTYPES), default="fp32", help="datatype for memory (default fp32)")
    cost.add_argument("--format", choices=FORMATS + ("csv",), default="table",
                      help="output format (default table; csv: one row per layer, or per point of a sweep)")
    cost.add_argument("--sweep", dest="sweeps", metavar="NAME=RANGE", action="append", default=[],
                      help="evaluate over a range (repeatable: a grid): START:STOP:xF, START:STOP:+D or a,b,c")
    cost.add_argument("--fields", metavar="LIST", default=None,
                      help="with --sweep: comma-separated fields (default params,activations,macs,flops,fma_ops,steps)")

    cmp = sub.add_parser("compare", help="scaling of several models in a size (the lecture's table)")
    cmp.add_argument("models", metavar="MODEL", nargs="+", help="YAML specs or built-in model names")
    cmp.add_argument("--in", dest="time", metavar="T", action="append", required=True,
                     help="the size to analyse the growth in (repeatable or comma list: T_self,T_cross)")
    cmp.add_argument("--set", dest="sets", metavar="NAME=VALUE", action="append", default=[],
                     help="substitute a size in every model that has it (repeatable)")
    cmp.add_argument("--no-bias", dest="bias", action="store_false",
                     help="the slides' view: every bias argument false (default: biases counted)")
    cmp.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")
    cmp.add_argument("--plot", metavar="FILE", help="write a log-log figure of MACs against T (.png or .svg)")
    cmp.add_argument("--range", dest="range", metavar="RANGE", default=None,
                     help="values of T for --plot (default 16:4096:x2)")

    sub.add_parser("models", help="list the built-in models")
    sub.add_parser("ops", help="list the layer kinds and their arguments")
    from .lm_commands import add_parsers  # train, generate (docs/transformers.md)

    COMMANDS.update(add_parsers(sub))
    return parser


def cmd_cost(args) -> str:
    from .spec import load

    model = load(args.model)
    try:  # errors found while analysing (shapes, cycles) name the spec, as those found while reading do
        report = model.cost(batch=args.batch, dtype=args.dtype)
    except SymcostError as err:
        raise err.at(args.model) from None
    values = _sets(args.sets)
    if values:
        try:
            report = report.subs(values)
        except SymcostError as err:
            raise err.at(f"{args.model} --set") from None
    if args.sweeps or args.format == "csv":
        return _cost_sweep(report, args)
    if args.format == "json":
        return report.to_json() + "\n"
    if args.format == "latex":
        return report.latex()
    if args.format == "markdown":
        return report.markdown()
    return report.table()


def cmd_models(args) -> str:
    from .spec import ZOO, builtin_names, parse_yaml

    lines = []
    for name in builtin_names():
        spec = parse_yaml((ZOO / f"{name}.yaml").read_text(encoding="utf-8"))
        lines.append(f"{name:<20} {spec.get('description') or spec.get('name', '')}")
    return "\n".join(lines) + "\n"


def cmd_ops(args) -> str:
    from .layers import REGISTRY, load_all

    load_all()
    lines = []
    for name in sorted(REGISTRY):
        kind = REGISTRY[name]
        arglist = ", ".join(a.name for a in kind.args) or "-"
        lines.append(f"{name:<20} {arglist}")
    return "\n".join(lines) + "\n"


def _cost_sweep(report, args) -> str:
    """``cost --sweep`` (and ``--format csv``): values over a range, from the formula derived once."""
    from .sweep import FIELDS, parse_sweeps, per_layer_csv, sweep

    if not args.sweeps:
        return per_layer_csv(report)
    fields = FIELDS if args.fields is None else [f.strip() for f in args.fields.split(",") if f.strip()]
    try:
        result = sweep(report, parse_sweeps(args.sweeps), fields=fields)
    except SymcostError as err:
        raise err.at(args.model) from None
    if args.format == "latex":
        raise SymcostError("--sweep prints table, csv, json or markdown, not latex")
    return {"csv": result.csv, "markdown": result.markdown, "table": result.table,
            "json": lambda: result.to_json()}[args.format]()


def cmd_compare(args) -> str:
    import os

    from .analysis import compare, comparison_table, without_bias
    from .spec import load

    names = [n.strip() for t in args.time for n in t.split(",") if n.strip()]
    values = _sets(args.sets)
    models, known = [], set()
    for m in args.models:
        try:
            models.append(load(m))
            known |= models[-1].cost().known_names()
        except SymcostError as err:
            raise err.at(m) from None
    for name in [*names, *values]:
        if name not in known:
            raise SymcostError(f"no compared model has a size {name!r}; their sizes: {', '.join(sorted(known))}")
    if not args.bias:
        models = [without_bias(m) for m in models]
    labels = [os.path.splitext(os.path.basename(m))[0] if os.path.exists(m) else m for m in args.models]
    rows = compare(models, names, values=values, names=labels)
    out = comparison_table(rows, args.format)
    if args.plot:
        from .plot import DEFAULT_RANGE, plot_lines, scaling_lines
        from .sweep import parse_range

        if len(names) != 1:
            raise SymcostError("--plot needs exactly one --in size to put on the axis")
        values_t = parse_range(args.range or DEFAULT_RANGE, names[0])
        lines = scaling_lines([m.cost() for m in models], names[0], values_t, sizes=values, labels=labels)
        plot_lines(lines, args.plot, time=names[0])
    return out


COMMANDS = {"cost": cmd_cost, "compare": cmd_compare, "models": cmd_models, "ops": cmd_ops}


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


if __name__ == "__main__":
    sys.exit(main())
