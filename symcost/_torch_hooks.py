"""The fallback when torch.fx cannot trace a module: a hook walk on the meta device.

The module runs once on meta tensors (no memory, no arithmetic).  Forward hooks on the
layers symcost knows (the leaves of :mod:`symcost.torch_bridge`) record each layer call;
a ``TorchFunctionMode`` records every tensor function and method called *between* layers
(residual additions, ``F.relu``, ``view``, ``@`` ...).  Both become nodes of an fx graph
with the same meaning as a traced one, so the same interpreter maps them.

What the walk cannot see is how a size was computed: ``x.view(x.size(0), -1)`` arrives as
``view(97, -1)``.  So the batch runs at a value no layer is likely to have (97), and in
the size arguments of reshaping calls an integer equal to the batch, or to a named input
dimension's trace value, is read as that size.  Every node's shape is then checked against
the shape the run produced, and the symbolic cost against a concrete trace (see
:func:`symcost.torch_bridge.from_torch`); the walk follows the path taken at the trace
sizes (data-dependent control flow is what made fx fail).
"""

from __future__ import annotations

import operator
from types import SimpleNamespace

from .errors import SymcostError
from .sizes import as_expr

HOOK_BATCH = 97

#: Tensor dunder methods and what fx would have recorded for them.
DUNDER = {
    "__add__": operator.add, "__radd__": "radd", "__iadd__": operator.add,
    "__sub__": operator.sub, "__rsub__": "rsub", "__mul__": operator.mul, "__rmul__": "rmul",
    "__imul__": operator.mul, "__truediv__": operator.truediv, "__matmul__": operator.matmul,
    "__getitem__": operator.getitem,
}
#: queries that return sizes, not tensors: not operations
QUERIES = {"size", "dim", "numel", "__get__", "__len__", "__format__", "__repr__", "__bool__", "stride",
           "is_contiguous", "element_size", "data_ptr", "__hash__", "__eq__", "__ne__", "__setstate__",
           "is_floating_point", "get_device", "__index__", "__int__", "__float__", "item", "tolist"}
SIZE_TAKING = {"view", "reshape", "expand", "new_zeros", "new_ones", "new_empty", "repeat",
               "arange", "ones", "zeros", "empty", "full", "rand", "randn"}


def hook_graph(builder, err):
    torch = builder.torch
    from torch.overrides import TorchFunctionMode

    from .torch_bridge import BATCH, _leaf_types, meta_copy

    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    builder.notes.append(f"torch.fx could not trace {builder.title} ({type(err).__name__}: {first}); "
                         "used the hook walk on the meta device: the formula follows the path the module "
                         "took at the traced sizes")
    leaves = _leaf_types(torch)
    meta = meta_copy(torch, builder.module)
    paths = {id(m): name for name, m in meta.named_modules()}
    tensors = {}
    for name, t in list(meta.named_parameters()) + list(meta.named_buffers()):
        tensors[id(t)] = ("attr", name)
    values = {**builder.values}
    by_value = {int(v): s for s, v in values.items()}
    by_value[HOOK_BATCH] = BATCH

    graph = torch.fx.Graph()
    producers: dict[int, object] = {}
    alive: list = []
    real: dict[str, tuple] = {}
    depth = [0]

    def node_for(t):
        if id(t) in producers:
            return producers[id(t)]
        if id(t) in tensors:
            n = graph.get_attr(tensors[id(t)][1])
            producers[id(t)] = n
            alive.append(t)
            return n
        raise SymcostError(f"{builder.title}: the hook walk met a tensor it did not see being made "
                           f"(shape {list(t.shape)}); trace the module with torch.fx instead")

    def arg(a, size_like=False):
        if isinstance(a, torch.Tensor):
            return node_for(a)
        if isinstance(a, (list, tuple)):
            out = [arg(x, size_like) for x in a]
            return tuple(out) if isinstance(a, tuple) else out
        if isinstance(a, dict):
            return {k: arg(v, size_like) for k, v in a.items()}
        if isinstance(a, slice):
            return slice(arg(a.start, size_like), arg(a.stop, size_like), arg(a.step, size_like))
        if size_like and isinstance(a, int) and not isinstance(a, bool) and a in by_value:
            return by_value[a]
        if isinstance(a, torch.Size):
            return tuple(arg(int(x), size_like) for x in a)
        return a

    def record(op, target, args, kwargs, out, name_hint=None):
        size_like = (getattr(target, "__name__", target) in SIZE_TAKING) or target is operator.getitem
        node = graph.create_node(op, target, arg(args, size_like), arg(kwargs, size_like), name=name_hint)
        if isinstance(out, torch.Tensor):
            producers[id(out)] = node
            alive.append(out)
            real[node.name] = tuple(out.shape)
        elif isinstance(out, (tuple, list)):
            _index_outputs(graph, node, out, producers, alive)
        return node

    running: list = []  # the layers being run, innermost last (what a failure names)

    def pre(mod, args, kwargs):
        depth[0] += 1
        running.append(mod)

    def post(mod, args, kwargs, out):
        depth[0] -= 1
        running.pop()
        if depth[0] == 0:
            record("call_module", paths[id(mod)], args, kwargs, out)

    handles = []
    for m in meta.modules():
        if isinstance(m, leaves):
            handles.append(m.register_forward_pre_hook(pre, with_kwargs=True))
            handles.append(m.register_forward_hook(post, with_kwargs=True))

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            name = getattr(func, "__name__", "")
            if depth[0] == 0 and name not in QUERIES:
                if name in DUNDER:
                    target = DUNDER[name]
                    if isinstance(target, str):  # reflected: swap the operands
                        target = {"radd": operator.add, "rsub": operator.sub, "rmul": operator.mul}[target]
                        args = (args[1], args[0])
                    record("call_function", target, args, kwargs, out)
                elif _is_method(torch, func):
                    record("call_method", name, args, kwargs, out)
                else:
                    record("call_function", func, args, kwargs, out)
            return out

    placeholders = [n for n in _forward_params(builder)]
    inputs = []
    for pname in placeholders:
        shape = builder.shapes.get(pname, builder.shapes.get(None) if not inputs else None)
        if shape is None:
            break
        concrete = [int(as_expr(d).xreplace(values)) for d in shape]
        b = builder.batch_dim
        concrete = concrete[:b] + [HOOK_BATCH] + concrete[b:]
        dtype = builder.input_dtype or torch.float32
        x = torch.zeros(concrete, dtype=dtype, device="meta")
        node = graph.placeholder(pname)
        producers[id(x)] = node
        alive.append(x)
        inputs.append(x)
    try:
        with Mode():
            out = meta(*inputs)
    except SymcostError:
        raise
    except Exception as run_err:  # noqa: BLE001 - the user's module fails at these sizes
        from .torch_bridge import _describe

        text = str(run_err).strip().splitlines()[0][:300] if str(run_err).strip() else ""
        reason = f"{type(run_err).__name__}: {text}" if text else type(run_err).__name__
        where = f" in layer {paths[id(running[-1])]!r} ({_describe(running[-1])})" if running else ""
        batch = f" (PyTorch's shapes include a batch of {HOOK_BATCH} at dim {builder.batch_dim})" \
            if any(c.isdigit() for c in text) else ""
        raise SymcostError(f"{builder.title}: torch.fx cannot trace it ({first[:200]}), and run on the meta "
                           f"device it fails{where}: {reason}{batch}") from None
    finally:
        for h in handles:
            h.remove()
    graph.output(arg(out))
    builder.batch_trace = HOOK_BATCH
    return SimpleNamespace(graph=graph, real=real)


def _is_method(torch, func) -> bool:
    owner = getattr(func, "__objclass__", None)
    return owner is not None and issubclass(owner, torch._C.TensorBase)


def _index_outputs(graph, node, out, producers, alive):
    """A tuple result (an LSTM's (out, (h, c))): getitem nodes, as fx would record them."""
    import torch

    for i, o in enumerate(out):
        g = graph.call_function(operator.getitem, (node, i))
        if isinstance(o, torch.Tensor):
            producers[id(o)] = g
            alive.append(o)
        elif isinstance(o, (tuple, list)):
            _index_outputs(graph, g, o, producers, alive)


def _forward_params(builder) -> list[str]:
    import inspect

    sig = inspect.signature(builder.module.forward)
    names = [p.name for p in sig.parameters.values()
             if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    given = [k for k in builder.shapes if k is not None]
    return [n for n in names if n in given] or names[:1]
