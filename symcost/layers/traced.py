"""Kinds that a traced PyTorch program needs besides the layers: ``view``, ``constant``, ``scalar``.

``symcost.from_torch`` turns every tensor operation of a module into a node; these three
cover what is neither a layer nor an elementwise op between tensors:

- ``view``      a view of (part of) its input with an explicit output shape: permute,
                slicing, select, unsqueeze, expand, chunk ... -- free (no ops, no activations);
- ``constant``  a tensor that does not depend on the data (a parameter or buffer used
                directly, ``torch.arange``, a mask): free; ``params`` are the learnable
                elements it holds (0 for buffers and computed constants).  Its input only
                anchors it in the graph;
- ``scalar``    an elementwise op with a Python number (``x * 0.5``, ``x / √d``, ``x + 1``):
                1 op of kind ``operator`` per element; a new tensor (E activations).
"""

from __future__ import annotations

from ..cost import Cost
from .base import Arg, LayerKind, Quantities, numel, register
from .elementwise import per_element


@register
class View(LayerKind):
    """view: the input seen with the shape ``shape`` (may select part of it); free."""

    view = True
    name = "view"
    family = "traced"
    takes = "x [...]: the tensor viewed (any rank)"
    args = (Arg("shape", "shape", doc="the output shape, every dim given (no -1)"),)

    def quantities(self, a, inputs):
        if -1 in a.shape:
            from ..errors import SpecError

            raise SpecError("view needs every dimension of its shape (no -1); use reshape to infer one")
        return Quantities(out=tuple(a.shape))

    def shape(self, q):
        return q["out"]

    def cost(self, q):
        return Cost()


@register
class Constant(LayerKind):
    """constant: a data-independent tensor of shape ``shape``; params = ``params``, no ops."""

    view = True
    name = "constant"
    family = "traced"
    takes = "any one tensor: it only places the constant in the graph (any rank)"
    args = (Arg("shape", "shape", doc="the constant's shape, every dim given (no -1)"),
            Arg("params", "size0", 0, doc="learnable elements it holds (a parameter used directly; 0 for a buffer)"))

    def quantities(self, a, inputs):
        if -1 in a.shape:
            from ..errors import SpecError

            raise SpecError("constant needs every dimension of its shape (no -1)")
        return Quantities(out=tuple(a.shape), p=a.params)

    def shape(self, q):
        return q["out"]

    def cost(self, q):
        return Cost(params=q["p"])


@register
class Scalar(LayerKind):
    """scalar: x (operator) c with a number c, E elements: E ops of kind ``operator`` (sub counts as add)."""

    name = "scalar"
    family = "traced"
    takes = "x [...]: E elements (any rank)"
    args = (Arg("operator", "choice", "mul", choices=("add", "sub", "mul", "div"),
                doc="the operation with the number: x + c, x − c, x·c or x/c"),)

    def quantities(self, a, inputs):
        (x,) = inputs
        return Quantities(x=tuple(x), E=numel(x), operator=a.operator)

    def shape(self, q):
        return q["x"]

    def cost(self, q):
        kind = "add" if q["operator"] == "sub" else q["operator"]
        return per_element(q["E"], activations=q["E"], **{kind: 1})
