"""Reductions: ``sum``, ``mean``, ``amax`` and ``amin`` (torch.sum, torch.mean, torch.amax,
torch.amin) over ``dim``: one dim, a list of dims, or every dim when it is omitted.

Notation: E elements in, V = outputs, n = E/V elements reduced into each output (the product of
the reduced dims).  Per output, each a fold from the first element:

- ``sum``   n − 1 add
- ``mean``  n − 1 add, then 1 div by n
- ``amax``  n − 1 cmp   (``amin`` likewise)

The output is a new tensor: V activations.  ``keepdim`` leaves each reduced dim as 1.  No
dot products, so fma_ops = flops.
"""

from __future__ import annotations

import sympy

from ..cost import Cost, ops
from ..errors import ShapeError
from .base import Arg, LayerKind, Quantities, axis, numel, register


class _Reduce(LayerKind):
    """A fold over n elements per output: n − 1 ``fold`` operations, then ``after`` per output."""

    family = "reduction"
    takes = "x [...]: E elements (any rank)"
    args = (Arg("dim", "dims", None, doc="the dim, or list of dims, reduced (negative counts from the end; all when omitted)"),
            Arg("keepdim", "bool", False, doc="keep each reduced dim as a dim of size 1"))
    fold: str = ""
    after: dict = {}

    def quantities(self, a, inputs):
        (x,) = inputs
        x = tuple(x)
        rank = len(x)
        if a.dim is None:
            dims = tuple(range(rank))
        else:
            dims = tuple(sorted({axis(d, rank, self.name) for d in a.dim}))
            if len(dims) != len(a.dim):
                raise ShapeError(f"{self.name}: dims {list(a.dim)} name the same dim twice")
        n = numel(tuple(x[d] for d in dims))
        if a.keepdim:
            out = tuple(sympy.Integer(1) if i in dims else s for i, s in enumerate(x))
        else:
            out = tuple(s for i, s in enumerate(x) if i not in dims)
        return Quantities(x=x, out=out, E=numel(x), V=numel(out), n=n)

    def shape(self, q):
        return q["out"]

    def cost(self, q):
        V, n = q["V"], q["n"]
        c = ops(**{self.fold: V * (n - 1)}, **{kind: V * k for kind, k in self.after.items()})
        return Cost(activations=V, ops=c, fma_ops=sum(c.values()))


@register
class Sum(_Reduce):
    __doc__ = "sum over ``dim``: n − 1 add per output (n elements reduced into each)."
    name = "sum"
    fold = "add"


@register
class Mean(_Reduce):
    __doc__ = "mean over ``dim``: n − 1 add and 1 div per output (n elements reduced into each)."
    name = "mean"
    fold = "add"
    after = {"div": 1}


@register
class Amax(_Reduce):
    __doc__ = "amax over ``dim``: n − 1 cmp per output (n elements reduced into each)."
    name = "amax"
    fold = "cmp"


@register
class Amin(_Reduce):
    __doc__ = "amin over ``dim``: n − 1 cmp per output (n elements reduced into each)."
    name = "amin"
    fold = "cmp"
