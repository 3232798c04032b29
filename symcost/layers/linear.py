"""Linear algebra: ``linear`` and ``matmul``."""

from __future__ import annotations

import sympy

from ..cost import Cost, ops
from ..errors import ShapeError
from .base import Arg, LayerKind, Quantities, broadcast, fmt_shape, numel, register, same


@register
class Linear(LayerKind):
    """y = W x + b on the last dimension (the notes' perceptron, k nodes of n inputs).

    params = n·k + k                      (W: k×n, b: k)
    macs   = R·k·n                        (R = positions: product of the leading dims)
    ops    : mul R·k·n, add R·k·(n − 1) + R·k   -> 2n per output with bias
    fma    = R·k·(n + 1)                  (the notes' pipelined n + 1)
    """

    name = "linear"
    family = "linear"
    takes = "x [..., n]: features in the last dim, any leading dims (rank ≥ 1)"
    args = (
        Arg("out_features", "size", doc="k: size of each output vector (nn.Linear's out_features)"),
        Arg("bias", "bool", True, doc="add a learnable bias b (k parameters)"),
        Arg("in_features", "size", None, doc="n: checked against the input's last dim when given"),
        Arg("tied_to", "name", None,
            doc="id of a layer whose weight this one reuses (an embedding or linear of the same k×n "
                "weight: weight tying); the shared weight is counted once"),
    )

    def quantities(self, a, inputs):
        (x,) = inputs
        if not x:
            raise ShapeError(f"linear expects an input with at least one dimension, got {fmt_shape(x)}")
        if a.in_features is not None and not same(a.in_features, x[-1]):
            raise ShapeError(f"linear expects in_features {a.in_features}, but its input is {fmt_shape(x)}")
        return Quantities(
            lead=tuple(x[:-1]), R=numel(x[:-1]), n=x[-1], k=a.out_features,
            b=int(a.bias), tied=int(a.tied_to is not None),
        )

    def shape(self, q):
        return q["lead"] + (q["k"],)

    def weight_shape(self, q):
        """W: k×n (out_features × in_features), as nn.Linear.weight."""
        return (q["k"], q["n"])

    def cost(self, q):
        R, n, k, b = q["R"], q["n"], q["k"], q["b"]
        return Cost(
            params=(1 - q["tied"]) * n * k + k * b,
            activations=R * k,
            macs=R * k * n,
            ops=ops(mul=R * k * n, add=R * k * (n - 1) + R * k * b),
            fma_ops=R * k * (n + b),
        )


@register
class Matmul(LayerKind):
    """C = A @ B with torch.matmul semantics (1-D operands, broadcast batch dims).

    A: [..., n, k], B: [..., k, m] -> [..., n, m]; each output is a dot product of k terms.
    macs = Bt·n·k·m;  ops: mul Bt·n·m·k, add Bt·n·m·(k − 1);  fma = Bt·n·m·k
    """

    name = "matmul"
    family = "linear"
    takes = "two: A [..., n, k] and B [..., k, m]; a 1-D operand is a vector, as in torch.matmul (rank ≥ 1)"
    min_inputs = max_inputs = 2

    def quantities(self, a, inputs):
        A, B = (tuple(s) for s in inputs)
        if not A or not B:
            raise ShapeError("matmul needs operands with at least one dimension")
        one = sympy.Integer(1)
        a2 = (one,) + A if len(A) == 1 else A
        b2 = B + (one,) if len(B) == 1 else B
        n, k1 = a2[-2], a2[-1]
        k2, m = b2[-2], b2[-1]
        if not same(k1, k2):
            raise ShapeError(
                f"matmul: inner dimensions differ: {fmt_shape(A)} @ {fmt_shape(B)} ({k1} vs {k2})"
            )
        batch = broadcast([a2[:-2], b2[:-2]], "matmul") if (len(a2) > 2 or len(b2) > 2) else ()
        out = batch + ((n,) if len(A) > 1 else ()) + ((m,) if len(B) > 1 else ())
        return Quantities(out=out, Bt=numel(batch), n=n, k=k1, m=m)

    def shape(self, q):
        return q["out"]

    def cost(self, q):
        Bt, n, k, m = q["Bt"], q["n"], q["k"], q["m"]
        dots = Bt * n * m
        return Cost(
            activations=numel(q["out"]),
            macs=dots * k,
            ops=ops(mul=dots * k, add=dots * (k - 1)),
            fma_ops=dots * k,
        )
