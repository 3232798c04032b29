"""Convolutions: ``conv1d``/``conv2d``/``conv3d`` and ``conv_transpose1d``/``conv_transpose2d``.

Notation (the notes'): input C×M×N, K kernels of C/G×W×H, output K×M1×N1,
stride S, padding P, dilation D, groups G, per axis (``S_W`` is the stride
along the axis of the kernel width W).  A third spatial axis is L with
kernel extent R.
"""

from __future__ import annotations

import sympy

from ..cost import Cost, expand, ops, whole_polynomial
from ..errors import ShapeError
from .base import (Arg, LayerKind, Quantities, fmt_shape, numel, register, require_divisible,
                   require_positive, require_rank, same)

AXES = (("M", "W"), ("N", "H"), ("L", "R"))


def conv_out(M, W, S, P, D):
    """PyTorch's output length: M1 = ⌊(M + 2P − D(W − 1) − 1)/S⌋ + 1 (the notes' ⌊(M − W + 2P)/S⌋ + 1 when D = 1)."""
    return floor_div(M + 2 * P - D * (W - 1) - 1, S) + 1


def floor_div(n, d):
    """⌊n/d⌋ of a whole number n by a whole d ≥ 1, kept one floor deep: when n is ⌊p/q⌋ + r
    (the length a strided layer before produced) with r a whole number,
    ⌊(⌊p/q⌋ + r)/d⌋ = ⌊(p/q + r)/d⌋ = ⌊(p + r·q)/(q·d)⌋.  A chain of n strided layers
    thus gives one floor, not n nested ones -- which sympy re-simplified at every layer
    (a 50-layer chain took seconds per layer) and whose depth ended in RecursionError."""
    if d.is_integer and d.is_positive:
        floors = [t for t in sympy.Add.make_args(n) if isinstance(t, sympy.floor)]
        if len(floors) == 1:
            r = n - floors[0]
            p, q = floors[0].args[0].as_numer_denom()
            if whole_polynomial(r) and q.is_integer and q.is_positive:
                return _floor(expand(p + r * q) / (q * d))
    return _floor(n / d)


def _floor(x):
    """⌊x⌋ with its whole-number terms taken out, as sympy's floor does, but without asking
    sympy's assumptions about the rest (most of the time of a long chain of strided layers)."""
    if not x.free_symbols:
        return sympy.floor(x)
    whole, rest = [], []
    for t in sympy.Add.make_args(x):
        (whole if whole_polynomial(t) or isinstance(t, (sympy.floor, sympy.ceiling)) else rest).append(t)
    return sympy.Add(*whole, *([sympy.floor(sympy.Add(*rest), evaluate=False)] if rest else []))


def conv_transpose_out(M, W, S, P, D, OP):
    """PyTorch's output length of a transposed convolution: (M − 1)·S − 2P + D(W − 1) + OP + 1."""
    return (M - 1) * S - 2 * P + D * (W - 1) + OP + 1


def _channels(kind, a, x, q):
    require_rank(x, kind.spatial + 1, kind.name)
    C = x[0]
    if a.in_channels is not None and not same(a.in_channels, C):
        raise ShapeError(f"{kind.name} expects in_channels {a.in_channels}, but its input is {fmt_shape(x)}")
    q.update(C=C, K=a.out_channels, G=a.groups, b=int(a.bias))
    require_divisible(C, a.groups, f"{kind.name} in_channels must be divisible by groups")
    require_divisible(a.out_channels, a.groups, f"{kind.name} out_channels must be divisible by groups")


def _common_args(transposed: bool) -> tuple[Arg, ...]:
    return (
        Arg("out_channels", "size", doc="K: number of kernels, the output's channels"),
        Arg("kernel_size", "sizes", doc="W (×H×R): the kernel's extent"),
        Arg("stride", "sizes", 1, doc="S: step between kernel positions"),
        Arg("padding", "sizes0" if transposed else "padding", 0,
            doc=("P: zeros cropped from each side of the output" if transposed else
                 "P: zeros added on each side of the input; 'same' (stride 1): the output keeps the "
                 "input's size; 'valid': no padding")),
        *((Arg("output_padding", "sizes0", 0,
               doc="OP: extra size added to one side of the output (smaller than stride or dilation)"),)
          if transposed else ()),
        Arg("dilation", "sizes", 1, doc="D: spacing between kernel elements"),
        Arg("groups", "size", 1, doc="G: channels split into G groups, each convolved on its own "
                                     "(C and K divisible by G; G = C is a depthwise convolution)"),
        Arg("bias", "bool", True, doc="add a learnable bias per output channel (K parameters)"),
        Arg("in_channels", "size", None, doc="C: checked against the input's channels when given"),
    )


class _Conv(LayerKind):
    """Convolution over ``spatial`` axes, one dot product per output element.

    n      = (C/G)·W·H                      (terms of one dot product)
    params = K·(C/G)·W·H + K
    macs   = K·M1·N1·(C/G)·W·H              (products with padding zeros count, as PyTorch computes them)
    ops    : mul K·M1·N1·n, add K·M1·N1·(n − 1 + 1)   -> the notes' K·M1·N1·2CHW
    fma    = K·M1·N1·(n + 1)                  -> the notes' pipelined K·M1·N1·(CHW + 1)
    """

    family = "conv"
    args = _common_args(transposed=False)

    def quantities(self, a, inputs):
        (x,) = inputs
        q = Quantities()
        _channels(self, a, x, q)
        for axis, (m, w) in enumerate(AXES[: self.spatial]):
            M, W, S, D = x[axis + 1], a.kernel_size[axis], a.stride[axis], a.dilation[axis]
            if a.padding == "same":
                if S != 1:
                    raise ShapeError(f"{self.name}: padding='same' needs stride 1, not {S}")
                P, out = sympy.floor(D * (W - 1) / 2), M
            else:
                P = sympy.Integer(0) if a.padding == "valid" else a.padding[axis]
                span = D * (W - 1) + 1
                if not (M + 2 * P - span).free_symbols and M + 2 * P - span < 0:
                    raise ShapeError(
                        f"{self.name}: kernel_size {W}" + (f" (dilated to {span})" if D != 1 else "")
                        + f" is larger than the padded input {M + 2 * P} (size {M} + 2·padding {P})"
                    )
                out = conv_out(M, W, S, P, D)
            q.update({m: M, w: W, f"S_{w}": S, f"P_{w}": P, f"D_{w}": D, f"{m}1": out})
            require_positive(q, out, f"{self.name} output size {m}1 = {out}")
        return q

    def outputs(self, q):
        return tuple(q[f"{m}1"] for m, _ in AXES[: self.spatial])

    def kernel(self, q):
        return tuple(q[w] for _, w in AXES[: self.spatial])

    def shape(self, q):
        return (q["K"],) + self.outputs(q)

    def cost(self, q):
        K, C, G, b = q["K"], q["C"], q["G"], q["b"]
        n = C / G * numel(self.kernel(q))
        nodes = K * numel(self.outputs(q))
        return Cost(
            params=K * n + K * b,
            activations=nodes,
            macs=nodes * n,
            ops=ops(mul=nodes * n, add=nodes * (n - 1 + b)),
            fma_ops=nodes * (n + b),
        )


@register
class Conv1d(_Conv):
    name = "conv1d"
    spatial = 1
    takes = "x [C, M]: channels, then length (rank 2)"


@register
class Conv2d(_Conv):
    name = "conv2d"
    spatial = 2
    takes = "x [C, M, N]: channels, then two spatial axes (rank 3)"


@register
class Conv3d(_Conv):
    name = "conv3d"
    spatial = 3
    takes = "x [C, M, N, L]: channels, then three spatial axes (rank 4)"


class _ConvTranspose(LayerKind):
    """Transposed convolution: every input element scatters C→K/G products into the output.

    params = C·(K/G)·W·H + K
    macs   = C·M·N·(K/G)·W·H                 (input positions; the padding is cropped afterwards)
    ops    : mul = macs; add = macs + K·M1·N1 (each product is accumulated into a zero-initialised
             buffer, then the bias is added to each output element)
    fma    = macs + K·M1·N1
    """

    family = "conv"
    args = _common_args(transposed=True)

    def quantities(self, a, inputs):
        (x,) = inputs
        q = Quantities()
        _channels(self, a, x, q)
        for axis, (m, w) in enumerate(AXES[: self.spatial]):
            M, W, S, D = x[axis + 1], a.kernel_size[axis], a.stride[axis], a.dilation[axis]
            P, OP = a.padding[axis], a.output_padding[axis]
            limit = sympy.Max(S, D)
            if not (limit - OP).free_symbols and OP >= limit:
                raise ShapeError(f"{self.name}: output_padding {OP} must be smaller than stride or dilation")
            out = conv_transpose_out(M, W, S, P, D, OP)
            q.update({m: M, w: W, f"S_{w}": S, f"P_{w}": P, f"D_{w}": D, f"OP_{w}": OP, f"{m}1": out})
            require_positive(q, out, f"{self.name} output size {m}1 = {out}")
        return q

    outputs = _Conv.outputs
    kernel = _Conv.kernel
    shape = _Conv.shape

    def inputs_positions(self, q):
        return numel(tuple(q[m] for m, _ in AXES[: self.spatial]))

    def cost(self, q):
        K, C, G, b = q["K"], q["C"], q["G"], q["b"]
        products = self.inputs_positions(q) * C * (K / G) * numel(self.kernel(q))
        nodes = K * numel(self.outputs(q))
        return Cost(
            params=C * (K / G) * numel(self.kernel(q)) + K * b,
            activations=nodes,
            macs=products,
            ops=ops(mul=products, add=products + nodes * b),
            fma_ops=products + nodes * b,
        )


@register
class ConvTranspose1d(_ConvTranspose):
    name = "conv_transpose1d"
    spatial = 1
    takes = "x [C, M]: channels, then length (rank 2)"


@register
class ConvTranspose2d(_ConvTranspose):
    name = "conv_transpose2d"
    spatial = 2
    takes = "x [C, M, N]: channels, then two spatial axes (rank 3)"
