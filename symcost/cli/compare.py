"""``symcost compare``: the lecture's table "Complexity vs. parameter count", and its figure."""

from __future__ import annotations

import shlex

from ..errors import SymcostError
from .common import FORMATS, SET_HELP, add_substitutions, substitution_words, substitutions, write_output


def add_parser(sub) -> dict:
    cmp = sub.add_parser("compare", help="scaling of several models in a size (the lecture's table)")
    cmp.add_argument("models", metavar="MODEL", nargs="+", help="YAML specs or built-in model names")
    cmp.add_argument("--in", dest="time", metavar="T", action="append", required=True,
                     help="the size to analyse the growth in (repeatable or comma list: T_self,T_cross)")
    add_substitutions(cmp, SET_HELP + "; in every model that has it")
    cmp.add_argument("--no-bias", dest="bias", action="store_false",
                     help="the slides' view: every bias argument false (default: biases counted)")
    cmp.add_argument("--format", choices=FORMATS + ("html",), default="table",
                     help="output format (default table; html: a self-contained page with MathML)")
    cmp.add_argument("--plot", metavar="FILE", help="write a log-log figure of MACs against T (.png or .svg)")
    cmp.add_argument("--range", dest="range", metavar="RANGE", default=None,
                     help="values of T for --plot (default 16:4096:x2)")
    cmp.add_argument("-o", "--output", metavar="FILE", help="write the table (or page) to FILE instead of standard output")
    return {"compare": cmd_compare}


def cmd_compare(args) -> str:
    from ..analysis import compare, comparison_table, model_labels, without_bias
    from ..spec import load

    names = [n.strip() for t in args.time for n in t.split(",") if n.strip()]
    values = substitutions(args)
    models, known = [], set()
    for m in args.models:
        try:
            models.append(load(m))
            known |= models[-1].cost().known_names()
        except SymcostError as err:
            raise err.at(m) from None
    known |= {v.name for v in values.values() if not isinstance(v, str)}  # --rename T=tokens: --in tokens
    for name in [*names, *values]:
        if name not in known:
            raise SymcostError(f"no compared model has a size {name!r}; their sizes: {', '.join(sorted(known))}")
    if not args.bias:
        models = [without_bias(m) for m in models]
    labels = model_labels([_label_candidates(model, source) for model, source in zip(models, args.models)])
    rows = compare(models, names, values=values, names=labels)
    words = ["symcost", "compare", *args.models, "--in", ",".join(names)]
    words += substitution_words(args) + ["--no-bias"] * (not args.bias) + ["--format", args.format]
    out = comparison_table(rows, args.format, title=" ".join(map(shlex.quote, words)) if args.format == "html" else "")
    if args.plot:
        from ..plot import DEFAULT_RANGE, plot_lines, scaling_lines
        from ..sweep import parse_range

        if len(names) != 1:
            raise SymcostError("--plot needs exactly one --in size to put on the axis")
        values_t = parse_range(args.range or DEFAULT_RANGE, names[0])
        lines = scaling_lines([m.cost() for m in models], names[0], values_t, sizes=values, labels=labels)
        plot_lines(lines, args.plot, time=names[0])
    return write_output(out, args.output)


#: The name the spec loader gives a spec without ``name:``.
UNNAMED = "model"


def _label_candidates(model, source: str) -> list[str]:
    """A compared model's labels, best first: its spec's ``name:`` (a spec without one: its file
    stem, or the built-in name), then, to tell equal names apart, ``name (stem)`` and
    ``name (path as given)``."""
    import os

    stem = os.path.splitext(os.path.basename(source))[0] if os.path.exists(source) else source
    if model.name == UNNAMED or not model.name.strip():
        return [stem, source] if stem != source else [stem]
    return [model.name, f"{model.name} ({stem})"] + ([f"{model.name} ({source})"] if stem != source else [])
