"""Language-model layers: ``positional_embedding`` (learned positions) and
``cached_self_attention`` (causal self-attention with a key/value cache).

Notation: T tokens processed by this application (the new tokens), P positions
already in the key/value cache (``past_length``; 0 for a full forward pass),
n_ctx positions in the position table, E = d_model features, h heads of
d = E/h features.

``positional_embedding`` is GPT-2's ``wpe``: a table of n_ctx × E learned
vectors, looked up at the positions P, P+1, …, P+T−1 of the input tokens.
Its input is the token sequence (only its length T is used).

    params = n_ctx·E;  ops 0 (a lookup);  activations T·E;  P + T ≤ n_ctx

``cached_self_attention`` is ``multihead_attention`` with one input and
``is_causal: true``, when the keys and values of the P earlier positions are
kept from earlier steps (Hugging Face's ``past_key_values``): only the T new
tokens are projected, and their queries attend to P + T keys.

    params = 4·E² + 4·b·E
    macs   = 4·T·E²                   (q, k, v of the new tokens; output projection)
             + 2·S·E                  (scores and weighted sum; S query-key pairs)
    S      = T·(P + T)                (count_masked true: the T × (P+T) score matrix PyTorch computes)
           = T·P + T·(T + 1)/2        (count_masked false: the causal half only)

With P = 0 it is exactly ``multihead_attention(is_causal=true)`` on [T, E];
:mod:`symcost.generation` substitutes it for that layer to cost one decoding
step with a KV cache.  The cache itself (2·(P + T)·E elements: keys and
values) is memory the generation report counts, not an activation of this
layer.
"""

from __future__ import annotations

import sympy

from ..cost import Cost, ops
from ..errors import ShapeError
from .attention import _combine, _core
from .base import Arg, LayerKind, Quantities, register, require_divisible, require_positive, require_rank


@register
class PositionalEmbedding(LayerKind):
    """positional_embedding: learned positions, a table of n_ctx × E (GPT-2's wpe, BERT's
    position_embeddings), looked up for the T positions of its input sequence.

    params = n_ctx·E;  activations T·E;  ops 0;  condition P + T ≤ n_ctx (checked when concrete)
    """

    name = "positional_embedding"
    family = "transformer"
    takes = "tokens [T, ...]: only the length T is used (rank ≥ 1)"
    args = (
        Arg("num_embeddings", "size", doc="n_ctx: the number of positions in the table"),
        Arg("embedding_dim", "size", doc="E: size of each position vector (d_model)"),
        Arg("past_length", "size0", 0, doc="positions already processed (a decoding step): positions start here"),
    )

    def quantities(self, a, inputs):
        (x,) = inputs
        if not x:
            raise ShapeError("positional_embedding needs a sequence input [T] (or [T, ...]), got a scalar")
        T, n_ctx, P = x[0], a.num_embeddings, a.past_length
        q = Quantities(T=T, n_ctx=n_ctx, E=a.embedding_dim, P=P)
        room = n_ctx - P - T + 1  # >= 1  <=>  P + T <= n_ctx
        if room.free_symbols:
            require_positive(q, room, "n_ctx − past_length − T + 1 (the sequence must fit the position table)")
        elif room < 1:
            raise ShapeError(f"positional_embedding: the sequence reaches position {P + T} but the table has "
                             f"num_embeddings {n_ctx} positions (T ≤ n_ctx needed)")
        return q

    def shape(self, q):
        return (q["T"], q["E"])

    def cost(self, q):
        return Cost(params=q["n_ctx"] * q["E"], activations=q["T"] * q["E"])

    def weight_shape(self, q):
        return (q["n_ctx"], q["E"])


@register
class CachedSelfAttention(LayerKind):
    """cached_self_attention: causal multi-head self-attention on T new tokens [T, E] with P
    earlier positions' keys and values in a cache.

    params = 4E² + 4bE;  macs = 4·T·E² + 2·S·E,  S = T·(P + T) (count_masked) or T·P + T(T+1)/2;
    ops as ``multihead_attention`` (projections as ``linear``, the core per head and query row);
    activations 5·T·E + h·T·(P + T) (Q, K, V, concatenated heads, output; attention weights).
    """

    name = "cached_self_attention"
    family = "transformer"
    takes = "x [T, E]: the T new tokens (rank 2)"
    args = (
        Arg("num_heads", "size", doc="h: heads, each of d = E/h features (E divisible by h)"),
        Arg("bias", "bool", True, doc="biases of the q, k, v and output projections (4E parameters)"),
        Arg("past_length", "size0", 0, doc="positions whose keys and values are in the cache"),
        Arg("count_masked", "bool", True,
            doc="count the masked scores too (PyTorch computes them), or only the causal half"),
    )

    def quantities(self, a, inputs):
        (x,) = inputs
        require_rank(x, 2, "cached_self_attention (unbatched [T, E])")
        T, E = x
        h, P = a.num_heads, a.past_length
        require_divisible(E, h, "cached_self_attention: the width must be divisible by num_heads")
        S = T * (P + T) if a.count_masked else T * P + T * (T + 1) / 2
        return Quantities(T=T, E=E, h=h, d=E / h, P=P, Tkv=P + T, b=int(a.bias), S=S, cache=2 * (P + T) * E)

    def shape(self, q):
        return (q["T"], q["E"])

    def cost(self, q):
        T, E, h, d, b, S, Tkv = (q[k] for k in ("T", "E", "h", "d", "b", "S", "Tkv"))
        plain = _combine({"mul": 4 * T * E * E, "add": 4 * T * E * (E - 1) + 4 * b * T * E},
                         _core(S, T, d, d, h, False))
        fused = _combine({"fma": 4 * T * E * E, "add": 4 * b * T * E}, _core(S, T, d, d, h, True))
        return Cost(
            params=4 * E * E + 4 * b * E,
            activations=5 * T * E + h * T * Tkv,
            macs=4 * T * E * E + 2 * S * E,
            ops=ops(**plain),
            fma_ops=sympy.Add(*fused.values()),
        )



@register
class Select(LayerKind):
    """select: ``x.select(dim, index)`` -- one slice along ``dim``, that dim removed (a view,
    free).  BERT's pooler reads the first token: ``select: {dim: 0, index: 0}`` on [T, E] -> [E].
    A concrete index must be inside the dim; a symbolic dim records the condition."""

    view = True
    name = "select"
    family = "transformer"
    takes = "x [...]: the dim selected from must exist (rank ≥ 1)"
    args = (Arg("dim", "int", 0, doc="the dim indexed and removed (negative counts from the end)"),
            Arg("index", "int", 0, doc="position along dim, from 0"))

    def quantities(self, a, inputs):
        (x,) = inputs
        if not x:
            raise ShapeError("select needs an input with at least one dimension")
        if not -len(x) <= a.dim < len(x):
            raise ShapeError(f"select: dim {a.dim} is out of range for rank {len(x)}")
        d = a.dim % len(x)
        n = x[d]
        q = Quantities(out=tuple(x[:d]) + tuple(x[d + 1:]))
        if a.index < 0:
            raise ShapeError(f"select: index {a.index} must be 0 or more (count from the start)")
        room = n - a.index
        if room.free_symbols:
            require_positive(q, room, f"the selected dim minus the index {a.index}")
        elif room < 1:
            raise ShapeError(f"select: index {a.index} is out of range for a dim of {n}")
        return q

    def shape(self, q):
        return q["out"]

    def cost(self, q):
        return Cost()
