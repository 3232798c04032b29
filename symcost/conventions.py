"""FLOP conventions by name: what each counting tool reports, derived from symcost's layer costs.

A convention is a pure function of one layer application -- its kind, its
:class:`~symcost.cost.Cost`, its quantities (the named sizes) and, for a traced PyTorch
module, the PyTorch call it came from (``nn.ReLU``, ``F.relu``, ``operator.add`` ...) --
to a number; the model's figure is the sum over its layers.  Every value is per sample
and scales with the batch; all are symbolic when the sizes are.

==============  =====  ===============================================================
name            unit   what it counts
==============  =====  ===============================================================
``symcost``     FLOP   the default contract: ``flops``, the sum of ``ops`` (a dot product
                       of n terms is n mul + n − 1 add, a bias 1 add; every elementwise op,
                       comparison and transcendental of the layer)
``exact``       FLOP   the same count, named for comparison with the peers: 2k − 1 per dot
                       product of k terms (+1 per bias), every elementwise op and comparison
``macs``        MAC    ``macs``: multiply-accumulates of linear algebra, biases excluded
``torch``       FLOP   torch.utils.flop_counter.FlopCounterMode: 2·MAC of mm/bmm/addmm/conv/
                       attention (and RNNs, which it sees decomposed on meta/GPU); 0 for the rest
``torch_cpu``   FLOP   the same on the CPU (autograd on), where nn.LSTM and the attention core run
                       fused kernels it cannot see: 0 (in eval under no_grad, nn.MultiheadAttention
                       and nn.TransformerEncoderLayer take a fast path it cannot see at all)
``fvcore``      MAC    fvcore FlopCountAnalysis ("flops" that are MACs)
``ptflops``     MAC    ptflops get_model_complexity_info, pytorch backend (its "MACs")
``thop``        MAC    thop.profile ("MACs")
``torchinfo``   MAC    torchinfo.summary "Mult-Adds"
``deepspeed``   FLOP   DeepSpeed flops profiler "flops" (2·MAC for linear algebra)
``calflops``    FLOP   calflops calculate_flops "FLOPs" (DeepSpeed's rules, copied)
==============  =====  ===============================================================

docs/peers.md has the per-layer-kind table, with the line of each tool's source that gives
the rule, and the zeros and double counts flagged.

A convention may say what it applies to (``Convention.needs``): the scaling papers' (kaplan,
chinchilla, megatron, palm) are counts of a transformer, refused for a model without an
attention layer or with products their rules do not count.  A tool's convention applies to
every model; when it counts nothing of a model that computes, the total 0 carries a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import sympy

from .cost import Cost
from .errors import SymcostError, nearest
from .layers.base import numel
from .sizes import as_expr

ZERO = sympy.Integer(0)


@dataclass(frozen=True)
class Layer:
    """What a convention sees of one layer application."""

    id: str
    op: str
    cost: Cost
    q: Mapping[str, Any]
    out: tuple
    ins: tuple
    origin: str | None = None   # the PyTorch call (from_torch), or None for a spec
    batched: bool = True        # False: computed from constants only (a positional table)

    @property
    def E_out(self):
        return numel(self.out)

    @property
    def E_in(self):
        return numel(self.ins[0]) if self.ins else ZERO

    def via(self, *calls: str) -> bool:
        """Whether the layer came from one of these PyTorch calls (a spec layer counts as the nn module)."""
        o = self.origin.rsplit("/", 1)[-1] if self.origin else None
        return (o in calls) if o is not None else any(c.startswith("nn.") for c in calls)

    @property
    def fused(self) -> bool:
        """A part of an expanded nn.TransformerEncoderLayer (its fast path in eval/no_grad)."""
        return bool(self.origin) and "nn.TransformerEncoderLayer/" in self.origin


@dataclass(frozen=True)
class Convention:
    name: str
    unit: str                        # "FLOP" or "MAC"
    doc: str
    rule: Callable[[Layer], Any]
    #: What the convention applies to: (layers -> the reason it does not, or None).  A paper's
    #: convention is a transformer's count; applied to another model it would be a wrong number.
    needs: Callable[[list], str | None] | None = None


@dataclass
class Counted:
    """The figure of a model under one convention: total and per layer."""

    convention: Convention
    total: Any
    rows: list = field(default_factory=list)   # (layer id, op, value)
    note: str = ""                             # why the total is 0 when the model computes


LINALG = ("linear", "matmul", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d")
ATTENTION = ("multihead_attention", "scaled_dot_product_attention")
RECURRENT = ("rnn", "lstm", "gru")
CONV = ("conv1d", "conv2d", "conv3d")
CONVT = ("conv_transpose1d", "conv_transpose2d")
POOLS = ("maxpool1d", "maxpool2d", "avgpool1d", "avgpool2d")


def _conv_outputs(x: Layer):
    return x.E_out  # K·M1·N1


def _bias_out(x: Layer):
    return x.q.get("b", 0) * x.E_out


def _mha_projection_macs(x: Layer):
    return x.cost.macs - 2 * x.q["S"] * x.q["E"]


def _adaptive(x: Layer) -> bool:
    return bool(x.origin) and "Adaptive" in x.origin


# -- torch.utils.flop_counter.FlopCounterMode ------------------------------------------


def _torch(x: Layer):
    if x.op in LINALG + ATTENTION + RECURRENT:
        return 2 * x.cost.macs
    return ZERO


def _torch_cpu(x: Layer):
    """FlopCounterMode on the CPU with autograd on (measured, torch 2.13): the fused CPU kernels
    of aten::lstm and of scaled_dot_product_attention have no flop formula."""
    if x.op in ("lstm", "scaled_dot_product_attention"):
        return ZERO
    if x.op == "multihead_attention":
        return 2 * _mha_projection_macs(x)  # need_weights=False: the core runs in the CPU sdpa kernel
    return _torch(x)


# -- fvcore -------------------------------------------------------------------------------


def _fvcore(x: Layer):
    if x.op in LINALG:
        return x.cost.macs          # addmm/linear/matmul/bmm: MACs; conv (transposed: input positions)
    if x.op == "multihead_attention":
        return _mha_projection_macs(x)  # the core runs in aten::scaled_dot_product_attention: ignored
    if x.op.startswith("batchnorm"):
        return x.E_out * (1 + x.q["g"])  # eval: 1 per element, 2 with affine
    if x.op == "layernorm":
        return x.E_out * (5 if x.q["g"] else 4)
    if x.op.startswith("avgpool") and _adaptive(x):
        return x.E_in               # adaptive_avg_pool2d: elementwise_flop_counter(1, 0)
    return ZERO                     # relu, pools, softmax, add, sdpa, lstm/gru/rnn: "unsupported op"


# -- ptflops (pytorch backend) -----------------------------------------------------------


def _rnn_gate_extra(op, H):
    return {"rnn": H, "gru": 7 * H, "lstm": 10 * H}[op]


def _ptflops_rnn(x: Layer):
    q = x.q
    T, I, H, L, D, b, G = (q[k] for k in ("T", "I", "H", "L", "D", "b", "G"))
    per_step = ZERO
    for layer in range(int(L)) if not as_expr(L).free_symbols else ():
        n = I if layer == 0 else D * H
        per_step += G * H * n + G * H * H + _rnn_gate_extra(x.op, H) + b * 2 * G * H
    if as_expr(L).free_symbols:
        per_step = (G * H * I + G * H * H + _rnn_gate_extra(x.op, H) + b * 2 * G * H
                    + (L - 1) * (G * H * D * H + G * H * H + _rnn_gate_extra(x.op, H) + b * 2 * G * H))
    return T * D * per_step


def _ptflops(x: Layer):
    q = x.q
    if x.op == "linear":
        return x.cost.macs + q["b"] * q["R"] * q["k"]
    if x.op in CONV + CONVT:
        return x.cost.macs + _bias_out(x)
    if x.op == "matmul":
        return x.cost.macs if x.via("torch.matmul", "Tensor.matmul", "torch.bmm", "Tensor.bmm", "torch.mm") else ZERO
    if x.op == "relu":
        if x.via("nn.ReLU"):
            return 2 * x.E_out      # the module hook, and the patched F.relu it calls
        return x.E_out if x.via("F.relu") else ZERO
    if x.op == "gelu":
        if x.via("nn.GELU"):
            return 2 * x.E_out      # F.gelu inside the module: attributed to it, and summed again
        return x.E_out if x.via("F.gelu") else ZERO
    if x.op == "silu":              # nn.SiLU has no hook; the patched F.silu it calls counts numel
        return x.E_out if x.via("nn.SiLU", "F.silu") else ZERO
    if x.op == "softmax":
        if x.via("nn.Softmax"):
            return 2 * x.E_out
        return x.E_out if x.via("F.softmax") else ZERO
    if x.op in POOLS:
        if x.origin and x.origin.startswith("F."):
            return x.E_in
        return 2 * x.E_in           # module hook + patched F.*pool* inside the module
    if x.op.startswith("batchnorm"):
        return x.E_out * (1 + q["g"])
    if x.op == "layernorm":
        return x.E_out              # bn hook: LayerNorm has no `affine` attribute
    if x.op in ("add", "mul"):
        return x.E_out if x.via("torch.add", "Tensor.add", "torch.mul", "Tensor.mul") else ZERO
    if x.op in RECURRENT:
        return _ptflops_rnn(x)
    if x.op == "multihead_attention":
        Tq, Tkv, E, Ek, Ev, h, d, b = (q[k] for k in ("Tq", "Tkv", "E", "Ek", "Ev", "h", "d", "b"))
        return (Tq * E + Tq * E * E + Tkv * Ek * Ek + Tkv * Ev * Ev + b * (Tq + 2 * Tkv) * E
                + h * (Tq * Tkv * d + Tq * Tkv + Tq * Tkv * Ev / h) + Tq * Ev * (Ev + 1))
    return ZERO


# -- thop ------------------------------------------------------------------------------------


def _thop_cell(op, n, H, b):
    if op == "rnn":
        return H * (n + H) + H + b * 2 * H
    state = (n + H) * H + H + b * 2 * H
    if op == "gru":
        return 3 * state + H + 3 * H
    return 4 * state + 3 * H + H


def _thop(x: Layer):
    q = x.q
    if x.fused:
        return ZERO                 # eval + no_grad: the fast path never calls the sub-modules
    if x.op == "linear" or x.op in CONV:
        return x.cost.macs if x.via("nn.Linear", *(f"nn.Conv{i}d" for i in (1, 2, 3))) else ZERO
    if x.op in CONVT:
        kernel = x.cost.macs / (q["C"] * q["K"] / q["G"]) / numel(x.ins[0][1:])
        return x.E_out * sympy.floor(q["C"] / q["G"]) * kernel  # output positions: over-count
    if x.op.startswith("batchnorm"):
        return 2 * x.E_out * (1 + q["g"])
    if x.op == "layernorm":
        return 2 * x.E_out * (1 + q["g"])
    if x.op == "softmax":
        return q["V"] * (3 * q["n"] - 1) if x.via("nn.Softmax") else ZERO
    if x.op.startswith("avgpool"):
        if not x.via("nn.AvgPool1d", "nn.AvgPool2d", "nn.AdaptiveAvgPool1d", "nn.AdaptiveAvgPool2d"):
            return ZERO
        if _adaptive(x):
            return (x.E_in / x.E_out + 1) * x.E_out
        return x.E_out
    if x.op in RECURRENT:
        T, I, H, L, D, b = (q[k] for k in ("T", "I", "H", "L", "D", "b"))
        return T * D * (_thop_cell(x.op, I, H, b) + (L - 1) * _thop_cell(x.op, D * H, H, b))
    return ZERO                     # relu, maxpool, dropout (zero_ops); MHA, functions: no hook


# -- torchinfo -----------------------------------------------------------------------------------


def _torchinfo(x: Layer):
    q = x.q
    params = x.cost.params
    if x.op in CONV:
        return x.cost.macs + _bias_out(x)     # (weight + bias) × output positions
    if x.op in CONVT:
        return params * x.E_out / q["K"]       # × OUTPUT positions: the over-count
    if x.op in RECURRENT:
        return q["T"] * params                 # prod(output_size[:2]) × every weight and bias
    first = sympy.Integer(1) if x.batched else x.out[0]   # output_size[0]: the batch, if there is one
    if x.op == "linear":
        return first * (q["n"] * q["k"] + q["b"] * q["k"])  # the module's own weight, even when tied
    if x.op in ("layernorm", "rmsnorm", "embedding") or x.op.startswith("batchnorm"):
        return first * params                  # output_size[0] (the batch) × params: positions ignored
    return ZERO                                # MHA (tuple output), functions, parameter-free modules


# -- DeepSpeed / calflops ------------------------------------------------------------------------------


def _deepspeed(x: Layer):
    q = x.q
    if x.op == "linear":
        return 2 * x.cost.macs                 # F.linear: 2·MAC, the bias not counted
    if x.op in CONV:
        return 2 * x.cost.macs + _bias_out(x)
    if x.op in CONVT:
        G = q["G"]
        macs = x.cost.macs / G if G != 1 else x.cost.macs  # (K/G)//G filters per channel
        spatial = [k for k in ("M", "N", "L") if f"{k}1" in q]
        w = {"M": "W", "N": "H", "L": "R"}
        conv_like = sympy.Integer(1)
        for m in spatial:              # the bias over a *convolution's* output size, not the real one
            W = q[w[m]]
            conv_like *= sympy.floor((q[m] + 2 * q[f"P_{w[m]}"] - q[f"D_{w[m]}"] * (W - 1) - 1) / q[f"S_{w[m]}"]) + 1
        return 2 * macs + q["b"] * (q["K"] / G) * conv_like
    if x.op == "matmul":
        return 2 * x.cost.macs if x.via("torch.matmul", "Tensor.matmul", "torch.bmm", "Tensor.bmm",
                                        "torch.mm") else ZERO
    if x.op == "relu":
        return x.E_out if x.via("nn.ReLU", "F.relu") else ZERO
    if x.op == "gelu":
        return x.E_out if x.via("nn.GELU", "F.gelu") else ZERO
    if x.op == "silu":
        return x.E_out if x.via("nn.SiLU", "F.silu") else ZERO
    if x.op == "softmax":
        return x.E_out if x.via("nn.Softmax", "F.softmax") else ZERO
    if x.op in POOLS:
        return x.E_in
    if x.op.startswith("batchnorm"):
        return x.E_out * (1 + q["g"])
    if x.op == "layernorm":
        return x.E_out * (5 if q["g"] else 4)
    if x.op in ("add", "mul"):
        return x.E_out if x.via("torch.add", "Tensor.add", "torch.mul", "Tensor.mul") else ZERO
    if x.op in RECURRENT:
        T, I, H, L, D, b, G = (q[k] for k in ("T", "I", "H", "L", "D", "b", "G"))

        def layer(n):
            return (2 * G * H * n - G * H) + (2 * G * H * H - G * H) + _rnn_gate_extra(x.op, H) + b * 2 * G * H
        return T * D * (layer(I) + (L - 1) * layer(D * H))
    if x.op == "multihead_attention":
        return 2 * _mha_projection_macs(x)     # F.linear projections; the core (sdpa) is not patched
    return ZERO


CONVENTIONS: dict[str, Convention] = {c.name: c for c in (
    Convention("symcost", "FLOP", "the default contract: flops = sum of ops", lambda x: x.cost.flops),
    Convention("exact", "FLOP", "2k−1 per dot product (+1 per bias), every elementwise op and comparison",
               lambda x: x.cost.flops),
    Convention("macs", "MAC", "multiply-accumulates of linear algebra, biases excluded", lambda x: x.cost.macs),
    Convention("torch", "FLOP", "FlopCounterMode: 2·MAC of mm/bmm/addmm/conv/attention", _torch),
    Convention("torch_cpu", "FLOP", "FlopCounterMode on the CPU (nn.LSTM: 0)", _torch_cpu),
    Convention("fvcore", "MAC", "fvcore FlopCountAnalysis", _fvcore),
    Convention("ptflops", "MAC", "ptflops, pytorch backend", _ptflops),
    Convention("thop", "MAC", "thop.profile", _thop),
    Convention("torchinfo", "MAC", "torchinfo Mult-Adds", _torchinfo),
    Convention("deepspeed", "FLOP", "DeepSpeed flops profiler", _deepspeed),
    Convention("calflops", "FLOP", "calflops (DeepSpeed's rules)", _deepspeed),
)}

# The scaling papers' conventions (kaplan, chinchilla, megatron, palm): docs/transformers.md.
from .papers import ATTENTION as _PAPER_ATTENTION, PAPERS  # noqa: E402  (papers.py imports nothing from here)

#: Kinds whose products the papers' rules count (weights and attention cores); a layer of another
#: kind with MACs is compute they have no rule for.
PAPER_KINDS = ("linear", "embedding") + tuple(dict.fromkeys(ATTENTION + _PAPER_ATTENTION))


def _transformer(views: list) -> str | None:
    """Why a scaling paper's convention does not apply: no attention layer (it is the count of a
    transformer), or a layer with products its rules do not count (a convolution, an RNN)."""
    if not any(x.op in ATTENTION + _PAPER_ATTENTION for x in views):
        return "has no attention layer"
    other = [x for x in views if x.op not in PAPER_KINDS and x.cost.macs != 0]
    if other:
        shown = ", ".join(f"{x.id!r} ({x.op})" for x in other[:3]) + (", ..." if len(other) > 3 else "")
        return f"has products its rules do not count: layer {shown}"
    return None


CONVENTIONS.update({name: Convention(name, unit, doc, rule, needs=_transformer) for name, unit, doc, rule in PAPERS})


def get(name: str) -> Convention:
    try:
        return CONVENTIONS[name]
    except (KeyError, TypeError):
        raise SymcostError(f"unknown convention {name!r}" + nearest(str(name), CONVENTIONS)
                           + f"; known: {', '.join(CONVENTIONS)}") from None


def layers(analysis, origins: Mapping[str, str] | None = None, prefix: str = ""):
    """The :class:`Layer` views of an analysis, blocks expanded (with their repeat count)."""
    origins = origins or getattr(analysis.model, "origins", None) or {}
    batchless = getattr(analysis.model, "batchless", ())
    shapes = dict(analysis.input_shapes)
    for n in analysis.nodes:
        shapes[n.id] = n.shape
    for n in analysis.nodes:
        if n.children is not None:
            for rep, inner in layers(n.children, origins, prefix + n.id + "."):
                yield n.repeat * rep, inner
            continue
        node = analysis.model.node(n.id)
        ins = tuple(shapes[i] for i in node.inputs)
        yield sympy.Integer(1), Layer(prefix + n.id, n.op, n.cost, n.quantities, tuple(n.shape), ins,
                                      origins.get(n.id), n.id not in batchless)


def count(report, name: str, origins: Mapping[str, str] | None = None) -> Counted:
    """The model of ``report`` counted under the convention ``name`` (× the report's batch)."""
    conv = get(name)
    views = list(layers(report.analysis, origins))
    why = conv.needs([layer for _, layer in views]) if conv.needs else None
    if why:
        raise SymcostError(f"the {name!r} convention counts a transformer ({conv.doc.split(':')[0]}): its "
                           f"products (linear layers, attention) and attention cores; {report.name} {why}; "
                           f"count it with --convention symcost, macs or a tool's name")
    rows = []
    for rep, layer in views:
        value = rep * as_expr(conv.rule(layer)) * report.batch
        if report.values:
            value = value.xreplace(report.values)
        rows.append((layer.id, layer.op, value))
    total = sympy.Add(*(v for _, _, v in rows)) if rows else ZERO
    total = sympy.expand(total) if total.free_symbols else total
    return Counted(conv, total, rows, _zero_note(report, conv, total, views))


def _zero_note(report, conv: Convention, total, views) -> str:
    """A tool's convention may well total 0 (fvcore has no rule for nn.LSTM): that is the tool's
    answer, but never a silent one -- the note says which layers computed and that they were not counted."""
    if total != 0 or (report.macs == 0 and report.flops == 0):
        return ""
    busy = sorted({x.op for _, x in views if x.cost.macs != 0 or x.cost.flops != 0})
    from .render import number

    return (f"the total is 0: {conv.name} counts nothing of this model's {', '.join(busy)} layers (the tool "
            f"reports 0 for them, docs/peers.md); symcost counts {number(report.macs)} MACs, {number(report.flops)} FLOPs")


def table(report, name: str, origins: Mapping[str, str] | None = None) -> str:
    """A plain-text per-layer table of ``report`` under the convention ``name``."""
    from .render import number
    from .render.table import MIN_WIDTH, grid, terminal_width, wrap

    counted = count(report, name, origins)
    head = f"{report.name} under the {name!r} convention ({counted.convention.doc}; unit: {counted.convention.unit})"
    limit = max(MIN_WIDTH, terminal_width())  # fitted to the terminal, as the cost table is
    rows = [(lid, op, number(v)) for lid, op, v in counted.rows] + [("total", "", number(counted.total))]
    lines = [*wrap(head, limit), *grid(("layer", "op", counted.convention.unit), rows, limit, right=(2,))]
    if counted.note:
        lines += wrap(f"note: {counted.note}", limit)
    return "\n".join(lines) + "\n"

