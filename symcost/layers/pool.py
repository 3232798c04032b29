"""Pooling: ``maxpool1d``/``maxpool2d`` and ``avgpool1d``/``avgpool2d``.

Notation (the notes'): input C×M×N, window W×H, output C×M1×N1 with
M1 = ⌊(M + 2P − D(W − 1) − 1)/S⌋ + 1; the stride defaults to the window.
"""

from __future__ import annotations

from ..cost import Cost, ops
from ..errors import ShapeError, SpecError
from .base import Arg, LayerKind, Quantities, numel, register, require_positive, require_rank
from .conv import AXES, conv_out


WINDOW = "W (×H): the window's extent"
STRIDE = "S: step between windows (default: kernel_size, as in PyTorch)"
PADDING = "P: padding on each side (−∞ for max, 0 for average), at most half the window"
CEIL_MODE = "round the output size up instead of down: not supported (use padding)"


class _Pool(LayerKind):
    family = "pool"
    dilated = True

    def default(self, a, so_far):
        if a.name == "stride":  # PyTorch: stride defaults to kernel_size
            return so_far["kernel_size"]
        return super().default(a, so_far)

    def quantities(self, a, inputs):
        (x,) = inputs
        require_rank(x, self.spatial + 1, self.name)
        if a.ceil_mode:
            raise SpecError(f"{self.name}: ceil_mode=true is not supported; use padding instead")
        q = Quantities(C=x[0])
        for axis, (m, w) in enumerate(AXES[: self.spatial]):
            M, W, S, P = x[axis + 1], a.kernel_size[axis], a.stride[axis], a.padding[axis]
            D = a.dilation[axis] if self.dilated else 1
            if not (2 * P - W).free_symbols and 2 * P > W:
                raise ShapeError(f"{self.name}: padding {P} must be at most half of kernel_size {W}")
            span = D * (W - 1) + 1
            if not (M + 2 * P - span).free_symbols and (M + 2 * P - span) < 0:
                raise ShapeError(
                    f"{self.name}: kernel_size {W} is larger than the padded input {M + 2 * P}"
                )
            out = conv_out(M, W, S, P, D)
            q.update({m: M, w: W, f"S_{w}": S, f"P_{w}": P, f"D_{w}": D, f"{m}1": out})
            require_positive(q, out, f"{self.name} output size {m}1 = {out}")
        return q

    def shape(self, q):
        return (q["C"],) + tuple(q[f"{m}1"] for m, _ in AXES[: self.spatial])

    def window(self, q):
        return numel(tuple(q[w] for _, w in AXES[: self.spatial]))

    def nodes(self, q):
        return numel(self.shape(q))


class _MaxPool(_Pool):
    """Max pooling: a window of k = W·H elements takes k − 1 comparisons (padding −∞ included).

    ops: cmp C·M1·N1·(W·H − 1)   (the notes' (hw − 1) per output)
    """

    args = (
        Arg("kernel_size", "sizes", doc=WINDOW),
        Arg("stride", "sizes", None, doc=STRIDE),
        Arg("padding", "sizes0", 0, doc=PADDING),
        Arg("dilation", "sizes", 1, doc="D: spacing between window elements"),
        Arg("ceil_mode", "bool", False, doc=CEIL_MODE),
    )

    def cost(self, q):
        nodes, k = self.nodes(q), self.window(q)
        flops = nodes * (k - 1)
        return Cost(activations=nodes, ops=ops(cmp=flops), fma_ops=flops)


class _AvgPool(_Pool):
    """Average pooling: a window of k = W·H elements takes k − 1 additions and 1 division.

    ops: add C·M1·N1·(W·H − 1), div C·M1·N1
    """

    dilated = False
    args = (
        Arg("kernel_size", "sizes", doc=WINDOW),
        Arg("stride", "sizes", None, doc=STRIDE),
        Arg("padding", "sizes0", 0, doc=PADDING),
        Arg("ceil_mode", "bool", False, doc=CEIL_MODE),
        Arg("count_include_pad", "bool", True,
            doc="divide by the whole window, padding included (PyTorch's default); the count is the same either way"),
    )

    def cost(self, q):
        nodes, k = self.nodes(q), self.window(q)
        return Cost(activations=nodes, ops=ops(add=nodes * (k - 1), div=nodes), fma_ops=nodes * k)


@register
class MaxPool1d(_MaxPool):
    name = "maxpool1d"
    spatial = 1
    takes = "x [C, M]: channels, then length (rank 2)"


@register
class MaxPool2d(_MaxPool):
    name = "maxpool2d"
    spatial = 2
    takes = "x [C, M, N]: channels, then two spatial axes (rank 3)"


@register
class AvgPool1d(_AvgPool):
    name = "avgpool1d"
    spatial = 1
    takes = "x [C, M]: channels, then length (rank 2)"


@register
class AvgPool2d(_AvgPool):
    name = "avgpool2d"
    spatial = 2
    takes = "x [C, M, N]: channels, then two spatial axes (rank 3)"
