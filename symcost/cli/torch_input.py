"""``symcost cost --torch package.module:factory --input SHAPE``: the user's PyTorch module, traced."""

from __future__ import annotations

from ..errors import SymcostError
from .common import parse_sets


def torch_model(args):
    """``--torch package.module:factory --input 'T,64'``: the traced module's symcost model."""
    import importlib

    from ..sizes import NAME_RE

    target = args.torch
    modname, sep, attr = target.partition(":")
    if not sep or not modname or not attr:
        raise SymcostError(f"--torch expects package.module:factory, got {target!r}")
    if args.input is None:
        raise SymcostError("--torch needs --input, one sample's shape, e.g. --input 'T,64'")
    try:
        obj = importlib.import_module(modname)
    except ImportError as err:
        raise SymcostError(f"--torch: cannot import {modname!r} ({err})") from None
    except SystemExit as err:  # the user's module exits while it is imported: not symcost's exit
        raise SymcostError(f"--torch: importing {modname!r} called sys.exit({err.code!r})") from None
    for part in attr.split("."):
        if part.startswith("_"):  # no walks through __class__, __globals__, private helpers
            raise SymcostError(f"--torch: {attr!r} names a private or special attribute; name the factory itself")
        if not hasattr(obj, part):
            raise SymcostError(f"--torch: {modname!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    shape, sizes = [], {}
    for item in args.input.split(","):
        item = item.strip()
        name, eq, value = item.partition("=")
        if item.isdigit():
            shape.append(int(item))
        elif NAME_RE.match(name) and (not eq or value.strip().isdigit()):
            shape.append(name)
            if eq:
                sizes[name] = int(value)
        else:
            raise SymcostError(f"--input: {item!r} is neither a whole number nor a name (NAME or NAME=VALUE)")
    symbolic = {}
    for key, name in parse_sets(args.symbolics).items():
        symbolic[int(key) if key.isdigit() else key] = name
    from ..torch_bridge import from_torch

    module = obj
    try:
        import torch

        if not isinstance(obj, torch.nn.Module):
            module = obj()
    except SymcostError:
        raise
    except SystemExit as err:  # the factory exits: report it, never exit 0 in its name
        raise SymcostError(f"--torch: {target} called sys.exit({err.code!r}) instead of returning a module") from None
    except Exception as err:  # noqa: BLE001 - the user's factory failed
        raise SymcostError(f"--torch: {target} failed: {type(err).__name__}: {err}") from None
    return from_torch(module, tuple(shape), symbolic=symbolic or None, sizes=sizes,
                      batch_dim=args.batch_dim, name=attr).model
