"""``symcost derive``: the lecture-style derivation, through the package's (or the user's) templates."""

from __future__ import annotations

from ..errors import SymcostError
from .common import SET_HELP, add_substitutions, substitution_words, substitutions, write_output


def add_parser(sub) -> dict:
    from ..report import DTYPES

    der = sub.add_parser("derive", help="the lecture-style derivation of a model's costs, step by step")
    der.add_argument("model", metavar="MODEL", help="a YAML spec or the name of a built-in model")
    add_substitutions(der, SET_HELP + "; without it a symbolic model stays symbolic")
    der.add_argument("--symbolic", action="store_true", help="formulas only: no sizes put in, no values")
    der.add_argument("--dtype", choices=tuple(DTYPES), default=None, help="datatype for memory (default fp32)")
    der.add_argument("--speed", metavar="FLOPS", help="FLOP/s for latency and throughput: 1e9, 1GFLOPS, 2.5 TFLOPS")
    der.add_argument("--format", choices=("markdown", "latex", "html"), default="markdown",
                     help="markdown (default), latex (a standalone .tex document) or html (one self-contained page)")
    der.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    der.add_argument("--templates", metavar="DIR", help="a directory of templates searched before the package's")
    return {"derive": cmd_derive}


def cmd_derive(args) -> str:
    """``symcost derive``: the derivation record, rendered through the package's (or the user's) templates."""
    from pathlib import Path

    from ..derivation import derive, render
    from ..spec import load

    model = load(args.model)
    if args.templates is not None and not Path(args.templates).is_dir():
        raise SymcostError(f"--templates {args.templates!r} is not a directory")
    try:
        d = derive(model, values=substitutions(args), dtype=args.dtype or "fp32", speed=args.speed,
                   symbolic=args.symbolic)
    except SymcostError as err:
        raise err.at(args.model) from None
    words = ["symcost", "derive", args.model] + substitution_words(args)
    words += ["--symbolic"] * args.symbolic + [f"--dtype {args.dtype}"] * (args.dtype is not None)
    words += [f"--speed {args.speed}"] * (args.speed is not None)
    return write_output(render(d, args.format, args.templates, command=" ".join(words)), args.output)
