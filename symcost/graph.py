"""The computation graph: nodes, shape propagation and aggregation.

A :class:`Model` is a networkx DiGraph whose nodes are layer applications
(or uses of a block: a sub-model defined once, used several times, repeated a
concrete or symbolic number of times).  :meth:`Model.analyze` walks the graph
in topological order, asks each node's kind for its quantities, output shape
and cost, and returns the per-node results.  The walker knows no layer by
name: everything layer-specific lives in :mod:`symcost.layers`.

Work and span: besides the summed cost (work), every node gets a start and an
end step on the critical path of the unrolled dependency graph -- one step
per layer application; a recurrent layer streams one step per time step (see
:meth:`symcost.layers.base.LayerKind.timing`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import networkx as nx
import sympy

from .cost import Cost, expand, polynomial
from .errors import ShapeError, SpecError, SymcostError, brief, nearest
from .layers.base import Args, LayerKind, Shape, fmt_shape, get_kind, numel, same
from .sizes import NAME_RE, to_size

ONE = sympy.Integer(1)
MAX_ID = 100
MAX_BLOCK_DEPTH = 100  # blocks used inside blocks: deeper nesting is refused (each level is Python recursion)
ID_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,%d}\Z" % (MAX_ID - 1))
ZERO = sympy.Integer(0)


_ACTIVE: list = []  # the models whose analyze() is running, outermost first


@dataclass(frozen=True)
class Node:
    """One layer application (or block use) in a model."""

    id: str
    op: str
    inputs: tuple[str, ...]
    args: Args
    kind: LayerKind | None = None       # a layer ...
    block: "Model | None" = None        # ... or a block
    repeat: sympy.Expr = ONE


@dataclass(frozen=True)
class NodeResult:
    """What the analysis found for one node."""

    id: str
    op: str
    shape: Shape
    cost: Cost                          # all repetitions
    quantities: Mapping[str, Any]
    start: sympy.Expr                   # step at which its first output is ready
    end: sympy.Expr                     # step at which all its output is ready
    steps: sympy.Expr = ONE             # its own span: steps from inputs ready to output ready
    repeat: sympy.Expr = ONE
    children: "Analysis | None" = None  # a block's breakdown, one repetition
    conditions: tuple = ()


@dataclass(frozen=True)
class Analysis:
    """Per-node results of one model for given input shapes."""

    model: "Model"
    input_shapes: Mapping[str, Shape]
    nodes: tuple[NodeResult, ...]
    outputs: tuple[str, ...]
    _memo: dict = field(default_factory=dict, compare=False, repr=False)  # derived once: its timing response

    @property
    def total(self) -> Cost:
        return Cost.total(n.cost for n in self.nodes)

    @property
    def steps(self) -> sympy.Expr:
        """Length of the critical path (span), in layer-application steps."""
        ends = [n.end for n in self.nodes]
        return smax(ends)

    @property
    def input_elements(self) -> sympy.Expr:
        return sympy.Add(*(numel(s) for s in self.input_shapes.values()))

    @property
    def conditions(self) -> list[tuple[sympy.Expr, str]]:
        """(expr, "layer 'id': what") for every symbolic size that must be >= 1; inside a
        block the path names the block use first: "layer 'blocks' > 'up': what"."""
        return self._conditions("layer ", set())

    def _conditions(self, path: str, seen: set) -> list[tuple[sympy.Expr, str]]:
        # A block used several times on the same shapes has one analysis, listed at its first
        # use: its conditions are the same at every use (and the uses can be exponentially many).
        out = []
        for n in self.nodes:
            out.extend((e, f"{path}{n.id!r}: {what}") for e, what in n.conditions)
            if n.children is not None and id(n.children) not in seen:
                seen.add(id(n.children))
                out.extend(n.children._conditions(f"{path}{n.id!r} > ", seen))
        return out

    def output_shapes(self) -> list[Shape]:
        by_id = {n.id: n for n in self.nodes}
        return [by_id[o].shape if o in by_id else self.input_shapes[o] for o in self.outputs]

    def __getitem__(self, node_id: str) -> NodeResult:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)


class Model:
    """A network: named inputs, layer nodes, and blocks.

    Build it from YAML (:func:`symcost.load`) or in Python::

        m = Model("LeNet-5", inputs={"x": [1, 32, 32]})
        m.add("conv2d", out_channels=6, kernel_size=5)   # input: the previous node
        m.add("relu")
        ...
        m.cost()
    """

    def __init__(
        self,
        name: str = "model",
        inputs: Mapping[str, Sequence | None] | Sequence | None = None,
        *,
        dims: Mapping[str, str] | None = None,
        batch: Any = 1,
        defaults: Mapping[str, Any] | None = None,
    ):
        self.name = name
        self.dims: dict[str, str] = dict(dims or {})
        #: sizes with a default value (d_ff = 4*d_model), applied by :meth:`cost` unless set
        self.defaults: dict[str, Any] = dict(defaults or {})
        self.graph = nx.DiGraph()
        self.blocks: dict[str, Model] = {}
        self.inputs: dict[str, Shape | None] = {}
        self.batch = to_size(batch, "batch")
        self._order: list[str] = []
        self._outputs: list[str] | None = None
        self._cache: dict = {}
        self._analyzing = False  # inside its own analyze(): a use of itself is a cycle
        self._next_id: dict[str, int] = {}  # op -> next number for an automatic id (conv2d1, conv2d2 ...)
        if inputs is None:
            inputs = {}
        if not isinstance(inputs, Mapping):  # a single input shape
            inputs = {"x": inputs}
        for iname, shape in inputs.items():
            self.add_input(iname, shape)

    # -- building ------------------------------------------------------------
    def add_input(self, name: str, shape: Sequence | None) -> str:
        self._check_new_id(name)
        if shape is not None:
            if isinstance(shape, (str, int)) or not isinstance(shape, (list, tuple)):
                shape = [shape]
            shape = tuple(to_size(d, f"input {name!r} dimension") for d in shape)
        self.inputs[name] = shape
        self.graph.add_node(name, input=True)
        self._order.append(name)
        self._cache.clear()
        return name

    def add_block(self, name: str, block: "Model") -> None:
        """Register a sub-model usable as an op (``add(name, ..., repeat=n)``)."""
        if name in self.blocks:
            raise SpecError(f"block {name!r} is defined twice")
        check_block_name(name)
        if block is self:
            raise SpecError(f"block {name!r} is the model itself: a model cannot contain itself")
        self.blocks[name] = block
        self._cache.clear()

    def add(self, op: str, *inputs: str, id: str | None = None, repeat: Any = 1, **args) -> str:
        """Add a node applying ``op`` to ``inputs`` (default: the last node added); return its id."""
        node_id = id if id is not None else self._fresh_id(op)
        where = f"layer {node_id!r}"
        try:
            self._check_new_id(node_id, given=id is not None)
            if not inputs:
                if not self._order:
                    raise SpecError("has no input: the model has no inputs yet")
                inputs = (self._order[-1],)
            if op in self.blocks:
                block, kind = self.blocks[op], None
                parsed = Args({})
                if args:
                    raise SpecError(f"block {op!r} takes no arguments, got {', '.join(args)}")
            else:
                block, kind = None, get_kind(op)
                kind.check_arity(len(inputs))
                parsed = kind.normalize(args)
            count = to_size(repeat, "repeat")
            if kind is not None and count != 1:
                raise SpecError("repeat applies to blocks only; define a block to repeat layers")
        except SymcostError as err:
            raise err.at(where) from None
        node = Node(node_id, op, tuple(inputs), parsed, kind, block, count)
        self.graph.add_node(node_id, node=node)
        for src in inputs:
            self.graph.add_edge(src, node_id)
        self._order.append(node_id)
        self._cache.clear()
        return node_id

    def set_outputs(self, outputs: Iterable[str]) -> None:
        self._outputs = list(outputs)
        self._cache.clear()

    def _check_new_id(self, node_id: str, *, given: bool = True) -> None:
        if not isinstance(node_id, str) or not node_id:
            raise SpecError(f"a node id must be a non-empty name, not {node_id!r}")
        if given and not ID_RE.match(node_id):  # ids reach LaTeX (\verb|id|), Markdown tables and JSON
            raise SpecError(f"{node_id[:80]!r} is not a valid id: use letters, digits, _, - and . "
                            f"(at most {MAX_ID} characters, not starting with - or .)")
        attrs = self.graph.nodes.get(node_id)
        if attrs is not None and ("node" in attrs or attrs.get("input")):
            raise SpecError(f"the id {node_id!r} is used twice")

    def _fresh_id(self, op: str) -> str:
        # Resume from the last number given to this op: linear in the number of layers, not quadratic
        # (a 1 MB spec of 80,000 unnamed relus used to take minutes here).
        i = self._next_id.get(op, 1)
        while f"{op}{i}" in self.graph or f"{op}{i}" in self.blocks:
            i += 1
        self._next_id[op] = i + 1
        return f"{op}{i}"

    # -- structure -----------------------------------------------------------
    @property
    def node_ids(self) -> list[str]:
        return [n for n in self._order if not self.graph.nodes[n].get("input")]

    def node(self, node_id: str) -> Node:
        return self.graph.nodes[node_id]["node"]

    def outputs(self) -> list[str]:
        if self._outputs is not None:
            return list(self._outputs)
        sinks = [n for n in self._order if self.graph.out_degree(n) == 0]
        return sinks or self._order[-1:]

    def _validate(self) -> None:
        for node_id in self.node_ids:
            for src in self.node(node_id).inputs:
                if src not in self.graph.nodes or (
                    "node" not in self.graph.nodes[src] and not self.graph.nodes[src].get("input")
                ):
                    known = [n for n in self._order]
                    raise SpecError(f"input {src!r} is not a node or model input" + nearest(src, known)).at(
                        f"layer {node_id!r}"
                    )
        for out in self._outputs or ():
            if out not in self._order:
                raise SpecError(f"output {out!r} is not a node" + nearest(out, self._order))
        if not nx.is_directed_acyclic_graph(self.graph):
            cycle = nx.find_cycle(self.graph)
            path = " -> ".join([u for u, _ in cycle] + [cycle[0][0]])
            raise SpecError(f"the graph has a cycle: {path}")

    # -- analysis --------------------------------------------------------------
    def analyze(self, input_shapes: Mapping[str, Shape] | None = None) -> Analysis:
        """Propagate shapes in topological order and cost every node.

        ``input_shapes`` overrides the declared input shapes (a block is
        analysed with the shapes it is used on).
        """
        shapes = dict(self.inputs)
        if input_shapes:
            for iname, shape in input_shapes.items():
                declared = shapes.get(iname)
                if declared is not None and (
                    len(declared) != len(shape) or not all(same(a, b) for a, b in zip(declared, shape))
                ):
                    raise ShapeError(f"input {iname!r} is declared {fmt_shape(declared)} but given {fmt_shape(shape)}")
                shapes[iname] = tuple(shape)
        for iname, shape in shapes.items():
            if shape is None:
                raise SpecError(f"input {iname!r} has no shape")
        key = tuple((k, tuple(v)) for k, v in shapes.items())
        if key in self._cache:
            return self._cache[key]
        if self._analyzing:  # a cycle of blocks (a.add_block(b), b.add_block(a), each used)
            raise SpecError(f"block {self.name!r} contains itself (through the blocks it uses)")
        if len(_ACTIVE) >= MAX_BLOCK_DEPTH:
            raise SpecError(f"blocks are nested more than {MAX_BLOCK_DEPTH} levels deep")
        self._analyzing = True
        _ACTIVE.append(self)
        try:
            analysis = self._analyze(shapes, key)
        finally:
            self._analyzing = False
            _ACTIVE.pop()
        return analysis

    def _analyze(self, shapes: dict, key: tuple) -> Analysis:
        self._validate()
        timing: dict[str, tuple] = {name: (ZERO, ZERO) for name in shapes}
        out_shape: dict[str, Shape] = dict(shapes)
        results: list[NodeResult] = []
        index = {n: i for i, n in enumerate(self._order)}
        memo: dict = {}  # (op, arguments, input shapes) -> derived layer: identical layers derive once
        for node_id in nx.lexicographical_topological_sort(self.graph, key=index.__getitem__):
            if self.graph.nodes[node_id].get("input"):
                continue
            node = self.node(node_id)
            in_shapes = [out_shape[s] for s in node.inputs]
            in_timing = [timing[s] for s in node.inputs]
            try:
                result = self._apply(node, in_shapes, in_timing, memo)
            except ShapeError as err:  # name the inputs and their shapes: the user must see both sides
                if not getattr(err, "inputs_named", False):
                    err.inputs_named = True
                    err.message += "; its input" + ("s are " if len(node.inputs) > 1 else " is ") + ", ".join(
                        f"{src!r} {fmt_shape(shape)}" for src, shape in zip(node.inputs, in_shapes))
                raise err.at(f"layer {node_id!r} ({node.op})") from None
            except SymcostError as err:
                raise err.at(f"layer {node_id!r} ({node.op})") from None
            out_shape[node_id] = result.shape
            timing[node_id] = (result.start, result.end)
            results.append(result)
        _check_ties(self, results)
        analysis = Analysis(self, shapes, tuple(results), tuple(self.outputs()))
        self._cache[key] = analysis
        return analysis

    def _apply(self, node: Node, in_shapes: list[Shape], in_timing: list[tuple], memo=None) -> NodeResult:
        start_in = smax(t[0] for t in in_timing)
        end_in = smax(t[1] for t in in_timing)
        if node.kind is not None:
            try:  # the rules are pure functions of (kind, arguments, input shapes)
                key = (node.op, node.args.key(), tuple(tuple(s) for s in in_shapes))
                derived = memo.get(key) if memo is not None else None
            except TypeError:  # an unhashable argument: derive without the memo
                key, derived = None, None
            if derived is None:
                q = node.kind.quantities(node.args, in_shapes)
                derived = (q, tuple(node.kind.shape(q)), node.kind.cost(q), node.kind.timing(q, ZERO, ZERO)[1])
                if key is not None and memo is not None:
                    memo[key] = derived
            q, shape, cost, steps = derived
            start, end = node.kind.timing(q, start_in, end_in)
            return NodeResult(node.id, node.op, shape, cost, q, start, end, steps,
                              conditions=tuple(getattr(q, "conditions", ())))
        return self._apply_block(node, in_shapes, start_in, end_in)

    def _apply_block(self, node: Node, in_shapes, start_in, end_in) -> NodeResult:
        block = node.block
        names = list(block.inputs)
        if len(names) != len(in_shapes):
            raise SpecError(f"block {node.op!r} takes {len(names)} input(s), but got {len(in_shapes)}")
        inner = block.analyze(dict(zip(names, in_shapes)))
        outs = inner.output_shapes()
        if len(outs) != 1:
            raise SpecError(f"block {node.op!r} must have exactly one output, it has {len(outs)}")
        shape = tuple(outs[0])
        n = node.repeat
        if n != 1 and (len(in_shapes) != 1 or len(shape) != len(in_shapes[0])
                       or not all(same(a, b) for a, b in zip(shape, in_shapes[0]))):
            raise ShapeError(
                f"block {node.op!r} is repeated but changes the shape {fmt_shape(in_shapes[0])} "
                f"to {fmt_shape(shape)}"
            )
        # Work: n copies of one repetition.  Span: the first repetition, then
        # (n - 1) times the steady-state delay of one more repetition.
        start, end = _repeat_timing(inner, n, start_in, end_in)
        steps = _repeat_timing(inner, n, ZERO, ZERO)[1]
        return NodeResult(node.id, node.op, shape, n * inner.total, {}, start, end, steps,
                          repeat=n, children=inner)

    # -- costs ---------------------------------------------------------------
    def cost(self, *, batch: Any = None, dtype: str = "fp32", block: str | None = None):
        """The cost report of the model (or of the node ``block``, one use) for one batch."""
        from .report import Report

        analysis = self.analyze()
        if block is not None:
            try:
                row = analysis[block]
            except KeyError:
                raise SpecError(f"no node {block!r}" + nearest(block, self.node_ids)) from None
            if row.children is None:
                raise SpecError(f"node {block!r} is a layer, not a block")
            analysis = row.children
        b = self.batch if batch is None else to_size(batch, "batch")
        report = Report(analysis, batch=b, dtype=dtype)
        if self.defaults:  # d_ff: 4*d_model -- a later subs(d_ff=...) overrides it
            report = report.with_defaults(self.defaults)
        return report

    def __repr__(self) -> str:
        return f"<Model {self.name!r}: {len(self.node_ids)} nodes, inputs {list(self.inputs)}>"

    def _repr_html_(self) -> str:  # Jupyter: its layers, shapes and costs
        from .render.rich import model_html

        return model_html(self)


def check_block_name(name: Any) -> None:
    """A block's name is a name, and not a layer kind's: a block called ``linear`` would replace
    the kind for the whole model (YAML specs and :meth:`Model.add_block` alike)."""
    from .layers import REGISTRY, load_all

    if not isinstance(name, str) or not NAME_RE.match(name):
        raise SpecError(f"{brief(name)} is not a valid block name")
    load_all()
    if name in REGISTRY:
        raise SpecError(f"block {name!r} has the name of the layer kind {name!r}; give the block another name")


def _check_ties(model: "Model", results: Sequence[NodeResult]) -> None:
    """Weight tying (``tied_to: NAME``): NAME must be a layer of the same model that owns a
    weight of the same shape (an embedding V×E for a linear E -> V); the tied layer then
    adds no weight parameters.  Chains and self-ties are refused (no one would own it)."""
    by_id = {r.id: r for r in results}
    for r in results:
        node = model.node(r.id)
        target = node.args.get("tied_to") if node.kind is not None else None
        if target is None:
            continue
        where = f"layer {r.id!r} ({node.op})"
        if target not in by_id:
            raise SpecError(f"tied_to {target!r} is not a layer of this model" + nearest(target, by_id)).at(where)
        tnode = model.node(target)
        if tnode.kind is None:
            raise SpecError(f"tied_to {target!r} is a block, not a layer with a weight").at(where)
        if tnode.args.get("tied_to") is not None:
            raise SpecError(f"tied_to {target!r}, which is itself tied; tie to the layer that owns the weight").at(where)
        theirs = tnode.kind.weight_shape(by_id[target].quantities)
        if theirs is None:
            raise SpecError(f"tied_to {target!r}: a {tnode.op} has no weight to share").at(where)
        mine = node.kind.weight_shape(r.quantities)
        if len(mine) != len(theirs) or not all(same(a, b) for a, b in zip(mine, theirs)):
            raise ShapeError(f"tied_to {target!r}: its weight is {fmt_shape(theirs)} but this layer's is "
                             f"{fmt_shape(mine)}").at(where)


def smax(values: Iterable) -> sympy.Expr:
    """The maximum of step counts, in linear time: sympy.Max over thousands of arguments
    is quadratic, so terms c + e that differ only in their constant c keep the largest
    c (exact: it dominates for every value of the symbols), and only what is left --
    one term per distinct symbolic part -- goes to sympy.Max."""
    best: dict = {}
    for v in values:
        c, rest = (v if isinstance(v, sympy.Basic) else sympy.Integer(v)).as_coeff_Add()
        if rest not in best or c > best[rest]:
            best[rest] = c
    if not best:
        return ZERO
    terms = [c + rest for rest, c in best.items()]
    return terms[0] if len(terms) == 1 else sympy.Max(*terms)


# A block's output timing as a function of its input's: expressions in these two
# placeholders (the input's first and last step), derived once per analysed block.
_START, _END = sympy.Dummy("start_in"), sympy.Dummy("end_in")


def _response(inner: Analysis) -> tuple:
    """(first, last) step of a block's output in terms of its input's (_START, _END),
    derived once per analysed block and kept on it: a block used k times, or nested d
    levels deep, is walked once -- not k times, nor 2**d times (each repetition used to
    walk its block again, recursively)."""
    memo = inner._memo
    if "response" not in memo:
        timing = {name: (_START, _END) for name in inner.input_shapes}
        for n in inner.nodes:
            node = inner.model.node(n.id)
            s = smax(timing[i][0] for i in node.inputs)
            e = smax(timing[i][1] for i in node.inputs)
            if node.kind is not None:
                timing[n.id] = node.kind.timing(n.quantities, s, e)
            else:
                timing[n.id] = _repeat_timing(n.children, n.repeat, s, e)
        outs = [timing[o] for o in inner.outputs]
        memo["response"] = (smax(o[0] for o in outs), smax(o[1] for o in outs))
    return memo["response"]


def _retime(inner: Analysis, start_in, end_in) -> tuple:
    """(first, last) step of a block's output when its input is ready at (start_in, end_in)."""
    first, last = _response(inner)
    values = {_START: start_in, _END: end_in}
    return first.xreplace(values), last.xreplace(values)


def _repeat_timing(inner: Analysis, n, start_in, end_in) -> tuple:
    """Timing of n repetitions of a block: the first one, then (n - 1) times the
    steady-state delay of one more (exact for concrete and symbolic n alike, as a
    block's output timing depends on its input's only through a fixed shift)."""
    s1, e1 = _retime(inner, start_in, end_in)
    if n == 1:
        return s1, e1
    s2, e2 = _retime(inner, s1, e1)
    return _poly(s1 + (n - 1) * _poly(s2 - s1)), _poly(e1 + (n - 1) * _poly(e2 - e1))


def _poly(expr):
    """A polynomial step count multiplied out (linear time): nested symbolic repeats would
    otherwise nest s1 + (n − 1)·(s2 − s1) into an expression that doubles at every level."""
    return expand(expr) if polynomial(expr) else expr
