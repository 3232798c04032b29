"""Normalisation: ``layernorm`` and ``rmsnorm`` (over the last dim) and ``batchnorm1d``/``batchnorm2d``
(inference).

layernorm, per vector of n elements (V vectors):
  mean μ = Σx/n                (n − 1 add, 1 div)
  d = x − μ                    (n add)
  σ² = Σd²/n                   (n mul, n − 1 add, 1 div)
  s = √(σ² + ε)                (1 add, 1 sqrt)
  y = d/s                      (n div)
  y·γ + β  (affine)            (n mul, n add)
rmsnorm (nn.RMSNorm: LLaMA's), per vector of n elements:
  ms = Σx²/n                   (n mul, n − 1 add, 1 div)
  s = √(ms + ε)                (1 add, 1 sqrt)
  y = x/s                      (n div)
  y·γ  (affine; no β)          (n mul)
batchnorm at inference, with running statistics, C channels, E elements:
  per channel s = √(var + ε)   (1 add, 1 sqrt)
  per element ((x − μ)/s)·γ + β (1 add, 1 div; affine: 1 mul, 1 add)
"""

from __future__ import annotations

from ..cost import Cost, ops
from ..errors import ShapeError, SpecError
from .base import Arg, LayerKind, Quantities, fmt_shape, numel, register, require_rank, same


@register
class LayerNorm(LayerKind):
    """layernorm over the last dimension n: params 2n (γ, β); see the module docstring for ops."""

    name = "layernorm"
    family = "norm"
    takes = "x [..., n]: normalised over the last dim (rank ≥ 1)"
    args = (
        Arg("eps", "prob", 1e-5, doc="ε added to the variance; no effect on counts"),
        Arg("elementwise_affine", "bool", True, doc="learnable γ (and β) per feature: n (2n) parameters"),
        Arg("bias", "bool", True, doc="with elementwise_affine: learn β too (nn.LayerNorm's bias)"),
    )

    def quantities(self, a, inputs):
        (x,) = inputs
        if not x:
            raise ShapeError(f"layernorm needs an input with at least one dimension, got {fmt_shape(x)}")
        n = x[-1]
        aff = int(a.elementwise_affine)
        return Quantities(x=tuple(x), n=n, V=numel(x[:-1]), g=aff, b=aff * int(a.bias))

    def shape(self, q):
        return q["x"]

    def cost(self, q):
        n, V, g, b = q["n"], q["V"], q["g"], q["b"]
        c = ops(
            add=V * (3 * n - 1 + b * n),
            mul=V * (n + g * n),
            div=V * (n + 2),
            sqrt=V,
        )
        return Cost(params=(g + b) * n, activations=V * n, ops=c, fma_ops=sum(c.values()))


@register
class RMSNorm(LayerKind):
    """rmsnorm over the last dimension n (nn.RMSNorm): params n (γ; no β); see the module
    docstring for ops: per vector mul n + γ·n, add n, div n + 1, 1 sqrt."""

    name = "rmsnorm"
    family = "norm"
    takes = "x [..., n]: normalised over the last dim (rank ≥ 1)"
    args = (
        Arg("eps", "prob", None, doc="ε (nn.RMSNorm's default: the dtype's machine epsilon); no effect on counts"),
        Arg("elementwise_affine", "bool", True, doc="learnable γ per feature: n parameters"),
    )

    def quantities(self, a, inputs):
        (x,) = inputs
        if not x:
            raise ShapeError(f"rmsnorm needs an input with at least one dimension, got {fmt_shape(x)}")
        return Quantities(x=tuple(x), n=x[-1], V=numel(x[:-1]), g=int(a.elementwise_affine))

    def shape(self, q):
        return q["x"]

    def cost(self, q):
        n, V, g = q["n"], q["V"], q["g"]
        c = ops(add=V * n, mul=V * (n + g * n), div=V * (n + 1), sqrt=V)
        return Cost(params=g * n, activations=V * n, ops=c, fma_ops=sum(c.values()))


class _BatchNorm(LayerKind):
    """batchnorm at inference: params 2C (γ, β; running statistics are buffers, not parameters)."""

    family = "norm"
    ranks: tuple = ()
    args = (
        Arg("eps", "prob", 1e-5, doc="ε added to the variance; no effect on counts"),
        Arg("momentum", "prob", 0.1, doc="update rate of the running statistics in training; no effect at inference"),
        Arg("affine", "bool", True, doc="learnable γ and β per channel: 2C parameters"),
        Arg("track_running_stats", "bool", True,
            doc="normalise with running mean and variance (buffers, not parameters); false is not supported"),
        Arg("num_features", "size", None, doc="C: checked against the input's channels when given"),
    )

    def quantities(self, a, inputs):
        (x,) = inputs
        require_rank(x, self.ranks, self.name)
        if not a.track_running_stats:  # PyTorch then normalises with the batch's own statistics
            raise SpecError(f"{self.name}: track_running_stats=false is not supported (inference with "
                            "batch statistics); symcost counts batchnorm with running statistics")
        if a.num_features is not None and not same(a.num_features, x[0]):
            raise ShapeError(f"{self.name} expects num_features {a.num_features}, but its input is {fmt_shape(x)}")
        return Quantities(x=tuple(x), C=x[0], E=numel(x), g=int(a.affine))

    def shape(self, q):
        return q["x"]

    def cost(self, q):
        C, E, g = q["C"], q["E"], q["g"]
        c = ops(add=C + E * (1 + g), div=E, mul=E * g, sqrt=C)
        return Cost(params=2 * C * g, activations=E, ops=c, fma_ops=sum(c.values()))


@register
class BatchNorm1d(_BatchNorm):
    name = "batchnorm1d"
    ranks = (1, 2)
    takes = "x [C] or [C, L]: channels first (rank 1 or 2)"


@register
class BatchNorm2d(_BatchNorm):
    name = "batchnorm2d"
    ranks = (3,)
    takes = "x [C, M, N]: channels, then two spatial axes (rank 3)"
