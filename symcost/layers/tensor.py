"""Layers that move data but compute nothing: ``embedding``, ``flatten``, ``reshape``,
``transpose``, ``concat``.

``flatten``, ``reshape`` and ``transpose`` are views: no operations, no activation memory.
``concat`` writes a new tensor (its elements are activations); ``embedding`` is a lookup
(no operations; its output elements are activations).
"""

from __future__ import annotations

import sympy

from ..cost import Cost
from ..errors import ShapeError
from .base import Arg, LayerKind, Quantities, axis, fmt_shape, numel, register, same


@register
class Embedding(LayerKind):
    """embedding: a table of V vectors of size E; input L indices -> [L, E].

    params = V·E;  ops 0 (a lookup);  activations L·E
    """

    name = "embedding"
    family = "tensor"
    takes = "indices [...]: L indices, any shape (any rank)"
    args = (Arg("num_embeddings", "size", doc="V: number of vectors in the table (the vocabulary)"),
            Arg("embedding_dim", "size", doc="E: size of each vector"),
            Arg("padding_idx", "int", None, doc="an index whose vector is not trained; no effect on counts"))

    def quantities(self, a, inputs):
        (x,) = inputs
        return Quantities(x=tuple(x), L=numel(x), V=a.num_embeddings, E=a.embedding_dim)

    def shape(self, q):
        return q["x"] + (q["E"],)

    def cost(self, q):
        return Cost(params=q["V"] * q["E"], activations=q["L"] * q["E"])

    def weight_shape(self, q):
        """The table: V×E, as nn.Embedding.weight (a tied output projection E -> V has the same)."""
        return (q["V"], q["E"])


@register
class Flatten(LayerKind):
    """flatten dims start_dim..end_dim into one (a view, free).  One sample has no batch
    dimension, so the default flattens everything: start_dim 0, end_dim −1."""

    view = True
    name = "flatten"
    family = "tensor"
    takes = "x [...] (any rank)"
    args = (Arg("start_dim", "int", 0, doc="first dim flattened (0: the first dim of one sample; no batch dim)"),
            Arg("end_dim", "int", -1, doc="last dim flattened (negative counts from the end)"))

    def quantities(self, a, inputs):
        (x,) = inputs
        if not x:
            return Quantities(out=(sympy.Integer(1),))
        s, e = axis(a.start_dim, len(x), "flatten"), axis(a.end_dim, len(x), "flatten")
        if s > e:
            raise ShapeError(f"flatten: start_dim {a.start_dim} comes after end_dim {a.end_dim}")
        return Quantities(out=tuple(x[:s]) + (numel(x[s : e + 1]),) + tuple(x[e + 1 :]))

    def shape(self, q):
        return q["out"]

    def cost(self, q):
        return Cost()


@register
class Reshape(LayerKind):
    """reshape/view to ``shape`` (one −1 is inferred); free."""

    view = True
    name = "reshape"
    family = "tensor"
    takes = "x [...]: as many elements as shape (any rank)"
    args = (Arg("shape", "shape", doc="the new shape of one sample (no batch dim), a list of sizes; one -1 is inferred"),)

    def quantities(self, a, inputs):
        (x,) = inputs
        total = numel(x)
        known = numel(tuple(d for d in a.shape if d != -1))
        if -1 in a.shape:
            rest = sympy.cancel(total / known)
            if not rest.free_symbols and not rest.is_Integer:
                raise ShapeError(f"reshape: {fmt_shape(x)} cannot be viewed as {list(a.shape)}")
            out = tuple(rest if d == -1 else d for d in a.shape)
        else:
            if not same(total, known):
                raise ShapeError(f"reshape: {fmt_shape(x)} has {total} elements, {list(a.shape)} has {known}")
            out = tuple(a.shape)
        return Quantities(out=out)

    def shape(self, q):
        return q["out"]

    def cost(self, q):
        return Cost()


@register
class Transpose(LayerKind):
    """transpose two dims (a view, free)."""

    view = True
    name = "transpose"
    family = "tensor"
    takes = "x [...]: with both dims in range (rank ≥ 2)"
    args = (Arg("dim0", "int", 0, doc="first dim swapped (negative counts from the end)"),
            Arg("dim1", "int", 1, doc="second dim swapped"))

    def quantities(self, a, inputs):
        (x,) = inputs
        out = list(x)
        i, j = axis(a.dim0, len(x), "transpose"), axis(a.dim1, len(x), "transpose")
        out[i], out[j] = out[j], out[i]
        return Quantities(out=tuple(out))

    def shape(self, q):
        return q["out"]

    def cost(self, q):
        return Cost()


@register
class Concat(LayerKind):
    """concat inputs along ``dim``; all other dims must agree.  No operations; the
    output is a new tensor (its elements are activations)."""

    name = "concat"
    family = "tensor"
    min_inputs, max_inputs = 1, None
    takes = "one or more tensors of one rank, equal but along dim (rank ≥ 1)"
    args = (Arg("dim", "int", 0, doc="the dim joined along (negative counts from the end)"),)

    def quantities(self, a, inputs):
        first = inputs[0]
        d = axis(a.dim, len(first), "concat")
        for other in inputs[1:]:
            if len(other) != len(first) or not all(
                same(p, r) for i, (p, r) in enumerate(zip(first, other)) if i != d
            ):
                raise ShapeError(
                    f"concat along dim {a.dim} needs equal other dims, got {fmt_shape(first)} and {fmt_shape(other)}"
                )
        out = list(first)
        out[d] = sympy.Add(*(s[d] for s in inputs))
        return Quantities(out=tuple(out))

    def shape(self, q):
        return q["out"]

    def cost(self, q):
        return Cost(activations=numel(q["out"]))
