"""symcost: closed-form parameter, memory and operation counts of neural networks.

An architecture with symbolic sizes (YAML, Python or a PyTorch module) gives sympy expressions
for its parameters, activations, MACs, operations by kind, FMAs and steps::

    >>> import symcost
    >>> r = symcost.load("mnist_mlp").cost()      # a built-in model, a YAML file or YAML text
    >>> r.params
    795*Nh + 10
    >>> r.subs(Nh=100).params
    79510

The public API:

    load(source)        a Model from a YAML file, YAML text or a built-in model's name
                        (the YAML format: docs/spec.md; ``symcost ops KIND`` on the shell)
    from_torch(module, input_shape, ...)
                        a Model traced from a PyTorch module, in your size names (imports
                        torch when first used; importing symcost does not)
    Model(name, inputs) a network built in Python: .add(op, ...), .add_block(name, model),
                        .cost(batch=..., dtype=...) -> a Report (.params, .macs, .flops, .ops,
                        .fma_ops, .steps, .memory_bytes, .rows, .subs(**sizes), .to_dict())
    Cost                the frozen record of one count: params, activations, macs, ops, fma_ops
    OP_KINDS            the operation kinds counted: mul, add, div, cmp, exp, tanh, erf, sqrt
    latex(expr)         an expression as LaTeX in symcost's notation
    show(expr)          an expression displayed in Jupyter as symcost prints it (MathML, LaTeX);
                        a Report, Model, derivation or comparison displays as an HTML table itself
    parse_size(text)    a size from text, through the restricted size grammar (never eval)
    symbol(name)        the positive-integer sympy symbol symcost uses for a size name
    SymcostError        the base of every user error: SpecError (a spec), ShapeError (shapes
                        that do not fit), SizeError (a size), SymbolError (an unknown size name)
    SpecError, ShapeError, SizeError, SymbolError
                        the subclasses above, to catch one kind of mistake
"""

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
