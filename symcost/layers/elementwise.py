"""Elementwise layers: activations, dropout, softmax and the binary ``add``/``mul``.

Activations and dropout are applied in place: they add no activation memory.
Per element (E = elements of the input):

- ``relu``     max(0, x):                         1 cmp
- ``sigmoid``  1/(1 + exp(−x)):                   1 exp, 1 add, 1 div
- ``silu``     x·sigmoid(x) = x/(1 + exp(−x)):    1 exp, 1 add, 1 div (Swish; SwiGLU's gate)
- ``tanh``                                          1 tanh
- ``gelu``     0.5·x·(1 + erf(x/√2)):             3 mul, 1 add, 1 erf
               (approximate='tanh': 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))): 6 mul, 2 add, 1 tanh)
- ``dropout``  identity at inference:              0
"""

from __future__ import annotations

from ..cost import Cost, ops
from ..errors import ShapeError
from .base import Arg, LayerKind, Quantities, broadcast, fmt_shape, numel, register


def per_element(E, *, activations=0, **counts) -> Cost:
    """E elements, each costing ``counts`` (no dot products: fma_ops = flops)."""
    c = ops(**{k: E * v for k, v in counts.items()})
    return Cost(activations=activations, ops=c, fma_ops=sum(c.values()))


class _Unary(LayerKind):
    family = "elementwise"
    takes = "x [...]: E elements (any rank)"
    per_element: dict = {}

    def quantities(self, a, inputs):
        (x,) = inputs
        return Quantities(x=tuple(x), E=numel(x))

    def shape(self, q):
        return q["x"]

    def cost(self, q):
        return per_element(q["E"], **self.per_element)


@register
class ReLU(_Unary):
    __doc__ = "relu: max(0, x), 1 cmp per element, in place."
    name = "relu"
    per_element = {"cmp": 1}


@register
class Sigmoid(_Unary):
    __doc__ = "sigmoid: 1/(1 + exp(−x)), 1 exp + 1 add + 1 div per element, in place."
    name = "sigmoid"
    per_element = {"exp": 1, "add": 1, "div": 1}


@register
class SiLU(_Unary):
    __doc__ = "silu: x·sigmoid(x), computed x/(1 + exp(−x)) as PyTorch does: 1 exp + 1 add + 1 div per element, in place."
    name = "silu"
    per_element = {"exp": 1, "add": 1, "div": 1}


@register
class Tanh(_Unary):
    __doc__ = "tanh: 1 tanh per element, in place."
    name = "tanh"
    per_element = {"tanh": 1}


@register
class GELU(_Unary):
    __doc__ = "gelu: 0.5·x·(1 + erf(x/√2)), 3 mul + 1 add + 1 erf per element (tanh form: 6 mul, 2 add, 1 tanh)."
    name = "gelu"
    args = (Arg("approximate", "choice", "none", choices=("none", "tanh"),
                doc="'none': the exact erf form; 'tanh': the tanh approximation (nn.GELU's approximate)"),)

    def quantities(self, a, inputs):
        q = super().quantities(a, inputs)
        q["approximate"] = a.approximate
        return q

    def cost(self, q):
        if q["approximate"] == "tanh":
            return per_element(q["E"], mul=6, add=2, tanh=1)
        return per_element(q["E"], mul=3, add=1, erf=1)


@register
class Dropout(_Unary):
    __doc__ = "dropout: the identity at inference; no cost."
    view = True
    name = "dropout"
    args = (Arg("p", "prob", 0.5, doc="probability of zeroing an element in training; no effect at inference"),)

    def cost(self, q):
        return Cost()


@register
class Identity(_Unary):
    __doc__ = "identity: no cost."
    view = True
    name = "identity"

    def cost(self, q):
        return Cost()


@register
class Softmax(LayerKind):
    """softmax along ``dim`` (default the last), numerically stable as PyTorch computes it.

    Per vector of n elements: max (n − 1 cmp), subtract it (n add), exp (n), sum (n − 1 add),
    divide (n div).  Its output is a new tensor: E activations.
    """

    name = "softmax"
    family = "elementwise"
    takes = "x [...]: softmax over the vectors along dim (rank ≥ 1)"
    args = (Arg("dim", "int", -1, doc="the dim normalised over (negative counts from the end)"),)

    def quantities(self, a, inputs):
        (x,) = inputs
        if not -len(x) <= a.dim < len(x) or not x:
            raise ShapeError(f"softmax dim {a.dim} is out of range for an input {fmt_shape(x)}")
        n = x[a.dim]
        return Quantities(x=tuple(x), E=numel(x), n=n, V=numel(x) / n)

    def shape(self, q):
        return q["x"]

    def cost(self, q):
        E, V, n = q["E"], q["V"], q["n"]
        c = ops(cmp=V * (n - 1), add=V * (2 * n - 1), exp=E, div=E)
        return Cost(activations=E, ops=c, fma_ops=sum(c.values()))


class _Binary(LayerKind):
    """k inputs combined elementwise with broadcasting: k − 1 ops per output element."""

    family = "elementwise"
    min_inputs, max_inputs = 2, None
    takes = "two or more tensors, broadcast together as in PyTorch (any rank)"
    op_kind = ""

    def quantities(self, a, inputs):
        out = broadcast(inputs, self.name)
        return Quantities(out=out, E=numel(out), k=len(inputs))

    def shape(self, q):
        return q["out"]

    def cost(self, q):
        return per_element(q["E"], activations=q["E"], **{self.op_kind: q["k"] - 1})


@register
class Add(_Binary):
    __doc__ = _Binary.__doc__ + "  (add: k − 1 add per element)"
    name = "add"
    op_kind = "add"


@register
class Mul(_Binary):
    __doc__ = _Binary.__doc__ + "  (mul: k − 1 mul per element)"
    name = "mul"
    op_kind = "mul"
