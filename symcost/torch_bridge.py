"""From a PyTorch module to symcost: ``from_torch(module, input_shape, names=..., symbolic=...)``.

The module is traced with ``torch.fx`` (a tracer that keeps the layers symcost knows as
leaves: nn.Linear, nn.Conv2d, nn.LSTM, nn.MultiheadAttention, nn.TransformerEncoderLayer,
...; user modules, nn.Sequential and nn.ModuleList are traced through).  When fx cannot
trace the module (data-dependent control flow), a hook walk runs it on the meta device
instead, recording every layer call and every tensor function between layers.

Every traced operation becomes a node of a symcost :class:`~symcost.graph.Model` whose id is
the dotted module path (``encoder.layers.3.linear1``; functions get the path of the module
that calls them and fx's node name: ``blocks.0.add``), so the cost of any module prefix
is one call: :meth:`TorchModel.module_cost`.

**Per sample.**  The module takes a batched input; symcost counts one sample.
``input_shape`` is the shape of ONE sample, and the batch sits at ``batch_dim`` of the
module's input (0 by default; 1 for a time-major nn.LSTM or nn.MultiheadAttention without
``batch_first``).  The batch is tracked as its own symbol through reshapes and permutes and
stripped from every node; ``cost(batch="B")`` puts it back.

**Names.**  A dimension of ``input_shape`` may be a name (``("T", 64)``), traced with the
value ``sizes[name]`` (default 16); or ``names={"T": 0}`` names dim 0 of a concrete shape and
traces with its value.  A name may change shapes and operation counts, never a weight: a layer
built for a fixed input size (nn.Linear's in_features after a Flatten of an image named H×W)
that would receive a size varying with a name is refused, naming the layer and sizes that fit.

**Symbolic hyperparameters** (``symbolic={key: "H"}``): a hyperparameter of a layer becomes
the symbol when the key is, in this order of precedence,

1. a dotted argument path, ``"encoder.linear1.out_features"``: that argument only;
2. a PyTorch argument name of a mapped layer (``"hidden_size"``, ``"out_features"``,
   ``"num_heads"``, ``"kernel_size"``, ...): that argument of every layer;
3. an integer, ``64``: every *width* argument (out_features, out_channels, hidden_size,
   embedding_dim, num_embeddings) equal to 64;
4. any other name, ``"hidden"``: the integer attribute of that name on the module or its
   submodules (all must agree), then as rule 3 with its value.

Only arguments that create a size are replaced: sizes a layer reads from its input
(in_features, in_channels, input_size, embed_dim, normalized_shape) are never taken from
the module but propagated from the input, so a partial mapping cannot go unnoticed: a
literal in a later ``view`` or a mismatched layer raises a ShapeError.  Every replacement
is listed in :attr:`TorchModel.mapping`.  Then, with ``verify=True`` (default), two checks:
every node's shape, with the trace values substituted, equals the shape PyTorch computes
on the meta device; and the symbolic cost with the trace values substituted equals the
cost of the same trace built with no symbols.  A key that replaces nothing is an error.

**Never a silent zero.**  An operation without a mapping is listed, with its name and the
reason, in one :class:`UnsupportedError` that names all of them.
"""

from __future__ import annotations

import contextlib
import copy
import io
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import sympy

from .cost import Cost
from .errors import ShapeError, SymbolError, SymcostError
from .graph import Model
from .layers.base import get_kind, same
from .sizes import as_expr, symbol

#: The batch, tracked through reshapes and permutes; not a valid user name (leading _).
BATCH = sympy.Symbol("_batch", integer=True, positive=True)
BATCH_TRACE = 3          # the batch of the meta-device run
DEFAULT_TRACE_SIZE = 16  # trace value of a named input dimension without one in sizes=

WIDTH_ARGS = ("out_features", "out_channels", "hidden_size", "embedding_dim", "num_embeddings")


class UnsupportedError(SymcostError):
    """Operations of a module that symcost has no mapping for (all of them, by name)."""

    def __init__(self, items: Sequence[tuple[str, str]], module_name: str = "module", downstream: int = 0):
        self.items = list(items)
        self.downstream = downstream
        listing = "; ".join(f"{where}: {why}" for where, why in self.items)
        more = f" (and {downstream} operation(s) that use their results)" if downstream else ""
        super().__init__(f"{len(self.items)} unsupported operation(s) in {module_name}: {listing}{more}")


class FixedSizeError(ShapeError):
    """A layer whose weights fix its input size gets an input that does not have it: a size that
    varies with a named input dimension (a Flatten → Linear head on an image named H×W), or the
    wrong number.  ``example`` (when found) gives the named sizes values that fit; the message
    shows it as an ``input_shape`` and :meth:`for_cli` as an ``--input``."""

    def __init__(self, text: str, *, fix: str = "", example: dict | None = None, shape: tuple | None = None):
        self.text, self.fix, self.example, self.shape = text, fix, example, shape
        super().__init__(self._compose(self._python_example()))

    def _compose(self, example: str) -> str:
        tail = f", e.g. {example}" if example and self.fix else ""
        return f"{self.text}: {self.fix}{tail}" if self.fix else self.text

    def _python_example(self) -> str:
        if not self.example or self.shape is None:
            return ""
        dims = tuple(self.example.get(d, d) if isinstance(d, str) else d for d in self.shape)
        return f"input_shape {dims!r}" if len(dims) != 1 else f"input_shape ({dims[0]!r},)"

    def for_cli(self, items: Sequence[str]) -> "FixedSizeError":
        """The same error with its example written as ``--input`` (``items``: the given --input's parts)."""
        if self.example:
            parts = [str(self.example[it.partition("=")[0].strip()]) if it.partition("=")[0].strip() in self.example
                     else it.strip() for it in items]
            self.message = self._compose("--input " + ",".join(parts))
        return self


class _Unsupported(Exception):
    """Internal: one operation cannot be mapped (collected, then raised together)."""


class _Downstream(Exception):
    """Internal: an operation whose inputs come from an unsupported one (counted, not listed)."""


@dataclass
class TV:
    """A traced tensor: its batched shape (the batch is BATCH at ``bpos``; None for a
    constant), the symcost node holding it (None for a constant not yet materialised)."""

    shape: tuple
    node: str | None
    bpos: int | None
    param: str | None = None       # qualified name, for a parameter used directly
    src: "TV | None" = None         # a free read of another node's result (an RNN's h_n) ...
    lazy_id: str | None = None      # ... added as a view node with this id when used

    @property
    def per_sample(self) -> tuple:
        if self.bpos is None:
            return self.shape
        return self.shape[: self.bpos] + self.shape[self.bpos + 1:]


@dataclass
class TorchModel:
    """The result of :func:`from_torch`: the symcost model, and where it came from."""

    model: Model
    method: str                                   # "fx" or "hooks"
    values: dict                                  # symbol -> its value at trace time
    mapping: dict[str, list[str]] = field(default_factory=dict)   # symbol -> replaced arguments
    notes: list[str] = field(default_factory=list)
    module_params: int = 0                        # sum(p.numel()) of the module

    def cost(self, *, batch: Any = None, dtype: str = "fp32"):
        """The :class:`~symcost.report.Report` (per sample unless ``batch``)."""
        return self.model.cost(batch=batch, dtype=dtype)

    def module_cost(self, prefix: str = "") -> Cost:
        """The cost of the module at the dotted path ``prefix`` ('' = the whole module)."""
        analysis = self.model.analyze()
        rows = [n for n in analysis.nodes
                if not prefix or n.id == prefix or n.id.startswith(prefix + ".")]
        if not rows:
            from .errors import SpecError, nearest

            raise SpecError(f"no module {prefix!r} in {self.model.name}"
                            + nearest(prefix, {_prefix(n.id, 1) for n in analysis.nodes}))
        return Cost.total(n.cost for n in rows)

    def breakdown(self, depth: int = 1) -> dict[str, Cost]:
        """Cost per module prefix of ``depth`` path components, in graph order."""
        out: dict[str, list] = {}
        for n in self.model.analyze().nodes:
            out.setdefault(_prefix(n.id, depth), []).append(n.cost)
        return {k: Cost.total(v) for k, v in out.items()}

    def flops(self, convention: str = "symcost", *, batch: Any = None):
        """The total under a named counting convention (:mod:`symcost.conventions`)."""
        from .conventions import count

        return count(self.cost(batch=batch), convention).total


def _prefix(node_id: str, depth: int) -> str:
    return ".".join(node_id.split(".")[:depth])


# ---------------------------------------------------------------------------
# The public entry point
# ---------------------------------------------------------------------------


def from_torch(module, input_shape, names: Mapping | None = None, symbolic: Mapping | None = None, *,
               sizes: Mapping[str, int] | None = None, batch_dim: int = 0, input_dtype=None,
               verify: bool = True, name: str | None = None) -> TorchModel:
    """Trace ``module`` on one sample of ``input_shape`` into a symcost model.

    >>> r = from_torch(nn.LSTM(64, 128, batch_first=True), ("T", 64)).cost()   # doctest: +SKIP
    >>> r.macs                                                                   # doctest: +SKIP
    4*T*(64*128 + 128*128)

    See the module docstring for ``names``, ``sizes``, ``symbolic`` and ``batch_dim``.
    """
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise SymcostError(f"from_torch expects a torch.nn.Module, not {type(module).__name__}")
    title = name or type(module).__name__
    if isinstance(batch_dim, bool) or not isinstance(batch_dim, int) or batch_dim < 0:
        raise SymcostError(f"{title}: batch_dim must be the position of the batch in the module's input "
                           f"(0, 1, ...), not {batch_dim!r}; from_torch counts one sample of a batched module")
    shapes, values = _input_shapes(input_shape, names, sizes)
    heard: list[str] = []
    with _quiet(heard):  # torch (fx's ShapeProp, tracer warnings) and the module's own prints
        builder = _Builder(module, title, shapes, values, symbolic or {}, batch_dim, input_dtype)
        builder.given_shape = input_shape if not isinstance(input_shape, Mapping) else None
        result = builder.build()
        if verify and (values or builder.mapping):
            plain = _Builder(module, title, {k: tuple(sympy.Integer(_subs_int(d, values)) for d in s)
                                             for k, s in shapes.items()}, {}, {}, batch_dim, input_dtype)
            plain.meta_check = False  # the same sizes: the shapes were checked on the meta device above
            plain = plain.build()
            _verify_same(result, plain, {**values, **builder.sym_values})
            if result.method == "hooks" and values:
                _verify_elsewhere(module, title, shapes, values, builder, result, batch_dim, input_dtype)
    result.notes.extend(heard)
    result.values = {**values, **builder.sym_values}
    return result


@contextlib.contextmanager
def _quiet(heard: list):
    """Nothing printed while a module is traced reaches the terminal: torch.fx's passes print
    tracebacks (ShapeProp's ``traceback.print_exc()``), the tracer and the module warn, the
    module's forward may print.  On success what was said becomes notes (``heard``); on an error
    the one-line SymcostError says what matters."""
    import warnings

    out, err = io.StringIO(), io.StringIO()
    with warnings.catch_warnings(record=True) as caught, \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield
    said = [line for line in (out.getvalue() + err.getvalue()).splitlines() if line.strip()]
    if said:
        heard.append(f"while traced, {len(said)} line(s) were printed (not shown), the first: {said[0][:200]}")
    for w in dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught):
        heard.append(f"warning while traced: {w[:300]}")


def _verify_elsewhere(module, title, shapes, values, builder, result, batch_dim, input_dtype) -> None:
    """The hook walk reads sizes from integers: check the formula at other sizes (each named input
    dimension + 1) against a concrete walk there."""
    other = {s: v + 1 for s, v in values.items()}
    try:
        plain = _Builder(module, title, {k: tuple(sympy.Integer(_subs_int(d, other)) for d in s)
                                         for k, s in shapes.items()}, {}, {}, batch_dim, input_dtype).build()
    except SymcostError:
        result.notes.append("the formula was checked at the traced sizes only: the module does not run at "
                            + ", ".join(f"{s}={v}" for s, v in other.items()))
        return
    try:
        _verify_same(result, plain, {**other, **builder.sym_values})
    except SymcostError:
        raise SymcostError(
            f"{title}: the formula from the hook walk does not hold at "
            + ", ".join(f"{s}={v}" for s, v in other.items())
            + " (a literal size was read as a named one, or the module branches on its input size); "
              "make the module traceable by torch.fx or give other trace sizes") from None


def _verify_same(sym: TorchModel, plain: TorchModel, values: dict) -> None:
    a = sym.model.analyze().total
    b = plain.model.analyze().total
    for f in ("params", "activations", "macs", "fma_ops", "flops"):
        got = as_expr(getattr(a, f)).xreplace(values)
        want = getattr(b, f)
        if sympy.expand(got - want) != 0:
            raise SymcostError(
                f"{sym.model.name}: the symbolic {f} {getattr(a, f)} gives {got} at the traced sizes, "
                f"but the concrete trace counts {want}: the symbolic mapping is inconsistent")


def _subs_int(d, values) -> int:
    v = as_expr(d).xreplace(values)
    return int(v)


def _torch():
    try:
        import torch
        import torch.fx  # noqa: F401
    except ImportError:  # pragma: no cover - torch is a test dependency
        raise SymcostError("from_torch needs PyTorch: pip install 'symcost[torch]'") from None
    return torch


def _input_shapes(input_shape, names, sizes) -> tuple[dict[str | None, tuple], dict]:
    """{placeholder name or None: per-sample shape with symbols}, {symbol: trace value}."""
    sizes = dict(sizes or {})
    values: dict = {}
    if isinstance(input_shape, Mapping):
        raw = dict(input_shape)
    else:
        raw = {None: input_shape}
    shapes: dict = {}
    for key, shape in raw.items():
        if isinstance(shape, (int, str)):
            shape = (shape,)
        if not isinstance(shape, (tuple, list)):
            raise SymcostError(f"input_shape must be a tuple of sizes or names, not {shape!r}")
        dims = []
        for d in shape:
            if isinstance(d, bool) or not isinstance(d, (int, str)):
                raise SymcostError(f"input_shape entries are whole numbers or names, not {d!r}")
            if isinstance(d, int):
                if d < 1:
                    raise SymcostError(f"input_shape entries must be at least 1, not {d}")
                dims.append(sympy.Integer(d))
            else:
                s = symbol(d)
                v = sizes.get(d, DEFAULT_TRACE_SIZE)
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise SymbolError(f"sizes[{d!r}] must be a whole number >= 1, not {v!r}")
                values[s] = sympy.Integer(v)
                dims.append(s)
        shapes[key] = dims
    for nm, where in (names or {}).items():
        s = symbol(nm)
        key, idx = (where if isinstance(where, tuple) else (next(iter(shapes)), where))
        if key not in shapes or not isinstance(idx, int) or not -len(shapes[key]) <= idx < len(shapes[key]):
            raise SymbolError(f"names[{nm!r}] = {where!r} is not a dimension of the input shape")
        old = shapes[key][idx]
        if old.free_symbols:
            raise SymbolError(f"names[{nm!r}]: dimension {idx} is already named {old}")
        values[s] = old
        shapes[key][idx] = s
    unused = set(sizes) - {s.name for s in values}
    if unused:
        raise SymbolError(f"sizes names {', '.join(sorted(unused))}, which is not a named input dimension")
    return {k: tuple(v) for k, v in shapes.items()}, values


# ---------------------------------------------------------------------------
# The builder: an interpreter over the fx graph on symbolic, batched shapes
# ---------------------------------------------------------------------------


def _leaf_types(torch) -> tuple:
    nn = torch.nn
    return tuple(t for t in (
        nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
        nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
        nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.RMSNorm, nn.ReLU, nn.Sigmoid, nn.SiLU, nn.Tanh,
        nn.GELU, nn.Softmax,
        nn.Embedding, nn.Flatten, nn.Dropout, nn.Identity, nn.RNN, nn.LSTM, nn.GRU, nn.MultiheadAttention,
        nn.TransformerEncoderLayer, nn.TransformerEncoder,
    ))


def meta_copy(torch, module):
    """A copy of ``module`` on the meta device, in eval mode, without copying its weights
    (each parameter and buffer becomes an empty meta tensor; tied weights stay tied)."""
    memo = {}
    for t in list(module.parameters()) + list(module.buffers()):
        if id(t) in memo:
            continue
        empty = torch.empty_like(t, device="meta")
        memo[id(t)] = torch.nn.Parameter(empty, requires_grad=t.requires_grad) \
            if isinstance(t, torch.nn.Parameter) else empty
    return copy.deepcopy(module, memo).eval()  # safe: nn.Module.eval() (inference mode), not Python eval


def _wrap(torch, layer):
    """A root module whose only child is ``layer`` (named after its class: ``lstm``)."""

    class Root(torch.nn.Module):
        def forward(self, x):
            return getattr(self, name)(x)

    name = type(layer).__name__.lower()
    root = Root()
    root.add_module(name, layer)
    return root


def _is_torch_leaf(m) -> bool:
    """A torch.nn module fx would not trace through (not a container)."""
    mod = type(m).__module__
    return mod.startswith("torch.nn") and type(m).__name__ not in ("Sequential", "ModuleList", "ModuleDict")


class _Builder:
    def __init__(self, module, title, shapes, values, symbolic, batch_dim, input_dtype):
        self.torch = _torch()
        self.strip = ""
        if isinstance(module, _leaf_types(self.torch)) or _is_torch_leaf(module):
            module = _wrap(self.torch, module)  # fx traces the root's forward: make the layer a child
            self.strip = type(module.get_submodule(next(iter(module._modules)))).__name__.lower() + "."
        self.module = module
        self.title = title
        self.shapes = shapes
        self.values = values
        self.symbolic = dict(symbolic)
        self.batch_dim = batch_dim
        self.input_dtype = input_dtype
        self.model = Model(title)
        self.origins: dict[str, str] = {}          # node id -> the PyTorch call it came from
        self.model.origins = self.origins          # read by symcost.conventions
        self.model.batchless = set()               # nodes computed from constants only (no batch)
        self.current_origin: str | None = None
        self.unsupported: list[tuple[str, str]] = []
        self.downstream = 0                        # operations that only use unsupported results
        self.notes: list[str] = []
        self.mapping: dict[str, list[str]] = {}
        self.sym_values: dict = {}
        self.used_keys: set = set()
        self.counted_params: dict[int, str] = {}   # id(parameter) -> node that counts it
        self.calls: dict[str, int] = {}
        self.anchor: str | None = None
        self.batch_trace = BATCH_TRACE
        self.meta_check = True
        self.given_shape = None                    # the user's input_shape (for an example in a message)
        self._resolve_symbolic()

    # -- symbolic hyperparameters ------------------------------------------------
    def _resolve_symbolic(self) -> None:
        self.by_path, self.by_arg, self.by_value = {}, {}, {}
        argnames = {"out_features", "out_channels", "hidden_size", "num_layers", "embedding_dim",
                    "num_embeddings", "num_heads", "kernel_size", "stride", "padding", "dilation",
                    "groups", "output_padding"}
        for key, target in self.symbolic.items():
            s = symbol(target) if isinstance(target, str) else None
            if s is None:
                raise SymbolError(f"symbolic[{key!r}] must be a size name, not {target!r}")
            if isinstance(key, bool):
                raise SymbolError(f"symbolic key {key!r} is not a value, argument or attribute name")
            if isinstance(key, int):
                self.by_value[key] = (s, key)
            elif isinstance(key, str) and "." in key:
                self.by_path[key] = (s, key)
            elif isinstance(key, str) and key in argnames:
                self.by_arg[key] = (s, key)
            elif isinstance(key, str):
                found = {getattr(m, key) for _, m in self.module.named_modules()
                         if isinstance(getattr(m, key, None), int) and not isinstance(getattr(m, key), bool)}
                if not found:
                    raise SymbolError(f"symbolic key {key!r} is neither an argument name nor an integer "
                                      f"attribute of {self.title} or its submodules")
                if len(found) > 1:
                    raise SymbolError(f"symbolic key {key!r}: the attribute has different values "
                                      f"{sorted(found)} on different submodules; name the argument paths instead")
                v = found.pop()
                if v in self.by_value and self.by_value[v][0] != s:
                    raise SymbolError(f"symbolic: the value {v} is mapped to two names")
                self.by_value[v] = (s, key)
            else:
                raise SymbolError(f"symbolic key {key!r} is not a value, argument or attribute name")

    def sym(self, value, path: str, arg: str):
        """The size (or tuple of sizes) of argument ``arg`` of the layer at ``path``."""
        if isinstance(value, (tuple, list)):
            return tuple(self.sym(v, path, arg) for v in value)
        if isinstance(value, bool) or not isinstance(value, int):
            return value
        hit = self.by_path.get(f"{path}.{arg}") or self.by_arg.get(arg)
        if hit is None and arg in WIDTH_ARGS:
            hit = self.by_value.get(value)
        if hit is None:
            return value
        s, key = hit
        if s in self.sym_values and self.sym_values[s] != value:
            raise SymbolError(f"symbolic: {s} would stand for both {self.sym_values[s]} and {value} "
                              f"({path}.{arg}); map them to different names")
        if s in self.values and self.values[s] != value:
            raise SymbolError(f"symbolic: {s} names an input dimension of size {self.values[s]}, "
                              f"but {path}.{arg} is {value}")
        self.sym_values[s] = sympy.Integer(value)
        self.used_keys.add(key)
        shown = path[len(self.strip):] if self.strip and path.startswith(self.strip) else path
        self.mapping.setdefault(s.name, []).append(f"{shown}.{arg}")
        return s

    # -- nodes -------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        if self.strip and base.startswith(self.strip):  # a wrapped root layer: its parts keep their own paths
            base = base[len(self.strip):]
        base = base or "op"
        n = self.calls.get(base, 0) + 1
        self.calls[base] = n
        return base if n == 1 else f"{base}-{n}"

    def add(self, kind_name: str, inputs: Sequence[TV], node_id: str, *, bpos: int | None = None, **args) -> TV:
        """Add a symcost node; return its TV (the batch at ``bpos``, by default at the first
        data input's position)."""
        ids = [self.node_of(t) for t in inputs]
        kind = get_kind(kind_name)
        parsed = kind.normalize({k: v for k, v in args.items() if v is not None})
        per_sample = [self.per_sample_of(t, inputs) for t in inputs]
        q = kind.quantities(parsed, per_sample)
        shape = tuple(kind.shape(q))
        self._fixed_weights(kind, q, node_id)
        nid = self.model.add(kind_name, *ids, id=node_id, **{k: v for k, v in args.items() if v is not None})
        if self.current_origin:
            self.origins[nid] = self.current_origin
        data = [t for t in inputs if t.bpos is not None]
        if not data:
            self.model.batchless.add(nid)
        data = [t for t in inputs if t.bpos is not None]
        if bpos is None:
            bpos = min(data[0].bpos, len(shape)) if data else None
        batched = shape if bpos is None else shape[:bpos] + (BATCH,) + shape[bpos:]
        return TV(batched, nid, bpos)

    def _fixed_weights(self, kind, q, node_id: str) -> None:
        """A module's weights are tensors of fixed sizes: a parameter count that varies with a named
        input size describes some other module (the layers that read their size from the input
        are checked by name first, :meth:`check_in_size`; this catches any other)."""
        named = [s for s in self.values if s not in self.sym_values]
        if not named:
            return
        params = as_expr(kind.cost(q).params)
        hit = [s.name for s in named if s in params.free_symbols]
        if hit:
            shown = node_id[len(self.strip):] if self.strip and node_id.startswith(self.strip) else node_id
            raise FixedSizeError(f"layer {shown!r} ({kind.name}) would have {params} parameters, which varies "
                                 f"with {_and(hit)}, but the module's weights have fixed sizes",
                                 fix=f"give {_and(hit)} {'a number' if len(hit) == 1 else 'numbers'}").at(self.title)

    def per_sample_of(self, t: TV, inputs: Sequence[TV]) -> tuple:
        if t.bpos is not None:
            return t.per_sample
        data = [d for d in inputs if d.bpos is not None]
        if not data:
            return t.shape
        # a constant broadcast against data: align right, drop the batch axis (it must be 1 there)
        ref = data[0]
        offset = len(ref.shape) - ref.bpos          # batch axis counted from the right
        if len(t.shape) >= offset:
            i = len(t.shape) - offset
            if t.shape[i] != 1:
                raise _Unsupported(f"a constant of shape {list(t.shape)} varies along the batch dimension")
            return t.shape[:i] + t.shape[i + 1:]
        return t.shape

    def node_of(self, t: TV) -> str:
        if t.node is not None:
            return t.node
        if t.src is not None:
            t.node = self.model.add("view", self.node_of(t.src), id=t.lazy_id, shape=list(t.per_sample))
            return t.node
        params = 0
        if t.param is not None:
            p = self.module.get_parameter(t.param)
            if id(p) not in self.counted_params:
                self.counted_params[id(p)] = t.param
                params = p.numel()
        nid = self.fresh(t.param or "constant")
        self.model.add("constant", self.anchor, id=nid, shape=list(t.shape), params=params)
        t.node = nid
        return nid

    def view(self, t: TV, batched: tuple, node_id: str) -> TV:
        """A free view of ``t`` with the batched shape ``batched``."""
        if t.bpos is None:
            hits = [i for i, d in enumerate(batched) if d == BATCH]
            if len(hits) != 1:
                return TV(tuple(batched), None, None)
            # a constant expanded over the batch (a learned query): the same tensor for every sample
            src = self.node_of(t)
            out = TV(tuple(batched), None, hits[0])
            out.node = self.model.add("view", src, id=node_id, shape=list(out.per_sample))
            return out
        hits = [i for i, d in enumerate(batched) if d == BATCH]
        mixed = [d for d in batched if d != BATCH and BATCH in as_expr(d).free_symbols]
        if len(hits) != 1 or mixed:
            raise _Unsupported(f"the result {_fmt(batched)} mixes the batch dimension with others "
                               "(one sample is no longer a slice of the batch)")
        out = TV(tuple(batched), t.node, hits[0])
        if len(out.per_sample) == len(t.per_sample) and all(same(a, b) for a, b in zip(out.per_sample, t.per_sample)):
            return out
        out.node = self.model.add("view", self.node_of(t), id=node_id, shape=list(out.per_sample))
        return out

    # -- building ------------------------------------------------------------------
    def build(self) -> TorchModel:
        torch = self.torch
        leaves = _leaf_types(torch)

        class Tracer(torch.fx.Tracer):
            proxy_buffer_attributes = True  # a buffer sliced by a traced size (a causal mask)

            def is_leaf_module(self, m, qualname):
                if isinstance(m, leaves):
                    return True
                return _is_torch_leaf(m) or super().is_leaf_module(m, qualname)

        try:
            graph = Tracer().trace(self.module)
            gm = torch.fx.GraphModule(self.module, graph)
            method = "fx"
        except Exception as err:  # noqa: BLE001 - fx raises many kinds; fall back to hooks
            from ._torch_hooks import hook_graph

            gm = hook_graph(self, err)
            method = "hooks"
        self.method = method
        failed = None  # (fx node, exception, input shapes): where the module stopped on the meta device
        if method == "fx":
            real, failed = self._meta_shapes(gm) if self.meta_check else ({}, None)
        else:
            real = gm.real
        env: dict = {}
        placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
        given = dict(self.shapes)
        for n in gm.graph.nodes:
            if n.op == "placeholder":
                env[n] = self._placeholder(n, placeholders, given)
                continue
            if n.op == "output":
                outs = [t for t in _flatten_values(_map_args(n.args, env)) if isinstance(t, TV)]
                break
            where = self._where(n)
            try:
                env[n] = self._node(n, where, _map_args(n.args, env), _map_args(n.kwargs, env))
            except _Downstream:
                self.downstream += 1
                env[n] = _Poison(where)
            except _Unsupported as err:
                self.unsupported.append((where, str(err)))
                env[n] = _Poison(where)
            except FixedSizeError:
                raise
            except SymcostError as err:
                raise err.at(f"{self.title} {where}") from None
            if failed is not None and n.name == failed[0]:
                raise self._does_not_run(n, where, env, failed)
            self._check_shape(n, env[n], real, where)
        if failed is not None:  # before any node (a placeholder, a get_attr) or past the interpreted ones
            raise self._does_not_run(None, None, env, failed)
        if self.unsupported:
            raise UnsupportedError(self.unsupported, self.title, self.downstream)
        if given:
            raise SymcostError(f"input_shape names {', '.join(map(str, given))}, which {self.title}.forward does not take")
        self.model.set_outputs([self.node_of(t) for t in outs if t.bpos is not None] or
                               [self.node_of(t) for t in outs])
        unused = {k for k in self.symbolic if k not in self.used_keys}
        if unused:
            raise SymbolError(f"symbolic keys {', '.join(map(repr, sorted(unused, key=str)))} replaced nothing in {self.title}")
        params = sum(p.numel() for p in self.module.parameters())
        missing = [n for n, p in self.module.named_parameters() if id(p) not in self.counted_params]
        if missing:
            self.notes.append("parameters never used in forward (not counted): " + ", ".join(missing))
        return TorchModel(self.model, method, dict(self.values), self.mapping, self.notes, params)

    def _where(self, n) -> str:
        if n.op == "call_module":
            return n.target
        stack = n.meta.get("nn_module_stack") or {}
        path = list(stack)[-1] if stack else ""
        return f"{path}.{n.name}" if path else n.name

    def _placeholder(self, n, placeholders, given) -> Any:
        key = n.target if n.target in given else (None if None in given and n is placeholders[0] else False)
        if key is False:
            if n.args:  # a default value
                return n.args[0]
            raise SymcostError(f"{self.title}.forward takes {n.target!r}; give its shape in input_shape")
        shape = given.pop(key)
        nid = n.target
        self.model.add_input(nid, list(shape))
        if self.anchor is None:
            self.anchor = nid
        b = self.batch_dim
        if not 0 <= b <= len(shape):
            raise SymcostError(f"batch_dim {b} is not a position of an input of rank {len(shape)} + 1")
        return TV(shape[:b] + (BATCH,) + shape[b:], nid, b)

    def _meta_shapes(self, gm) -> tuple[dict, Any]:
        """Run the traced module on the meta device at the trace sizes: ({fx node name: shape},
        None), or the shapes up to the node that failed and (that node's name, the exception).
        An fx Interpreter of our own, not ShapeProp, which prints a traceback on a failure."""
        torch = self.torch

        values = {**self.values, **self.sym_values, BATCH: BATCH_TRACE}
        args = []
        for n in gm.graph.nodes:
            if n.op != "placeholder":
                continue
            shape = self.shapes.get(n.target, self.shapes.get(None) if not args else None)
            if shape is None:
                break
            concrete = [_subs_int(d, values) for d in shape]
            b = self.batch_dim
            concrete = concrete[:b] + [BATCH_TRACE] + concrete[b:]
            dtype = self.input_dtype or (torch.long if self._feeds_embedding(gm, n) else torch.float32)
            args.append(torch.zeros(concrete, dtype=dtype, device="meta"))
        out: dict = {}
        current: list = [None]

        class Shapes(torch.fx.Interpreter):
            def run_node(self, n):
                current[0] = n.name
                result = super().run_node(n)
                if isinstance(result, torch.Tensor):
                    out[n.name] = tuple(result.shape)
                return result

        try:
            meta = meta_copy(self.torch, gm)
            interpreter = Shapes(meta)
            interpreter.extra_traceback = False  # keep the module's own message, one line of it
            interpreter.run(*args)
        except Exception as err:  # noqa: BLE001 - the user's module fails to run at these sizes
            return out, (current[0], err, [list(a.shape) for a in args])
        return out, None

    def _does_not_run(self, n, where, env, failed) -> SymcostError:
        """The module fails on the meta device: one line naming the layer, the shapes of one
        sample it got (in the user's sizes), and PyTorch's reason (whose shapes include the
        trace batch, said so)."""
        _, err, shapes = failed
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        batch = f" (PyTorch's shapes include a batch of {BATCH_TRACE} at dim {self.batch_dim})" \
            if any(c.isdigit() for c in reason) else ""
        reason = f"{type(err).__name__}: {reason[:300]}" if reason else type(err).__name__
        if n is None:
            return SymcostError(f"{self.title} does not run on one sample of shape "
                                f"{_user_shapes(self.shapes)}: {reason}{batch}")
        got = [_fmt_sample(a) for a in _flatten_values(_map_args(n.args, env)) if isinstance(a, TV)]
        what = f"layer {where!r}"
        if n.op == "call_module":
            what += f" ({_describe(self.module.get_submodule(n.target))})"
        elif n.op in ("call_function", "call_method"):
            what = f"{_function_name(self.torch, n.target) if n.op == 'call_function' else n.target} at {where!r}"
        on = f" on one sample's input{'s' if len(got) > 1 else ''} of shape {', '.join(got)}" if got else ""
        return SymcostError(f"{what} does not run{on}: {reason}{batch}").at(self.title)

    def check_in_size(self, mod, path: str, attr: str, fixed: int, got, shape: tuple) -> None:
        """A layer built for a fixed input size ``fixed`` (its ``attr``: in_features, in_channels, ...)
        gets ``got``: equal at the trace sizes, and free of the named input sizes (its weights
        cannot follow them), or a one-line FixedSizeError in the user's terms."""
        got = as_expr(got)
        named = [s for s in self.values if s not in self.sym_values and s in got.free_symbols]
        at = {**self.values, **self.sym_values}
        shown = path[len(self.strip):] if self.strip and path.startswith(self.strip) else path
        layer = f"layer {shown!r} ({type(mod).__name__}, {attr}={fixed})"
        if named:
            names = _and([s.name for s in named])
            gets = f"the named size {got}" if got in named else f"{got}, which varies with {names}"
            raise FixedSizeError(
                f"{layer} has weights for a fixed input size, {fixed}, but gets {gets}",
                fix=f"give {names} {'a number' if len(named) == 1 else 'numbers'}",
                example=self._fitting(got, named, fixed, at), shape=self.given_shape).at(self.title)
        value = got.xreplace(at)
        if value != fixed:
            raise FixedSizeError(f"{layer} gets an input of shape {_fmt_sample(TV(shape, None, None))} "
                                 f"(one sample), with {value} where it needs {fixed}").at(self.title)

    @staticmethod
    def _fitting(got, named, fixed, at) -> dict | None:
        """Values of the named sizes (all equal, or the trace values) that make ``got`` equal ``fixed``."""
        if got.xreplace(at) == fixed:
            return {s.name: int(at[s]) for s in named}
        rest = {k: v for k, v in at.items() if k not in named}
        for v in range(1, 4097):
            if got.xreplace({**rest, **{s: v for s in named}}) == fixed:
                return {s.name: v for s in named}
        return None

    def _feeds_embedding(self, gm, placeholder) -> bool:
        for user in placeholder.users:
            if user.op == "call_module" and isinstance(gm.get_submodule(user.target), self.torch.nn.Embedding):
                return True
        return False

    def _check_shape(self, n, value, real, where) -> None:
        tm = real.get(n.name)
        if tm is None or not isinstance(value, TV):
            return
        theirs = list(tm)
        values = {**self.values, **self.sym_values, BATCH: self.batch_trace}
        mine = [as_expr(d).xreplace(values) for d in value.shape]
        if len(mine) != len(theirs) or any(m != t for m, t in zip(mine, theirs)):
            raise ShapeError(
                f"the symbolic shape {_fmt(value.shape)} gives {mine} at the traced sizes, but PyTorch "
                f"computes {theirs}: a symbolic size is mapped wrongly or this operation is misread"
            ).at(f"{self.title} {where}")

    # -- one fx node ------------------------------------------------------------------
    def _node(self, n, where, args, kwargs):
        poisoned = any(isinstance(a, _Poison) for a in _flatten_values((args, kwargs)))
        if poisoned:
            if n.op == "call_module" and not isinstance(self.module.get_submodule(n.target), _leaf_types(self.torch)):
                raise _Unsupported(f"no symcost kind for nn.{type(self.module.get_submodule(n.target)).__name__}")
            raise _Downstream()
        self.current_origin = None
        if n.op == "call_module":
            mod = self.module.get_submodule(n.target)
            from ._torch_map import call_module

            return call_module(self, mod, n.target, args, kwargs)
        if n.op == "get_attr":
            return self._get_attr(n.target)
        from ._torch_map import call_function, call_method

        if n.op == "call_method":
            self.current_origin = f"Tensor.{n.target}"
            return call_method(self, n.target, where, args, kwargs)
        self.current_origin = _function_name(self.torch, n.target)
        return call_function(self, n.target, where, args, kwargs)

    def _get_attr(self, target: str) -> Any:
        obj = self.module
        for part in target.split("."):
            obj = getattr(obj, part)
        torch = self.torch
        if isinstance(obj, torch.Tensor):
            is_param = isinstance(obj, torch.nn.Parameter)
            return TV(tuple(sympy.Integer(d) for d in obj.shape), None, None,
                      param=target if is_param else None)
        return obj


class _Poison:
    """The value of an unsupported operation: using it is reported, not counted."""

    def __init__(self, where):
        self.where = where


def _function_name(torch, fn) -> str:
    """``F.relu``, ``torch.matmul``, ``operator.add``: how the user called it."""
    import operator

    name = getattr(fn, "__name__", repr(fn))
    if getattr(torch.nn.functional, name, None) is fn:
        return f"F.{name}"
    if getattr(torch, name, None) is fn:
        return f"torch.{name}"
    if getattr(operator, name, None) is fn:
        return f"operator.{name}"
    return name


def _fmt_sample(t: TV) -> str:
    """One sample's shape as the user gives it: ``[1, H, W]``."""
    return "[" + ", ".join(str(d) for d in t.per_sample) + "]"


def _user_shapes(shapes: dict) -> str:
    return "; ".join(("" if k is None else f"{k}: ") + "[" + ", ".join(str(d) for d in s) + "]"
                     for k, s in shapes.items())


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _describe(mod) -> str:
    """``Linear, in_features=784``: a module's class and the input size it was built for."""
    from ._torch_map import in_size

    spec = in_size(mod)
    return type(mod).__name__ + (f", {spec[0]}={spec[1]}" if spec else "")


def _fmt(shape) -> str:
    return "[" + ", ".join("batch" if d == BATCH else str(d) for d in shape) + "]"


def _map_args(a, env):
    import torch.fx

    if isinstance(a, torch.fx.Node):
        return env[a]
    if isinstance(a, tuple):
        return tuple(_map_args(x, env) for x in a)
    if isinstance(a, list):
        return [_map_args(x, env) for x in a]
    if isinstance(a, dict):
        return {k: _map_args(v, env) for k, v in a.items()}
    if isinstance(a, slice):
        return slice(_map_args(a.start, env), _map_args(a.stop, env), _map_args(a.step, env))
    return a


def _flatten_values(a):
    if isinstance(a, (tuple, list)):
        for x in a:
            yield from _flatten_values(x)
    elif isinstance(a, dict):
        for x in a.values():
            yield from _flatten_values(x)
    elif isinstance(a, slice):
        yield from _flatten_values((a.start, a.stop, a.step))
    else:
        yield a


__all__ = ["BATCH", "TV", "TorchModel", "UnsupportedError", "from_torch"]
