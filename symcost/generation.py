"""Autoregressive generation: T_new tokens after a prompt of T_p, with and without a KV cache.

Notation: T the model's token count (the size named by ``tokens``), T_p the prompt, T_new the
generated tokens, P the positions already in the key/value cache, s the step (1 … T_new).
Each step is one forward pass and yields one token, so generation takes T_new sequential
steps whatever the architecture.

Without a cache, step s runs the whole model on the L_s = T_p + s − 1 tokens so far:

    total = Σ_{s=1}^{T_new} cost(T = T_p + s − 1)            (attention core: Θ(T³) in all)

With a cache, step 1 runs the model on the prompt (the prefill, which fills the cache), and
step s ≥ 2 runs it on one token, the one generated at step s − 1, at position
P = T_p + s − 2, whose queries attend to the P cached keys and its own:

    total = cost(T = T_p) + Σ_{s=2}^{T_new} step(P = T_p + s − 2)   (attention core: Θ(T²))

``step(P)`` is symcost's own count of the model rewritten for one decoding step: its token
input has length 1, every causal self-attention (``multihead_attention`` with
``is_causal: true``) becomes ``cached_self_attention`` with ``past_length: P`` (only the
new token is projected), every causal ``scaled_dot_product_attention`` gets
``past_length: P`` (the projections before it already see the new token only), every
``positional_embedding`` reads position P.  Layers that see one position at a time (linear,
layernorm, GELU, embeddings) cost as at T = 1; a recurrent layer carries its state, so its
step also costs as at T = 1.

KV cache: every cached attention layer keeps the keys and values of the positions it has
seen: 2·L·E elements for L positions in a ``cached_self_attention`` (2 · n_layer · L · d_model
for GPT-2), B_k·L·d + B_v·L·d_v in a ``scaled_dot_product_attention`` whose keys have B_k
heads of d and values B_v heads of d_v (multi-query attention, one shared head: 2 · n_layer ·
L · d_head for PaLM); × bytes of the dtype × batch.  At the end of generation
L = T_p + T_new − 1 (the last token is never fed back).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy

from .cost import Cost, tidy
from .errors import SpecError
from .graph import Model
from .sizes import symbol, to_size
from .substitution import Rename

CAUSAL_SELF = "multihead_attention"
SDPA = "scaled_dot_product_attention"


def attention_core_macs(analysis) -> sympy.Expr:
    """MACs of the attention cores (scores Q·Kᵀ and the weighted sum of the values) of an
    analysis, blocks and repeats included: 2·S·E per (cached) multi-head attention, S query-key
    pairs; B·S·(d + d_v) per scaled_dot_product_attention."""
    parts = []
    for n in analysis.nodes:
        if n.children is not None:
            parts.append(n.repeat * attention_core_macs(n.children))
        elif n.op in ("multihead_attention", "cached_self_attention"):
            parts.append(2 * n.quantities["S"] * n.quantities["E"])
        elif n.op == "scaled_dot_product_attention":
            q = n.quantities
            parts.append(q["B"] * q["S"] * (q["d"] + q["dv"]))
    return sympy.Add(*parts)


def kv_cache_elements(analysis) -> sympy.Expr:
    """Keys and values held by the cached attention layers of a decoding step (each layer's
    ``cache`` quantity: 2·(P + T)·E, or B_k·(P + T)·d + B_v·(P + T)·d_v)."""
    parts = []
    for n in analysis.nodes:
        if n.children is not None:
            parts.append(n.repeat * kv_cache_elements(n.children))
        elif "cache" in n.quantities:
            parts.append(n.quantities["cache"])
    return sympy.Add(*parts)


def _arg(value, subs):
    if isinstance(value, sympy.Basic):
        return value.xreplace(subs)
    if isinstance(value, tuple):
        return tuple(_arg(v, subs) for v in value)
    return value


def decode_step_model(model: Model, past: sympy.Expr, tokens: sympy.Symbol) -> Model:
    """``model`` rewritten for one decoding step with a KV cache of ``past`` positions: the
    token count ``tokens`` is 1, causal self-attention reads the cache (see the module doc)."""
    subs = {tokens: sympy.Integer(1)}
    new = Model(model.name, dims=model.dims, batch=model.batch, defaults=model.defaults)
    for name, block in model.blocks.items():
        new.add_block(name, decode_step_model(block, past, tokens))
    for name, shape in model.inputs.items():
        new.add_input(name, None if shape is None else [_arg(d, subs) for d in shape])
    for node_id in model.node_ids:
        node = model.node(node_id)
        args = {k: _arg(v, subs) for k, v in node.args.items()}
        op = node.op
        if op == SDPA and node.kind is not None:
            if not args.get("is_causal"):
                raise SpecError(f"layer {node_id!r}: autoregressive generation needs causal attention "
                                f"(is_causal: true); a non-causal scaled_dot_product_attention sees tokens "
                                f"not generated yet")
            args["past_length"] = args.get("past_length", 0) + past
        if op == CAUSAL_SELF and node.kind is not None and not (args.get("is_causal") and len(node.inputs) == 1):
            raise SpecError(f"layer {node_id!r}: autoregressive generation needs causal self-attention "
                            f"(is_causal: true, one input); a bidirectional or cross-attention layer sees "
                            f"tokens not generated yet")
        if op == CAUSAL_SELF and node.kind is not None:
            if args.get("kdim") is not None or args.get("vdim") is not None:
                raise SpecError(f"layer {node_id!r}: generation needs self-attention without kdim/vdim")
            op = "cached_self_attention"
            args = {"num_heads": args["num_heads"], "bias": args["bias"], "past_length": past,
                    "count_masked": args["count_masked"]}
        elif op == "positional_embedding":
            args["past_length"] = args.get("past_length", 0) + past
        new.add(op, *node.inputs, id=node_id, repeat=_arg(node.repeat, subs), **args)
    if model._outputs is not None:
        new.set_outputs(model._outputs)
    return new


@dataclass(frozen=True)
class Generation:
    """Costs of generating ``new`` tokens after ``prompt`` (expressions; the report's batch)."""

    name: str
    kv_cache: bool
    prompt: sympy.Expr
    new: sympy.Expr
    bytes_per_element: int
    batch: sympy.Expr
    prefill: Cost                  # step 1 with a cache: the model on the prompt
    step: Cost                     # one cached step, as a function of the symbol ``past``
    past: sympy.Symbol
    full: Cost                     # one uncached step, as a function of the symbol ``length``
    length: sympy.Symbol
    total: Cost                    # all T_new steps
    attention_macs: sympy.Expr     # attention cores over all steps
    kv_cache_bytes: sympy.Expr     # at the end of generation (0 without a cache)
    steps: sympy.Expr              # sequential forward passes: T_new

    def step_cost(self, s: Any) -> Cost:
        """The cost of step ``s`` (1 … T_new)."""
        s = to_size(s, "step")
        if not self.kv_cache:
            return self.full.subs({self.length: self.prompt + s - 1})
        if s == 1:
            return self.prefill
        return self.step.subs({self.past: self.prompt + s - 2})

    def to_dict(self) -> dict[str, Any]:
        from .render import jsonable

        return {
            "model": self.name, "kv_cache": self.kv_cache, "prompt": jsonable(self.prompt),
            "new": jsonable(self.new), "batch": jsonable(self.batch),
            "steps": jsonable(self.steps),
            "total": {k: jsonable(v) for k, v in self.total.as_dict().items() if k != "ops"},
            "attention_macs": jsonable(self.attention_macs),
            "kv_cache_bytes": jsonable(self.kv_cache_bytes),
            "per_step": {k: jsonable(getattr(self.step if self.kv_cache else self.full, k))
                         for k in ("macs", "flops")},
            "per_step_in": jsonable(self.past if self.kv_cache else self.length),
        }

    def table(self) -> str:
        from .render import number as text

        per = self.step if self.kv_cache else self.full
        var = self.past if self.kv_cache else self.length
        rows = [
            ("sequential steps", self.steps),
            ("MACs", self.total.macs), ("FLOPs", self.total.flops),
            ("attention-core MACs", self.attention_macs),
            (f"MACs of one step ({var})", per.macs), (f"FLOPs of one step ({var})", per.flops),
            ("KV cache (bytes, end)", self.kv_cache_bytes),
        ]
        if self.kv_cache:
            rows.insert(1, ("prefill MACs", self.prefill.macs))
        width = max(len(r[0]) for r in rows)
        head = (f"{self.name}  generation of {text(self.new)} tokens after {text(self.prompt)}, "
                + ("with a KV cache" if self.kv_cache else "without a cache, every step recomputed")
                + f", batch {text(self.batch)}")
        return head + "\n" + "\n".join(f"{k:<{width}}  {text(v)}" for k, v in rows) + "\n"


def _sum(cost: Cost, var, lo, hi) -> Cost:
    s = sympy.Dummy("s", integer=True, positive=True)
    return cost.map(lambda e: tidy(sympy.expand(sympy.summation(sympy.expand(e.xreplace({var: s})), (s, lo, hi)))))


def generation(model: Model, *, prompt: Any = "T_p", new: Any = "T_new", kv_cache: bool = True,
               values: dict | None = None, batch: Any = None, dtype: str = "fp32", tokens: str = "T") -> Generation:
    """Generation of ``new`` tokens after ``prompt`` by ``model`` (sizes substituted from ``values``)."""
    T = symbol(tokens)
    Tp, Tn = to_size(prompt, "prompt"), to_size(new, "new")
    past, length = symbol("P_past"), symbol("L_seq")
    values = dict(values or {})
    if tokens in values:
        raise SpecError(f"{tokens} is set by the generation (the prompt and the tokens generated so far); "
                        f"give the prompt and the new tokens instead")
    report = model.cost(batch=batch, dtype=dtype)
    if tokens not in report.known_names():
        raise SpecError(f"the model has no token count {tokens!r}; its sizes: {', '.join(sorted(report.known_names()))}")
    full = report.subs({**values, tokens: length})
    full_cost = full.total
    core_full = attention_core_macs(full.analysis).xreplace(full.values)
    b = full.batch.xreplace(full.values)
    if not kv_cache:
        total = _sum(full_cost, length, Tp, Tp + Tn - 1)
        core = _sum(Cost(macs=b * core_full), length, Tp, Tp + Tn - 1).macs
        return Generation(report.name, False, Tp, Tn, full.bytes_per_element, b, Cost(), Cost(), past,
                          full_cost, length, total, core, sympy.Integer(0), Tn)
    step_model = decode_step_model(model, past, T)
    step = step_model.cost(batch=batch, dtype=dtype)
    keep = step.known_names() | {v.name for v in values.values() if isinstance(v, Rename)}  # --rename X=Y --set Y=2
    step = step.subs({k: v for k, v in values.items() if k in keep}) if values else step
    step_cost = step.total
    prefill = full_cost.subs({length: Tp})
    total = prefill + _sum(step_cost, past, Tp, Tp + Tn - 2)
    core_step = attention_core_macs(step.analysis).xreplace(step.values)
    core = tidy(sympy.expand(b * core_full.xreplace({length: Tp})
                             + _sum(Cost(macs=b * core_step), past, Tp, Tp + Tn - 2).macs))
    cache = kv_cache_elements(step.analysis).xreplace(step.values).xreplace({past: Tp + Tn - 2})
    cache_bytes = tidy(sympy.expand(step.bytes_per_element * b * cache))
    return Generation(report.name, True, Tp, Tn, step.bytes_per_element, b, prefill, step_cost, past,
                      full_cost, length, total, core, cache_bytes, Tn)
