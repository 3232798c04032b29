"""``symcost cost --torch package.module:factory --input SHAPE``: the user's PyTorch module, traced.

The module is imported as ``python -m`` would: the current directory first on the import
path.  Everything that can go wrong on the user's side (the import, the factory, the traced
forward) is one line; what the user's code prints while it is imported or built goes to
stderr, never into the output.
"""

from __future__ import annotations

import contextlib
import os
import sys

from ..errors import SymcostError
from .common import parse_sets


@contextlib.contextmanager
def _cwd_on_path():
    """The current directory first on ``sys.path`` (as ``python -m`` and pytest put it), then as before."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield cwd
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def _import(modname: str, cwd: str):
    import importlib

    try:
        return importlib.import_module(modname)
    except ImportError as err:
        missing = getattr(err, "name", None)
        if missing and (modname == missing or modname.startswith(missing + ".")):
            extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
            where = f"the current directory {cwd}" + (f", PYTHONPATH {os.pathsep.join(extra)}" if extra else "")
            raise SymcostError(f"--torch: cannot import {modname!r} ({err}); looked in {where} and the installed "
                               "packages: run symcost from the folder that holds the package, or add that "
                               "folder to PYTHONPATH") from None
        raise SymcostError(f"--torch: importing {modname!r} failed: {type(err).__name__}: {err}") from None
    except SystemExit as err:  # the user's module exits while it is imported: not symcost's exit
        raise SymcostError(f"--torch: importing {modname!r} called sys.exit({err.code!r})") from None
    except Exception as err:  # noqa: BLE001 - the user's module fails while it is imported
        text = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise SymcostError(f"--torch: importing {modname!r} failed: {type(err).__name__}"
                           + (f": {text}" if text else "")) from None


def torch_model(args):
    """``--torch package.module:factory --input 'T,64'``: the traced module's symcost model."""
    from ..sizes import NAME_RE

    target = args.torch
    modname, sep, attr = target.partition(":")
    if not sep or not modname or not attr:
        raise SymcostError(f"--torch expects package.module:factory, got {target!r}")
    if args.input is None:
        raise SymcostError("--torch needs --input, one sample's shape, e.g. --input 'T,64'")
    items = args.input.split(",")
    shape, sizes = [], {}
    for item in items:
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
    with _cwd_on_path() as cwd, contextlib.redirect_stdout(sys.stderr):  # the user's prints are not output
        obj = _import(modname, cwd)
        for part in attr.split("."):
            if part.startswith("_"):  # no walks through __class__, __globals__, private helpers
                raise SymcostError(f"--torch: {attr!r} names a private or special attribute; name the factory itself")
            if not hasattr(obj, part):
                raise SymcostError(f"--torch: {modname!r} has no attribute {attr!r}")
            obj = getattr(obj, part)
        module = _build(obj, target)
    from ..torch_bridge import FixedSizeError, from_torch

    try:
        return from_torch(module, tuple(shape), symbolic=symbolic or None, sizes=sizes,
                          batch_dim=args.batch_dim, name=attr).model
    except FixedSizeError as err:  # its example as an --input
        raise err.for_cli(items) from None


def _build(obj, target: str):
    """The module ``obj`` is, or the one the factory ``obj`` returns."""
    import torch

    if isinstance(obj, torch.nn.Module):
        return obj
    if not callable(obj):
        raise SymcostError(f"--torch: {target} is an object of type {type(obj).__name__}, neither a torch.nn.Module "
                           "nor a factory that returns one")
    try:
        module = obj()
    except SymcostError:
        raise
    except SystemExit as err:  # the factory exits: report it, never exit 0 in its name
        raise SymcostError(f"--torch: {target} called sys.exit({err.code!r}) instead of returning a module") from None
    except Exception as err:  # noqa: BLE001 - the user's factory failed
        text = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise SymcostError(f"--torch: {target} failed: {type(err).__name__}" + (f": {text}" if text else "")) from None
    if not isinstance(module, torch.nn.Module):
        raise SymcostError(f"--torch: {target} returned {type(module).__name__}, not a torch.nn.Module")
    return module
