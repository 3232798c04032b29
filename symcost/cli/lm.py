"""``symcost train`` and ``symcost generate``: the command-line side of
:mod:`symcost.training` and :mod:`symcost.generation`."""

from __future__ import annotations

from ..errors import SymcostError
from .common import SET_HELP, add_substitutions, substitutions


def add_parser(sub) -> dict:
    """Add the ``train`` and ``generate`` subcommands; return their command functions."""
    from ..report import DTYPES
    from ..training import OPTIMIZERS

    tr = sub.add_parser("train", help="the cost of one training step: forward, backward, optimizer memory")
    tr.add_argument("model", metavar="MODEL", help="a YAML spec or the name of a built-in model")
    add_substitutions(tr)
    tr.add_argument("--batch", metavar="B", help="sequences per step: a number or a size name (default 1)")
    tr.add_argument("--dtype", choices=tuple(DTYPES), default="fp32",
                    help="datatype of weights, gradients and activations without --mixed-precision (default fp32)")
    tr.add_argument("--optimizer", default="adam", metavar="NAME",
                    help=f"optimizer state: {', '.join(OPTIMIZERS)} (default adam)")
    tr.add_argument("--mixed-precision", dest="mixed", action="store_true",
                    help="fp16/bf16 weights, gradients and activations, fp32 master weights and optimizer state")
    tr.add_argument("--recompute", action="store_true",
                    help="activation recomputation: keep block inputs, rerun each block's forward in backward")
    tr.add_argument("--tokens", default="T", metavar="NAME", help="the size counting tokens per sequence (default T)")
    tr.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")

    ge = sub.add_parser("generate", help="autoregressive generation: per-step and total cost, KV cache")
    ge.add_argument("model", metavar="MODEL", help="a YAML spec or the name of a built-in model")
    ge.add_argument("--prompt", default="T_p", metavar="TP", help="prompt tokens: a number or a size name (default T_p)")
    ge.add_argument("--new", default="T_new", metavar="TN",
                    help="tokens to generate: a number or a size name (default T_new)")
    ge.add_argument("--no-kv-cache", dest="kv_cache", action="store_false",
                    help="recompute the whole sequence at every step")
    add_substitutions(ge, SET_HELP + " (not the token count, which the generation sets)")
    ge.add_argument("--batch", metavar="B", help="sequences generated together (default 1)")
    ge.add_argument("--dtype", choices=tuple(DTYPES), default="fp32", help="datatype of the KV cache (default fp32)")
    ge.add_argument("--tokens", default="T", metavar="NAME", help="the model's token count (default T)")
    ge.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")
    return {"train": cmd_train, "generate": cmd_generate}


def cmd_train(args) -> str:
    from ..spec import load
    from ..training import training

    try:
        model = load(args.model)
        report = model.cost(batch=args.batch, dtype=args.dtype)
        values = substitutions(args)
        if values:
            report = report.subs(values)
        t = training(report, optimizer=args.optimizer, mixed_precision=args.mixed, recompute=args.recompute,
                     tokens=args.tokens)
    except SymcostError as err:
        raise err.at(args.model) from None
    if args.format == "json":
        import json

        return json.dumps(t.to_dict(), indent=2) + "\n"
    return t.table()


def cmd_generate(args) -> str:
    from ..generation import generation
    from ..spec import load

    try:
        g = generation(load(args.model), prompt=args.prompt, new=args.new, kv_cache=args.kv_cache,
                       values=substitutions(args), batch=args.batch, dtype=args.dtype, tokens=args.tokens)
    except SymcostError as err:
        raise err.at(args.model) from None
    if args.format == "json":
        import json

        return json.dumps(g.to_dict(), indent=2) + "\n"
    return g.table()
