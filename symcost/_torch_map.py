"""The map from PyTorch modules, functions and tensor methods to symcost kinds.

Used by :mod:`symcost.torch_bridge` (imports torch lazily through it).  Every function
here receives the builder ``b``, the traced arguments (:class:`~symcost.torch_bridge.TV`
for tensors, sympy sizes for ``x.size(i)``, Python values otherwise) and returns the
traced result, or raises ``_Unsupported`` with the reason.
"""

from __future__ import annotations

import math
import operator

import sympy

from .layers.base import broadcast, numel, same
from .sizes import as_expr
from .torch_bridge import BATCH, TV, _Unsupported

# ---------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------


def _data(args, what) -> TV:
    x = args[0] if args else None
    if not isinstance(x, TV):
        raise _Unsupported(f"{what} is called without a tensor input")
    if x.bpos is None:
        raise _Unsupported(f"{what} is applied to a constant, not to the data")
    return x


def _own_params(b, mod, path):
    """Check that the module's parameters are not counted already (shared weights)."""
    ids = {id(p): n for n, p in mod.named_parameters()}
    shared = [n for i, n in ids.items() if i in b.counted_params]
    return ids, shared


def _claim(b, ids, path):
    for i, n in ids.items():
        b.counted_params.setdefault(i, f"{path}.{n}")


def in_size(mod):
    """(argument, value, dim of one sample) of the input size a layer's weights are built for
    (nn.Linear's in_features: the last dim), or None for a layer without one."""
    import torch.nn as nn

    if isinstance(mod, nn.Linear):
        return "in_features", mod.in_features, -1
    if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d)):
        return "in_channels", mod.in_channels, -(len(mod.kernel_size) + 1)
    if isinstance(mod, (nn.RNN, nn.LSTM, nn.GRU)):
        return "input_size", mod.input_size, -1
    if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return "num_features", mod.num_features, 0
    if isinstance(mod, (nn.LayerNorm, nn.RMSNorm)) and len(mod.normalized_shape) == 1:
        return "normalized_shape", mod.normalized_shape[0], -1
    if isinstance(mod, nn.MultiheadAttention):
        return "embed_dim", mod.embed_dim, -1
    return None


def _check_in_size(b, mod, path, args):
    spec = in_size(mod)
    x = args[0] if args else None
    if spec is None or not isinstance(x, TV) or x.bpos is None:
        return
    attr, fixed, dim = spec
    shape = x.per_sample
    if not -len(shape) <= dim < len(shape):
        return  # a rank the mapping refuses with its own reason
    b.check_in_size(mod, path, attr, fixed, shape[dim], shape)


def call_module(b, mod, path, args, kwargs):
    _check_in_size(b, mod, path, args)
    outer = b.current_origin
    b.current_origin = (f"{outer}/" if outer else "") + f"nn.{type(mod).__name__}"
    try:
        return _call_module(b, mod, path, args, kwargs)
    finally:
        b.current_origin = outer


def _call_module(b, mod, path, args, kwargs):
    torch = b.torch
    nn = torch.nn
    name = type(mod).__name__
    if isinstance(mod, nn.TransformerEncoderLayer):
        return _encoder_layer(b, mod, path, _data(args, path), bool(kwargs.get("is_causal", False)))
    if isinstance(mod, nn.TransformerEncoder):
        x = _data(args, path)
        causal = bool(kwargs.get("is_causal", False))
        for i, layer in enumerate(mod.layers):
            x = _encoder_layer(b, layer, f"{path}.layers.{i}", x, causal)
        if mod.norm is not None:
            x = call_module(b, mod.norm, f"{path}.norm", (x,), {})
        return x
    ids, shared = _own_params(b, mod, path)
    node_id = b.fresh(path)
    if shared:
        if isinstance(mod, nn.Linear) and shared == ["weight"]:
            owner = b.counted_params[id(mod.weight)].rsplit(".", 1)[0]
            x = _data(args, path)
            out = b.add("linear", [x], node_id, out_features=b.sym(mod.out_features, path, "out_features"),
                        bias=mod.bias is not None, tied_to=owner)
            _claim(b, ids, path)
            return out
        raise _Unsupported(f"{name} is called again or shares parameters {', '.join(shared)} with another "
                           "layer; shared weights would be counted twice")
    _claim(b, ids, path)
    s = lambda attr: b.sym(getattr(mod, attr), path, attr)  # noqa: E731
    if isinstance(mod, nn.Linear):
        return b.add("linear", [_data(args, path)], node_id, out_features=s("out_features"),
                     bias=mod.bias is not None)
    if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d)):
        transposed = isinstance(mod, (nn.ConvTranspose1d, nn.ConvTranspose2d))
        nd = len(mod.kernel_size)
        op = ("conv_transpose" if transposed else "conv") + f"{nd}d"
        if transposed and len(args) > 1:
            raise _Unsupported(f"{name} with an output_size argument")
        padding = mod.padding if isinstance(mod.padding, str) else s("padding")
        extra = {"output_padding": s("output_padding")} if transposed else {}
        return b.add(op, [_data(args, path)], node_id, out_channels=s("out_channels"),
                     kernel_size=s("kernel_size"), stride=s("stride"), padding=padding,
                     dilation=s("dilation"), groups=s("groups"), bias=mod.bias is not None, **extra)
    if isinstance(mod, (nn.MaxPool1d, nn.MaxPool2d)):
        if mod.ceil_mode or mod.return_indices:
            raise _Unsupported(f"{name} with ceil_mode or return_indices")
        nd = 1 if isinstance(mod, nn.MaxPool1d) else 2
        return b.add(f"maxpool{nd}d", [_data(args, path)], node_id, kernel_size=s("kernel_size"),
                     stride=s("stride"), padding=s("padding"), dilation=s("dilation"))
    if isinstance(mod, (nn.AvgPool1d, nn.AvgPool2d)):
        if mod.ceil_mode or getattr(mod, "divisor_override", None):
            raise _Unsupported(f"{name} with ceil_mode or divisor_override")
        nd = 1 if isinstance(mod, nn.AvgPool1d) else 2
        return b.add(f"avgpool{nd}d", [_data(args, path)], node_id, kernel_size=_tuple(s("kernel_size"), nd),
                     stride=_tuple(s("stride"), nd), padding=_tuple(s("padding"), nd),
                     count_include_pad=mod.count_include_pad)
    if isinstance(mod, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
        return _adaptive_avg(b, mod, path, node_id, _data(args, path))
    if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if not mod.track_running_stats:
            raise _Unsupported(f"{name} without running statistics normalises with batch statistics")
        op = "batchnorm1d" if isinstance(mod, nn.BatchNorm1d) else "batchnorm2d"
        return b.add(op, [_data(args, path)], node_id, affine=mod.affine)
    if isinstance(mod, nn.LayerNorm):
        return _layernorm(b, mod, path, node_id, _data(args, path))
    if isinstance(mod, nn.RMSNorm):
        if len(mod.normalized_shape) != 1:
            raise _Unsupported(f"nn.RMSNorm over {len(mod.normalized_shape)} dims (symcost's rmsnorm: the last one)")
        return b.add("rmsnorm", [_data(args, path)], node_id, elementwise_affine=mod.elementwise_affine)
    for cls, op in ((nn.ReLU, "relu"), (nn.Sigmoid, "sigmoid"), (nn.SiLU, "silu"), (nn.Tanh, "tanh")):
        if isinstance(mod, cls):
            return b.add(op, [_data(args, path)], node_id)
    if isinstance(mod, nn.GELU):
        return b.add("gelu", [_data(args, path)], node_id, approximate=mod.approximate)
    if isinstance(mod, nn.Softmax):
        x = _data(args, path)
        if mod.dim is None:
            raise _Unsupported("nn.Softmax without dim (PyTorch's implicit-dim legacy rule)")
        return b.add("softmax", [x], node_id, dim=_dim(x, mod.dim, path))
    if isinstance(mod, nn.Dropout):
        return b.add("dropout", [_data(args, path)], node_id, p=mod.p)
    if isinstance(mod, nn.Identity):
        return b.add("identity", [_data(args, path)], node_id)
    if isinstance(mod, nn.Flatten):
        return flatten(b, _data(args, path), mod.start_dim, mod.end_dim, node_id, module=True)
    if isinstance(mod, nn.Embedding):
        if mod.max_norm is not None:
            raise _Unsupported("nn.Embedding with max_norm renormalises rows")
        idx = args[0] if args else None
        if not isinstance(idx, TV):
            raise _Unsupported("nn.Embedding called without a tensor of indices")
        # indices may be data or a constant (a positional table read with torch.arange)
        return b.add("embedding", [idx], node_id, num_embeddings=s("num_embeddings"),
                     embedding_dim=s("embedding_dim"))
    if isinstance(mod, (nn.RNN, nn.LSTM, nn.GRU)):
        return _recurrent(b, mod, path, node_id, args, s)
    if isinstance(mod, nn.MultiheadAttention):
        return _mha(b, mod, path, node_id, args, kwargs)
    raise _Unsupported(f"no symcost kind for nn.{name}")


def _tuple(v, n):
    return v if isinstance(v, tuple) else (v,) * n


def _adaptive_avg(b, mod, path, node_id, x):
    nd = 1 if isinstance(mod, b.torch.nn.AdaptiveAvgPool1d) else 2
    outs = _tuple(mod.output_size, nd)
    spatial = x.per_sample[-nd:]
    kernel = []
    for M, o in zip(spatial, outs):
        if o is None:
            o = M
        if o == 1:
            kernel.append(M)
        elif not as_expr(M).free_symbols and int(M) % o == 0:
            kernel.append(sympy.Integer(int(M) // o))
        else:
            raise _Unsupported(f"nn.{type(mod).__name__} from {M} to {o}: windows of unequal sizes "
                               "(only output 1 or an input divisible by the output maps to avgpool)")
    return b.add(f"avgpool{nd}d", [x], node_id, kernel_size=tuple(kernel), stride=tuple(kernel))


def _layernorm(b, mod, path, node_id, x):
    if len(mod.normalized_shape) != 1:
        raise _Unsupported(f"nn.LayerNorm over {len(mod.normalized_shape)} dims (symcost's layernorm: the last one)")
    return b.add("layernorm", [x], node_id, elementwise_affine=mod.elementwise_affine,
                 bias=getattr(mod, "bias", None) is not None or not mod.elementwise_affine)


def _recurrent(b, mod, path, node_id, args, s):
    nn = b.torch.nn
    if getattr(mod, "proj_size", 0):
        raise _Unsupported("nn.LSTM with proj_size")
    x = _data(args, path)
    if len(x.shape) != 3:
        raise _Unsupported(f"{type(mod).__name__} on an input of rank {len(x.shape)} (expected batched [.., .., I])")
    want = 0 if mod.batch_first else 1
    if x.bpos != want:
        raise _Unsupported(f"{type(mod).__name__}(batch_first={mod.batch_first}) reads the batch at dim {want}, "
                           f"but the data's batch is at dim {x.bpos}; pass batch_dim={want}")
    op = "lstm" if isinstance(mod, nn.LSTM) else "gru" if isinstance(mod, nn.GRU) else "rnn"
    extra = {"nonlinearity": mod.nonlinearity} if op == "rnn" else {}
    out = b.add(op, [x], node_id, hidden_size=s("hidden_size"), num_layers=s("num_layers"),
                bias=mod.bias, bidirectional=mod.bidirectional, **extra)
    H = out.per_sample[-1] / (2 if mod.bidirectional else 1)
    first = sympy.Integer(mod.num_layers * (2 if mod.bidirectional else 1))
    state_shape = (first, BATCH, H)

    def state(suffix):
        return TV(state_shape, None, 1, src=out, lazy_id=f"{node_id}.{suffix}")

    if op == "lstm":
        return (out, (state("h_n"), state("c_n")))
    return (out, state("h_n"))


def _mha(b, mod, path, node_id, args, kwargs):
    names = ("query", "key", "value")
    vals = list(args[:3]) + [kwargs.get(n) for n in names[len(args[:3]):]]
    q, k, v = vals
    for t in (q, k, v):
        if not isinstance(t, TV) or t.bpos is None:
            raise _Unsupported("nn.MultiheadAttention needs query, key and value tensors of the data")
    want = 0 if mod.batch_first else 1
    if q.bpos != want or len(q.shape) != 3:
        raise _Unsupported(f"nn.MultiheadAttention(batch_first={mod.batch_first}) reads the batch at dim {want}, "
                           f"but the data's is at dim {q.bpos}")
    inputs = [q] if (q is k and k is v) else ([q, k] if k is v else [q, k, v])
    causal = bool(kwargs.get("is_causal", False))
    if mod.bias_k is not None or mod.add_zero_attn:
        raise _Unsupported("nn.MultiheadAttention with add_bias_kv or add_zero_attn")
    out = b.add("multihead_attention", inputs, node_id, num_heads=b.sym(mod.num_heads, path, "num_heads"),
                bias=mod.in_proj_bias is not None, is_causal=causal or None)
    need = kwargs.get("need_weights", args[4] if len(args) > 4 else True)
    Tq, Tkv = q.per_sample[0], k.per_sample[0]
    weights = None
    if need:
        weights = TV((BATCH, Tq, Tkv), None, 0, src=out, lazy_id=f"{node_id}.attn_weights")
        b.notes.append(f"{path}: need_weights=True averages the attention weights over heads "
                       "(h·T_q·T_kv adds) -- not counted; pass need_weights=False in inference")
    return (out, weights)


def _encoder_layer(b, layer, path, x, causal):
    """nn.TransformerEncoderLayer, expanded into its parts (norm_first respected)."""
    nn = b.torch.nn
    if not layer.self_attn.batch_first and x.bpos != 1 or layer.self_attn.batch_first and x.bpos != 0:
        raise _Unsupported(f"{path}: the batch is at dim {x.bpos}, but batch_first={layer.self_attn.batch_first}")
    act = layer.activation
    if isinstance(act, (nn.ReLU, nn.GELU)):
        act_mod = act
    elif act is b.torch.nn.functional.relu:
        act_mod = nn.ReLU()
    elif act is b.torch.nn.functional.gelu:
        act_mod = nn.GELU()
    else:
        raise _Unsupported(f"{path}: activation {act!r} (relu or gelu are mapped)")

    def sub(name, inp):
        if name == "activation" and act_mod is not act:
            # a function captured when the layer was built (activation="gelu"): hidden from
            # tools that patch torch.nn.functional afterwards
            fn = f"F.{act.__name__}@init"
            outer, b.current_origin = b.current_origin, f"{b.current_origin}/{fn}"
            try:
                return b.add(act.__name__, [inp], b.fresh(f"{path}.activation"))
            finally:
                b.current_origin = outer
        m = act_mod if name == "activation" else getattr(layer, name)
        return call_module(b, m, f"{path}.{name}", (inp,), {})

    def sa(inp):
        out, _ = call_module(b, layer.self_attn, f"{path}.self_attn", (inp, inp, inp),
                             {"need_weights": False, "is_causal": causal})
        return sub("dropout1", out)

    def ff(inp):
        h = sub("linear1", inp)
        h = sub("activation", h)
        h = sub("dropout", h)
        h = sub("linear2", h)
        return sub("dropout2", h)

    def residual(name, a, c):
        return b.add("add", [a, c], b.fresh(f"{path}.{name}"))

    if layer.norm_first:
        x = residual("residual1", x, sa(sub("norm1", x)))
        x = residual("residual2", x, ff(sub("norm2", x)))
    else:
        x = sub("norm1", residual("residual1", x, sa(x)))
        x = sub("norm2", residual("residual2", x, ff(x)))
    return x


# ---------------------------------------------------------------------------
# Functions and methods
# ---------------------------------------------------------------------------


def _dim(x: TV, d, what) -> int:
    """A dim of the batched tensor x as a dim of one sample."""
    r = len(x.shape)
    if not isinstance(d, int) or not -r <= d < r:
        raise _Unsupported(f"{what}: dim {d!r} out of range for rank {r}")
    d %= r
    if x.bpos is None:
        return d
    if d == x.bpos:
        raise _Unsupported(f"{what} along the batch dimension mixes samples")
    return d - 1 if d > x.bpos else d


def flatten(b, x: TV, start, end, node_id, module=False):
    r = len(x.shape)
    s, e = start % r, end % r
    shape = x.shape[:s] + (numel(x.shape[s:e + 1]),) + x.shape[e + 1:]
    if x.bpos is not None and s <= x.bpos <= e and s != e:
        raise _Unsupported(f"flatten({start}, {end}) merges the batch dimension into others")
    if module:
        ps, pe = _dim(x, s, "flatten"), _dim(x, e, "flatten")
        out = b.add("flatten", [x], node_id, start_dim=ps, end_dim=pe)
        return out
    return b.view(x, shape, node_id)


def _binary(b, op, a, c, where):
    """Elementwise op of two operands: tensors (add/mul kinds) or a tensor and a number."""
    if isinstance(a, TV) and isinstance(c, TV):
        if a.bpos is None and c.bpos is None:
            return TV(broadcast([a.shape, c.shape], op), None, None)
        if op not in ("add", "sub", "mul"):
            raise _Unsupported(f"elementwise {op} of two tensors has no symcost kind")
        data = a if a.bpos is not None else c
        out = broadcast([a.shape, c.shape], op)
        for t in (a, c):
            if t.bpos is not None and len(out) - t.bpos != len(data.shape) - data.bpos:
                raise _Unsupported(f"{op}: the operands' batch dimensions do not line up")
        return b.add("add" if op == "sub" else op, [a, c], b.fresh(where),
                     bpos=len(out) - (len(data.shape) - data.bpos))
    t, other = (a, c) if isinstance(a, TV) else (c, a)
    if not isinstance(t, TV):
        return _py(op, a, c)
    if not _is_number(other):
        raise _Unsupported(f"{op} of a tensor and {type(other).__name__}")
    if t.bpos is None:
        return TV(t.shape, None, None)
    if op == "div" and t is c:
        raise _Unsupported("a number divided by a tensor (reciprocal) has no symcost kind")
    return b.add("scalar", [t], b.fresh(where), operator=op)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) or isinstance(v, sympy.Expr)


_PY = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
       "div": lambda a, c: as_expr(a) / c, "floordiv": lambda a, c: sympy.floor(as_expr(a) / c)}


def _py(op, a, c):
    if op not in _PY:
        raise _Unsupported(f"{op} of sizes")
    res = _PY[op](a, c)
    return res


def _matmul(b, a, c, where):
    if not (isinstance(a, TV) and isinstance(c, TV)):
        raise _Unsupported("matmul of a non-tensor")
    if a.bpos is None and c.bpos is None:
        raise _Unsupported("matmul of two constants")
    for t in (a, c):
        if t.bpos is not None and t.bpos >= len(t.shape) - 2:
            raise _Unsupported("matmul where the batch is one of the two matrix dimensions")
    data = a if a.bpos is not None else c
    # batch dims are aligned right, before the matrix dims (both operands have >= 3 dims here)
    rank = max(len(a.shape), len(c.shape))
    return b.add("matmul", [a, c], b.fresh(where), bpos=rank - (len(data.shape) - data.bpos))


def _softmax(b, x, dim, where, **kw):
    if not isinstance(x, TV):
        raise _Unsupported("softmax of a non-tensor")
    if dim is None:
        raise _Unsupported("softmax without dim")
    return b.add("softmax", [x], b.fresh(where), dim=_dim(x, dim, "softmax"))


REDUCTIONS = ("sum", "mean", "amax", "amin")


def _reduce(b, op, x, dim, keepdim, where):
    """x.sum/mean/amax/amin(dim, keepdim): the per-sample dims; the batch stays where it was,
    moved left by the reduced dims before it (unless keepdim)."""
    if not isinstance(x, TV):
        raise _Unsupported(f"{op} of a non-tensor")
    if not isinstance(keepdim, bool):
        raise _Unsupported(f"{op} with keepdim={keepdim!r}")
    if dim is None:
        if x.bpos is not None:
            raise _Unsupported(f"{op} over every dim, the batch dimension too, mixes samples")
        return b.add(op, [x], b.fresh(where), keepdim=keepdim)
    items = list(dim) if isinstance(dim, (list, tuple)) else [dim]
    dims = [_dim(x, d, op) for d in items]      # refuses the batch dim
    bpos = x.bpos
    if bpos is not None and not keepdim:
        r = len(x.shape)
        bpos -= sum(1 for d in items if d % r < x.bpos)
    return b.add(op, [x], b.fresh(where), bpos=bpos, dim=dims, keepdim=keepdim)


def _reduce_call(b, op, where, x, *rest, **kwargs):
    dim = kwargs.get("dim", rest[0] if rest else None)
    keepdim = kwargs.get("keepdim", rest[1] if len(rest) > 1 else False)
    return _reduce(b, op, x, dim, keepdim, where)


def _unary(op):
    def f(b, where, x, *a, **kw):
        if not isinstance(x, TV):
            raise _Unsupported(f"{op} of a non-tensor")
        if x.bpos is None:
            return x
        extra = {}
        if op == "gelu":
            extra["approximate"] = kw.get("approximate", "none")
        return b.add(op, [x], b.fresh(where), **extra)
    return f


def _sdpa(b, where, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    for t in (q, k, v):
        if not isinstance(t, TV):
            raise _Unsupported("scaled_dot_product_attention of non-tensors")
    if enable_gqa:
        raise _Unsupported("scaled_dot_product_attention with enable_gqa")
    return b.add("scaled_dot_product_attention", [q, k, v], b.fresh(where), dropout_p=dropout_p,
                 is_causal=bool(is_causal) or None)


def _size(x, d=None):
    if not isinstance(x, TV):
        raise _Unsupported("size of a non-tensor")
    if d is None:
        return tuple(x.shape)
    return x.shape[d]


def _norm_shape(args):
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return list(args[0])
    return list(args)


def reshape(b, x, shape, where):
    if not isinstance(x, TV):
        raise _Unsupported("reshape of a non-tensor")
    shape = [as_expr(d) for d in shape]
    total = numel(x.shape)
    if sum(1 for d in shape if d == -1) > 1:
        raise _Unsupported("reshape with two -1")
    if any(d == -1 for d in shape):
        known = numel([d for d in shape if d != -1])
        rest = sympy.cancel(total / known)
        shape = [rest if d == -1 else d for d in shape]
    elif not same(numel(shape), total):
        raise _Unsupported(f"reshape of {x.shape} to {shape}: sizes differ")
    return b.view(x, tuple(shape), b.fresh(where))


def permute(b, x, dims, where):
    dims = [d % len(x.shape) for d in dims]
    if sorted(dims) != list(range(len(x.shape))):
        raise _Unsupported(f"permute {dims} of rank {len(x.shape)}")
    return b.view(x, tuple(x.shape[d] for d in dims), b.fresh(where))


def transpose(b, x, d0, d1, where):
    dims = list(range(len(x.shape)))
    d0, d1 = d0 % len(dims), d1 % len(dims)
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return permute(b, x, dims, where)


def unsqueeze(b, x, d, where):
    r = len(x.shape) + 1
    d %= r
    shape = x.shape[:d] + (sympy.Integer(1),) + x.shape[d:]
    return b.view(x, shape, b.fresh(where))


def squeeze(b, x, d, where):
    dims = range(len(x.shape)) if d is None else [dd % len(x.shape) for dd in (d if isinstance(d, (tuple, list)) else [d])]
    shape = tuple(s for i, s in enumerate(x.shape) if not (i in dims and s == 1))
    return b.view(x, shape, b.fresh(where))


def _slice_len(n, sl: slice):
    start, stop, step = sl.start, sl.stop, sl.step
    if step not in (None, 1):
        if all(not as_expr(v).free_symbols for v in (n,)) and all(
                v is None or isinstance(v, int) for v in (start, stop, step)):
            return sympy.Integer(len(range(*slice(start, stop, step).indices(int(n)))))
        raise _Unsupported(f"a slice with step {step} of a symbolic size")
    if not as_expr(n).free_symbols and all(v is None or isinstance(v, int) for v in (start, stop)):
        return sympy.Integer(len(range(*slice(start, stop).indices(int(n)))))
    lo = 0 if start is None else start
    hi = n if stop is None else stop
    lo = n + lo if _neg(lo) else lo
    hi = n + hi if _neg(hi) else hi
    return as_expr(hi) - lo


def _neg(v) -> bool:
    return isinstance(v, int) and v < 0 or isinstance(v, sympy.Expr) and v.is_negative is True


def getitem(b, x, idx, where):
    if isinstance(x, (tuple, list)):
        return x[idx]
    if not isinstance(x, TV):
        raise _Unsupported(f"indexing a {type(x).__name__}")
    idx = idx if isinstance(idx, tuple) else (idx,)
    if any(isinstance(i, TV) for i in idx):
        raise _Unsupported("indexing a tensor with a tensor (gather)")
    n_real = sum(1 for i in idx if i is not None and i is not Ellipsis)
    if Ellipsis in idx:
        e = idx.index(Ellipsis)
        idx = idx[:e] + (slice(None),) * (len(x.shape) - n_real) + idx[e + 1:]
    out, axis = [], 0
    for i in idx:
        if i is None:
            out.append(sympy.Integer(1))
            continue
        n = x.shape[axis]
        if axis == x.bpos and not (isinstance(i, slice) and i == slice(None)):
            raise _Unsupported("indexing the batch dimension")
        if isinstance(i, slice):
            out.append(n if i == slice(None) else _slice_len(n, i))
        elif isinstance(i, int) or isinstance(i, sympy.Expr):
            pass  # the axis is selected away
        else:
            raise _Unsupported(f"index {i!r}")
        axis += 1
    out.extend(x.shape[axis:])
    return b.view(x, tuple(out), b.fresh(where))


def chunk(b, x, chunks, dim, where):
    d = dim % len(x.shape)
    n = x.shape[d]
    if as_expr(n).free_symbols:
        size = n / chunks
    else:
        size = sympy.Integer(-(-int(n) // chunks))
    parts, left, i = [], n, 0
    while True:
        this = size if as_expr(left - size).free_symbols or left - size > 0 else left
        shape = x.shape[:d] + (this,) + x.shape[d + 1:]
        parts.append(b.view(x, shape, b.fresh(f"{where}.{i}")))
        i += 1
        left = left - size
        if i == chunks or (not as_expr(left).free_symbols and left <= 0):
            break
    return tuple(parts)


def _const(shape_args):
    shape = _norm_shape(shape_args)
    return TV(tuple(as_expr(d) for d in shape), None, None)


def call_function(b, fn, where, args, kwargs):
    torch = b.torch
    F = torch.nn.functional
    table = {
        operator.add: "add", torch.add: "add", operator.sub: "sub", torch.sub: "sub",
        operator.mul: "mul", torch.mul: "mul", operator.truediv: "div", torch.div: "div",
        operator.floordiv: "floordiv",
    }
    if fn in table:
        if kwargs.get("alpha", 1) != 1:
            raise _Unsupported(f"{table[fn]} with alpha")
        return _binary(b, table[fn], args[0], args[1], where)
    if fn is operator.getitem:
        return getitem(b, args[0], args[1], where)
    if fn is getattr:
        obj, attr = args
        if isinstance(obj, TV) and attr == "shape":
            return tuple(obj.shape)
        if isinstance(obj, TV) and attr == "ndim":
            return len(obj.shape)
        if isinstance(obj, TV) and attr in ("T", "mT"):
            return transpose(b, obj, -2, -1, where)
        if isinstance(obj, TV) and attr in ("dtype", "device"):
            return None
        raise _Unsupported(f"attribute {attr!r}")
    if fn in (operator.matmul, torch.matmul, torch.bmm, torch.mm):
        return _matmul(b, args[0], args[1], where)
    if fn in (F.relu, torch.relu):
        return _unary("relu")(b, where, *args)
    if fn in (F.gelu,):
        return _unary("gelu")(b, where, *args, **kwargs)
    if fn in (torch.sigmoid, F.sigmoid):
        return _unary("sigmoid")(b, where, *args)
    if fn is F.silu:
        return _unary("silu")(b, where, *args)
    if fn in (torch.tanh, F.tanh):
        return _unary("tanh")(b, where, *args)
    for op in REDUCTIONS:
        if fn is getattr(torch, op):
            return _reduce_call(b, op, where, *args, **kwargs)
    if fn in (F.softmax, torch.softmax):
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        return _softmax(b, args[0], dim, where)
    if fn in (F.dropout,):
        return args[0]
    if fn is F.scaled_dot_product_attention:
        return _sdpa(b, where, *args, **kwargs)
    if fn is torch.flatten:
        x = args[0]
        start = kwargs.get("start_dim", args[1] if len(args) > 1 else 0)
        end = kwargs.get("end_dim", args[2] if len(args) > 2 else -1)
        return flatten(b, x, start, end, b.fresh(where))
    if fn in (torch.reshape,):
        return reshape(b, args[0], _norm_shape(args[1:]), where)
    if fn in (torch.permute,):
        return permute(b, args[0], _norm_shape(args[1:]), where)
    if fn in (torch.transpose,):
        return transpose(b, args[0], args[1], args[2], where)
    if fn in (torch.cat, torch.concat):
        tensors = args[0]
        dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
        if all(t.bpos is None for t in tensors):
            return TV(tuple(tensors[0].shape), None, None)  # (shape along dim unused for constants)
        data = [t for t in tensors if t.bpos is not None][0]
        return b.add("concat", list(tensors), b.fresh(where), dim=_dim(data, dim, "cat"))
    if fn in (torch.arange,):
        vals = [a for a in args if a is not None]
        if len(vals) == 1:
            n = vals[0]
        elif len(vals) == 2 and not kwargs.get("step"):
            n = as_expr(vals[1]) - vals[0]
        else:
            raise _Unsupported("arange with a step")
        return TV((as_expr(n),), None, None)
    if fn in (torch.ones, torch.zeros, torch.empty, torch.full, torch.rand, torch.randn):
        if fn is torch.full:
            return _const([args[0]])
        return _const(args)
    if fn in (torch.triu, torch.tril):
        x = args[0]
        if x.bpos is not None:
            raise _Unsupported(f"{fn.__name__} of the data")
        return x
    if fn in (math.sqrt,):
        return sympy.sqrt(args[0])
    if fn is len and isinstance(args[0], TV):
        return args[0].shape[0]
    name = getattr(fn, "__name__", repr(fn))
    raise _Unsupported(f"no symcost mapping for the function {getattr(fn, '__module__', '') or ''}.{name}")


_METHOD_UNARY = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh"}  # Tensor has no .silu()
_PASS = {"contiguous", "float", "double", "half", "to", "type_as", "detach", "clone", "cpu", "cuda", "bool",
         "long", "int", "requires_grad_"}


def call_method(b, name, where, args, kwargs):
    x = args[0]
    rest = args[1:]
    if not isinstance(x, TV):
        raise _Unsupported(f"method {name} of a {type(x).__name__}")
    if name == "size":
        d = kwargs.get("dim", rest[0] if rest else None)
        return _size(x, d)
    if name == "dim":
        return len(x.shape)
    if name == "numel":
        return numel(x.shape)
    if name in _PASS:
        if name == "clone" and x.bpos is not None:
            raise _Unsupported("clone copies the data (a memory op with no symcost kind)")
        return x
    if name in ("view", "reshape"):
        return reshape(b, x, _norm_shape(rest), where)
    if name == "flatten":
        start = kwargs.get("start_dim", rest[0] if rest else 0)
        end = kwargs.get("end_dim", rest[1] if len(rest) > 1 else -1)
        return flatten(b, x, start, end, b.fresh(where))
    if name == "permute":
        return permute(b, x, _norm_shape(rest), where)
    if name == "transpose":
        return transpose(b, x, rest[0], rest[1], where)
    if name == "t":
        return transpose(b, x, 0, 1, where)
    if name == "unsqueeze":
        return unsqueeze(b, x, kwargs.get("dim", rest[0] if rest else None), where)
    if name == "squeeze":
        return squeeze(b, x, kwargs.get("dim", rest[0] if rest else None), where)
    if name in ("expand",):
        shape = _norm_shape(rest)
        pad = len(shape) - len(x.shape)
        out = tuple(x.shape[i - pad] if (s == -1) else as_expr(s) for i, s in enumerate(shape))
        return b.view(x, out, b.fresh(where))
    if name == "chunk":
        return chunk(b, x, rest[0], kwargs.get("dim", rest[1] if len(rest) > 1 else 0), where)
    if name in _METHOD_UNARY:
        return _unary(_METHOD_UNARY[name])(b, where, x)
    if name == "softmax":
        return _softmax(b, x, kwargs.get("dim", rest[0] if rest else None), where)
    if name in REDUCTIONS:
        return _reduce_call(b, name, where, x, *rest, **kwargs)
    if name in ("matmul", "bmm", "mm", "__matmul__"):
        return _matmul(b, x, rest[0], where)
    if name in ("add", "sub", "mul", "div"):
        if kwargs.get("alpha", 1) != 1:
            raise _Unsupported(f"{name} with alpha")
        return _binary(b, name, x, rest[0], where)
    if name in ("triu", "tril", "masked_fill") and x.bpos is None:
        return x
    raise _Unsupported(f"no symcost mapping for the tensor method .{name}()")
