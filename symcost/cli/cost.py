"""``symcost cost``: a model's report as a table, JSON, Markdown, LaTeX or CSV; a convention's
count; a sweep over sizes."""

from __future__ import annotations

from ..errors import SymcostError
from .common import FORMATS, add_substitutions, substitutions, write_output


def add_parser(sub) -> dict:
    from ..report import DTYPES

    cost = sub.add_parser("cost", help="parameters, memory and operation counts of a model")
    cost.add_argument("model", metavar="MODEL", nargs="?", default=None,
                      help="a YAML spec or the name of a built-in model (or --torch)")
    cost.add_argument("--torch", metavar="MODULE:FACTORY", default=None,
                      help="a PyTorch module instead: package.module:factory (called with no arguments)")
    cost.add_argument("--input", metavar="SHAPE", default=None,
                      help="with --torch: one sample's shape, e.g. 'T,64' or 'T=32,64' (a name is traced at 16)")
    cost.add_argument("--batch-dim", dest="batch_dim", type=int, default=0,
                      help="with --torch: where the module's input has the batch (default 0)")
    cost.add_argument("--symbolic", dest="symbolics", metavar="KEY=NAME", action="append", default=[],
                      help="with --torch: make a hyperparameter a size, e.g. hidden_size=H or 512=D (repeatable)")
    cost.add_argument("--convention", metavar="NAME", default=None,
                      help="count as a named tool does: symcost, exact, macs, torch, torch_cpu, fvcore, "
                           "ptflops, thop, torchinfo, deepspeed, calflops; or as a paper does: kaplan, "
                           "chinchilla, megatron, palm (docs/transformers.md)")
    add_substitutions(cost)
    cost.add_argument("--batch", metavar="B", help="batch size: a number or a size name (default 1)")
    cost.add_argument("--dtype", choices=tuple(DTYPES), default="fp32", help="datatype for memory (default fp32)")
    cost.add_argument("--format", choices=FORMATS + ("csv",), default="table",
                      help="output format (default table; csv: one row per layer, or per point of a sweep)")
    cost.add_argument("--wide", action="store_true",
                      help="the table unfitted, one line per layer (default: fitted to the terminal, or to "
                           "COLUMNS, or to 100 columns when the output is not a terminal)")
    cost.add_argument("--sweep", dest="sweeps", metavar="NAME=RANGE", action="append", default=[],
                      help="evaluate over a range (repeatable: a grid): START:STOP:xF, START:STOP:+D or a,b,c")
    cost.add_argument("--fields", metavar="LIST", default=None,
                      help="with --sweep: comma-separated fields (default params,activations,macs,flops,fma_ops,steps)")
    cost.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    return {"cost": cmd_cost}


def cmd_cost(args) -> str:
    return write_output(_cost(args), args.output)  # -o FILE, as compare and derive have


def _cost(args) -> str:
    from ..spec import load

    if (args.model is None) == (args.torch is None):
        raise SymcostError("cost needs exactly one of MODEL or --torch MODULE:FACTORY")
    if args.torch is None and (args.input or args.symbolics):
        raise SymcostError("--input and --symbolic go with --torch")
    from .torch_input import torch_model

    model = load(args.model) if args.torch is None else torch_model(args)
    if args.torch is not None:
        args.model = args.torch
    try:  # errors found while analysing (shapes, cycles) name the spec, as those found while reading do
        report = model.cost(batch=args.batch, dtype=args.dtype)
    except SymcostError as err:
        raise err.at(args.model) from None
    values = substitutions(args)
    if values:
        try:
            report = report.subs(values)
        except SymcostError as err:
            raise err.at(f"{args.model} --set") from None
    if args.convention is not None:
        if args.sweeps:  # a convention's count is one formula per layer: it is not swept (yet)
            raise SymcostError("--convention and --sweep do not go together: sweep the model's own counts, "
                               "or give --set values to a convention")
        return _convention(report, args)
    if args.sweeps or args.format == "csv":
        return _cost_sweep(report, args)
    if args.format == "json":
        return report.to_json() + "\n"
    if args.format == "latex":
        return report.latex()
    if args.format == "markdown":
        return report.markdown()
    return report.table(wide=args.wide)


def _convention(report, args) -> str:
    from .. import conventions

    if args.format == "json":
        import json

        from ..render import jsonable

        c = conventions.count(report, args.convention)
        return json.dumps({"model": report.name, "convention": c.convention.name, "unit": c.convention.unit,
                           "total": jsonable(c.total),
                           "layers": [{"name": n, "op": op, "value": jsonable(v)} for n, op, v in c.rows],
                           **({"note": c.note} if c.note else {})},
                          indent=2) + "\n"
    if args.format != "table":
        raise SymcostError("--convention prints a table or json")
    return conventions.table(report, args.convention)


def _cost_sweep(report, args) -> str:
    """``cost --sweep`` (and ``--format csv``): values over a range, from the formula derived once."""
    from ..sweep import FIELDS, parse_sweeps, per_layer_csv, sweep

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
