"""Attention: ``multihead_attention`` (nn.MultiheadAttention) and the parameter-free
``scaled_dot_product_attention`` (F.scaled_dot_product_attention).

Notation: queries T_q × E (``Tq``), keys/values T_kv (``Tkv``) of k_dim / v_dim
features (``Ek``, ``Ev``), h heads (num_heads) of d = E/h features each.
The attention core, per head, is softmax(Q Kᵀ/√d) V: two dot-product stages
of T_q·T_kv dot products (the seed's D×N×M per stage), so over all heads

    macs(core) = T_q·T_kv·E (scores) + T_q·T_kv·E (weighted sum of the values)

Operations, exactly as the naive loops of ``tests/bruteforce.py`` (a dot
product of n terms: n mul + n − 1 add; a bias: 1 add), per head and query row:

    scores   T_kv dot products of d terms, then × (1/√d): 1 mul per score
    softmax  over T_kv: T_kv − 1 cmp (max), T_kv add (subtract it), T_kv exp,
             T_kv − 1 add (sum), T_kv div
    values   d_v dot products of T_kv terms

Masking (``is_causal``): PyTorch computes the full score matrix and masks it,
so by default the count is the full one (the mask is a select, not
arithmetic, and is not counted).  ``count_masked: false`` counts only the
unmasked (causal) half instead -- T(T + 1)/2 query-key pairs for T_q = T_kv = T
-- the work a kernel that skips masked blocks would do.

Activations: every tensor the forward pass materialises -- for
``multihead_attention`` Q (T_q·E), K and V (T_kv·E each), the attention
weights (h·T_q·T_kv; the scores are overwritten by the softmax), the heads'
concatenated output (T_q·E) and the output (T_q·E); for
``scaled_dot_product_attention`` the weights (B·T_q·T_kv) and the output
(B·T_q·d_v).  A fused kernel need not materialise the weights; this count is the
unfused (math) path, which is where attention's T² memory comes from.
"""

from __future__ import annotations

import sympy

from ..cost import Cost, ops
from ..errors import ShapeError, SpecError
from .base import (Arg, LayerKind, Quantities, broadcast, fmt_shape, numel, register, require_divisible,
                   require_positive, require_rank, same)


def _core(S, Q, d, dv, heads, fused: bool) -> dict:
    """Operations of the attention core: S query-key pairs (per head), Q query rows (per head),
    head dims d (scores) and dv (values), ``heads`` independent heads (or batch entries)."""
    counts = {
        "mul": heads * S,                                 # scaling, 1 per score
        "cmp": heads * (S - Q),                           # running max per row
        "add": heads * (2 * S - Q),                       # x − max, running sum
        "exp": heads * S,
        "div": heads * S,
    }
    if fused:
        counts["fma"] = heads * S * (d + dv)
    else:
        counts["mul"] += heads * S * (d + dv)
        counts["add"] += heads * (S * (d - 1) + dv * (S - Q))
    return counts


def _pairs(a, Tq, Tkv, what: str, past=0) -> sympy.Expr:
    """Query-key pairs that are counted: all of them, or the causal half; ``past`` cached keys
    come before the T_kv new ones (query i, at position P + i, sees keys 0 .. P + i)."""
    if not a.is_causal or a.count_masked:
        return Tq * (past + Tkv)
    if not same(Tq, Tkv):
        raise ShapeError(
            f"{what}: count_masked false needs as many queries as keys (the causal half is T(T + 1)/2), "
            f"got {Tq} and {Tkv}"
        )
    return Tq * past + Tq * (Tq + 1) / 2


def _combine(*parts: dict) -> dict:
    out: dict = {}
    for p in parts:
        for k, v in p.items():
            out[k] = out.get(k, 0) + v
    return out


CAUSAL_ARGS = (
    Arg("is_causal", "bool", False, doc="a causal mask (query i sees keys 0..i)"),
    Arg("count_masked", "bool", True,
        doc="with is_causal: count the masked scores too (PyTorch computes them), or only the causal half"),
)


@register
class MultiheadAttention(LayerKind):
    """nn.MultiheadAttention on unbatched inputs: one input [T, E] (self-attention), two
    [query, context] (cross-attention: key = value = context), or three [query, key, value].

    params = E·E + E·E_k + E·E_v + E·E + b·4E    (q, k, v, out projections, with biases)
             (nn.MultiheadAttention's in_proj_weight is 3E·E when E_k = E_v = E: the same count)
    macs   = T_q·E·E + T_kv·E·E_k + T_kv·E·E_v + T_q·E·E    (projections)
             + 2·T_q·T_kv·E                                 (scores, weighted sum)
    ops    : projections as ``linear``; core per head and query row as in the module docstring.
    k_dim and v_dim default to the key and value inputs' last dimension (checked when given).
    """

    name = "multihead_attention"
    family = "attention"
    min_inputs, max_inputs = 1, 3
    takes = ("one to three, each [T, features]: x (self-attention), [query, context] or "
             "[query, key, value] (rank 2)")
    args = (
        Arg("num_heads", "size", doc="h: heads, each of d = E/h features (E divisible by h)"),
        Arg("bias", "bool", True, doc="biases of the q, k, v and output projections (4E parameters)"),
        Arg("kdim", "size", None, doc="E_k: the key input's features; checked against it when given"),
        Arg("vdim", "size", None, doc="E_v: the value input's features; checked against it when given"),
        Arg("embed_dim", "size", None, doc="E: the query's features; checked against its last dimension when given"),
        Arg("dropout", "prob", 0, doc="on the attention weights in training; the identity at inference"),
        Arg("add_bias_kv", "bool", False, doc="a learned bias row appended to the keys and values: not supported"),
        Arg("add_zero_attn", "bool", False, doc="a zero row appended to the keys and values: not supported"),
        Arg("batch_first", "bool", False, doc="the batch dim's place in PyTorch's batched inputs; no effect on one sample"),
    ) + CAUSAL_ARGS

    def quantities(self, a, inputs):
        if a.add_bias_kv or a.add_zero_attn:
            raise SpecError("add_bias_kv and add_zero_attn are not supported; leave them false")
        if len(inputs) == 1:
            query = key = value = inputs[0]
        elif len(inputs) == 2:
            query, (key) = inputs
            value = key
        else:
            query, key, value = inputs
        for what, s in (("query", query), ("key", key), ("value", value)):
            require_rank(s, 2, f"multihead_attention {what} (unbatched [T, features])")
        Tq, E = query
        Tkv, Ek = key
        Tv, Ev = value
        if not same(Tkv, Tv):
            raise ShapeError(f"multihead_attention: key {fmt_shape(key)} and value {fmt_shape(value)} differ in length")
        for given, actual, what in ((a.embed_dim, E, "embed_dim"), (a.kdim, Ek, "kdim"), (a.vdim, Ev, "vdim")):
            if given is not None and not same(given, actual):
                raise ShapeError(f"multihead_attention expects {what} {given}, but the input has {actual}")
        h = a.num_heads
        require_divisible(E, h, "multihead_attention: embed_dim must be divisible by num_heads")
        d = E / h
        q = Quantities(
            Tq=Tq, Tkv=Tkv, E=E, Ek=Ek, Ev=Ev, h=h, d=d, b=int(a.bias),
            S=_pairs(a, Tq, Tkv, "multihead_attention"),
        )
        if d.free_symbols:  # checked when sizes are substituted
            require_positive(q, 1 - (d - sympy.floor(d)),
                             "1 − the fractional part of embed_dim/num_heads (num_heads must divide embed_dim)")
        return q

    def shape(self, q):
        return (q["Tq"], q["E"])

    def cost(self, q):
        Tq, Tkv, E, Ek, Ev, h, d, b, S = (q[k] for k in ("Tq", "Tkv", "E", "Ek", "Ev", "h", "d", "b", "S"))
        # projections: (rows, inputs per dot product), E outputs each, bias b
        projections = ((Tq, E), (Tkv, Ek), (Tkv, Ev), (Tq, E))
        plain = _combine(
            *({"mul": R * E * n, "add": R * E * (n - 1) + b * R * E} for R, n in projections),
            _core(S, Tq, d, d, h, False),
        )
        fused = _combine(
            *({"fma": R * E * n, "add": b * R * E} for R, n in projections),
            _core(S, Tq, d, d, h, True),
        )
        return Cost(
            params=2 * E * E + E * Ek + E * Ev + 4 * b * E,
            activations=3 * Tq * E + 2 * Tkv * E + h * Tq * Tkv,
            macs=sympy.Add(*(R * E * n for R, n in projections)) + 2 * S * E,
            ops=ops(**plain),
            fma_ops=sympy.Add(*fused.values()),
        )


@register
class ScaledDotProductAttention(LayerKind):
    """softmax(Q Kᵀ/√d) V on q [..., T_q, d], k [..., T_kv, d], v [..., T_kv, d_v] (leading dims
    broadcast, B = their product); no parameters.

    macs = B·T_q·T_kv·(d + d_v);  ops per batch entry and query row as in the module docstring.

    ``past_length: P`` is a decoding step with a key/value cache: P cached keys and values come
    before k and v (the new ones), so T_kv is P + the new keys, and with ``is_causal`` query i sits
    at position P + i (it sees keys 0 .. P + i).  The cache then holds B_k·(P + T_kv)·d +
    B_v·(P + T_kv)·d_v elements, B_k and B_v the products of k's and v's own leading dims (one
    shared head, as in multi-query attention, makes B_k = 1).
    """

    name = "scaled_dot_product_attention"
    family = "attention"
    min_inputs = max_inputs = 3
    takes = "three: q [..., T_q, d], k [..., T_kv, d], v [..., T_kv, d_v], leading dims broadcast (rank ≥ 2)"
    args = (Arg("dropout_p", "prob", 0, doc="dropout on the attention weights in training; the identity at inference"),) + CAUSAL_ARGS + (
        Arg("past_length", "size0", 0, doc="cached positions before the new keys and values (decoding)"),
    )

    def quantities(self, a, inputs):
        q_, k_, v_ = (tuple(s) for s in inputs)
        for what, s in (("q", q_), ("k", k_), ("v", v_)):
            if len(s) < 2:
                raise ShapeError(f"scaled_dot_product_attention: {what} must be [..., T, features], got {fmt_shape(s)}")
        Tq, d = q_[-2:]
        Tkv, dk = k_[-2:]
        Tv, dv = v_[-2:]
        if not same(d, dk):
            raise ShapeError(f"scaled_dot_product_attention: q {fmt_shape(q_)} and k {fmt_shape(k_)} differ in features")
        if not same(Tkv, Tv):
            raise ShapeError(f"scaled_dot_product_attention: k {fmt_shape(k_)} and v {fmt_shape(v_)} differ in length")
        lead = broadcast([q_[:-2], k_[:-2], v_[:-2]], "scaled_dot_product_attention")
        P = a.past_length
        q = Quantities(
            lead=lead, B=numel(lead), Tq=Tq, Tkv=P + Tkv, d=d, dv=dv,
            S=_pairs(a, Tq, Tkv, "scaled_dot_product_attention", P),
        )
        if P != 0:  # a decoding step: the cache (kept out of the quantities otherwise)
            q["P"] = P
            q["cache"] = (P + Tkv) * (numel(k_[:-2]) * d + numel(v_[:-2]) * dv)
        return q

    def shape(self, q):
        return q["lead"] + (q["Tq"], q["dv"])

    def cost(self, q):
        B, Tq, Tkv, d, dv, S = (q[k] for k in ("B", "Tq", "Tkv", "d", "dv", "S"))
        plain = _core(S, Tq, d, dv, B, False)
        fused = _core(S, Tq, d, dv, B, True)
        return Cost(
            activations=B * Tq * Tkv + B * Tq * dv,
            macs=B * S * (d + dv),
            ops=ops(**plain),
            fma_ops=sympy.Add(*fused.values()),
        )
