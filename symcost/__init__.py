"""symcost: closed-form parameter, memory and operation counts of neural networks."""

from .cost import OP_KINDS, Cost
from .errors import ShapeError, SizeError, SpecError, SymbolError, SymcostError
from .graph import Model
from .render import latex
from .render.rich import show
from .sizes import parse_size, symbol
from .spec import load

__version__ = "0.1.0"

__all__ = [
    "Cost", "Model", "OP_KINDS", "ShapeError", "SizeError", "SpecError", "SymbolError", "SymcostError",
    "latex", "load", "parse_size", "show", "symbol", "from_torch",
]


def __getattr__(name):  # lazy: importing symcost never imports torch
    if name == "from_torch":
        from .torch_bridge import from_torch

        return from_torch
    raise AttributeError(f"module 'symcost' has no attribute {name!r}")
