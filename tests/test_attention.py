"""multihead_attention and scaled_dot_product_attention against nn.MultiheadAttention /
F.scaled_dot_product_attention (params, shapes, FlopCounterMode) and tests/bruteforce.py (ops)."""

import math
import random

import numpy as np
import pytest
import sympy

import symcost
from symcost import ShapeError, SpecError
from symcost.sizes import symbol

import torch
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import bruteforce as bf  # noqa: E402

# E, heads, bias, Tq, Tkv, kdim, vdim, form: self | cross (2 inputs) | qkv (3 inputs)
MHA = [
    (4, 1, True, 3, 3, 4, 4, "self"),
    (4, 2, True, 3, 3, 4, 4, "self"),
    (6, 3, False, 2, 2, 6, 6, "self"),
    (4, 2, True, 2, 5, 4, 4, "cross"),
    (4, 2, True, 2, 4, 3, 3, "cross"),
    (4, 1, False, 3, 2, 5, 5, "cross"),
    (4, 2, True, 2, 5, 3, 5, "qkv"),
    (6, 2, False, 3, 4, 2, 3, "qkv"),
]


def mha_report(E, h, bias, Tq, Tkv, kdim, vdim, form, **extra):
    if form == "self":
        m = symcost.Model("mha", inputs={"x": [Tq, E]})
        m.add("multihead_attention", "x", num_heads=h, bias=bias, **extra)
    elif form == "cross":
        m = symcost.Model("mha", inputs={"q": [Tq, E], "c": [Tkv, kdim]})
        m.add("multihead_attention", "q", "c", num_heads=h, bias=bias, **extra)
    else:
        m = symcost.Model("mha", inputs={"q": [Tq, E], "k": [Tkv, kdim], "v": [Tkv, vdim]})
        m.add("multihead_attention", "q", "k", "v", num_heads=h, bias=bias, **extra)
    return m.cost()


def mha_torch(E, h, bias, Tq, Tkv, kdim, vdim, form):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        m = nn.MultiheadAttention(E, h, bias=bias, kdim=kdim, vdim=vdim).double().eval()
    g = torch.Generator().manual_seed(1)
    q = torch.randn(Tq, E, generator=g, dtype=torch.float64)
    if form == "self":
        k = v = q
    else:
        k = torch.randn(Tkv, kdim, generator=g, dtype=torch.float64)
        v = k if form == "cross" else torch.randn(Tkv, vdim, generator=g, dtype=torch.float64)
    return m, q, k, v


def hand_macs(E, h, Tq, Tkv, kdim, vdim):
    """Four projections, then T_q·T_kv·E for the scores and as many for the weighted sum."""
    return Tq * E * E + Tkv * E * kdim + Tkv * E * vdim + Tq * E * E + 2 * Tq * Tkv * E


@pytest.mark.parametrize("E,h,bias,Tq,Tkv,kdim,vdim,form", MHA)
def test_mha_params_shape_macs(E, h, bias, Tq, Tkv, kdim, vdim, form):
    r = mha_report(E, h, bias, Tq, Tkv, kdim, vdim, form)
    m, q, k, v = mha_torch(E, h, bias, Tq, Tkv, kdim, vdim, form)
    assert r.params == sum(p.numel() for p in m.parameters())
    with FlopCounterMode(display=False) as counter:
        out, _ = m(q, k, v, need_weights=True)
    assert r.output_shapes == [tuple(out.shape)]
    assert r.macs == hand_macs(E, h, Tq, Tkv, kdim, vdim)
    # With need_weights=True PyTorch takes the unfused path (addmm + bmm), which
    # FlopCounterMode sees in full: 2 FLOPs per MAC.
    assert 2 * r.macs == counter.get_total_flops()


def test_flop_counter_misses_the_fused_attention_core():
    """With need_weights=False (the default of nn.TransformerEncoderLayer) PyTorch runs the
    fused attention kernel, and FlopCounterMode sees the projections only."""
    E, h, T = 8, 2, 5
    r = mha_report(E, h, True, T, T, E, E, "self")
    m, q, k, v = mha_torch(E, h, True, T, T, E, E, "self")
    with FlopCounterMode(display=False) as counter:
        m(q, k, v, need_weights=False)
    assert counter.get_total_flops() <= 2 * (r.macs - 2 * T * T * E)


@pytest.mark.parametrize("fma", [False, True])
@pytest.mark.parametrize("E,h,bias,Tq,Tkv,kdim,vdim,form", MHA)
def test_mha_ops_against_bruteforce(E, h, bias, Tq, Tkv, kdim, vdim, form, fma):
    r = mha_report(E, h, bias, Tq, Tkv, kdim, vdim, form)
    m, q, k, v = mha_torch(E, h, bias, Tq, Tkv, kdim, vdim, form)
    out, counts = bf.multihead_attention(q, k, v, dict(m.named_parameters()), h, fma=fma)
    expected, _ = m(q, k, v, need_weights=False)
    assert np.allclose(out, expected.detach().numpy(), rtol=1e-9, atol=1e-11)
    if fma:
        assert r.fma_ops == sum(counts.values())
        assert r.macs == counts["fma"]
    else:
        assert r.flops == sum(counts.values())
        for kind in symcost.OP_KINDS:
            assert r.ops.get(kind, 0) == counts[kind], kind


SDPA = [((3, 4), (3, 4), (3, 4)), ((2, 3, 2), (2, 4, 2), (2, 4, 3)), ((2, 1, 2, 3), (2, 1, 3, 3), (2, 1, 3, 3)),
        ((5, 2), (1, 4, 2), (1, 4, 1))]


def sdpa_report(sq, sk, sv, **extra):
    m = symcost.Model("sdpa", inputs={"q": list(sq), "k": list(sk), "v": list(sv)})
    m.add("scaled_dot_product_attention", "q", "k", "v", **extra)
    return m.cost()


@pytest.mark.parametrize("sq,sk,sv", SDPA)
def test_sdpa_shape_macs_ops(sq, sk, sv):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(s, generator=g, dtype=torch.float64) for s in (sq, sk, sv))
    r = sdpa_report(sq, sk, sv)
    with FlopCounterMode(display=False) as counter:
        expected = F.scaled_dot_product_attention(q, k, v)
    assert r.output_shapes == [tuple(expected.shape)]
    assert r.params == 0
    if q.dim() < 4:
        assert 2 * r.macs == counter.get_total_flops()
    # else: rank-4 inputs run PyTorch's fused CPU kernel, which FlopCounterMode reports as 0
    # FLOPs; the brute-force loop below is the reference there.
    lead = expected.shape[:-2]  # the brute-force loop wants equal leading dims: broadcast first
    kb = k.expand(lead + k.shape[-2:])
    vb = v.expand(lead + v.shape[-2:])
    qb = q.expand(lead + q.shape[-2:])
    out, counts = bf.scaled_dot_product_attention(qb, kb, vb)
    _, fused = bf.scaled_dot_product_attention(qb, kb, vb, fma=True)
    assert np.allclose(out, expected.numpy())
    for kind in symcost.OP_KINDS:
        assert r.ops.get(kind, 0) == counts[kind], kind
    assert r.fma_ops == sum(fused.values())
    assert r.macs == fused["fma"]


def causal_bruteforce(q, k, v, *, fma=False):
    """Naive causal attention that computes only the unmasked scores (query i sees keys 0..i),
    built from the brute-force counter's dot product and softmax."""
    c = bf.Counter()
    q, k, v = c.wrap(q), c.wrap(k), c.wrap(v)
    scale = 1.0 / math.sqrt(q.shape[-1])
    out = []
    for i, qi in enumerate(q):
        scores = [bf._dot(qi, k[j], None, fma) * scale for j in range(i + 1)]
        w = bf._softmax_vector(scores)
        out.append([bf._dot(w, [v[j][col] for j in range(i + 1)], None, fma) for col in range(v.shape[-1])])
    return c.result(out)


@pytest.mark.parametrize("T,d,dv", [(1, 2, 2), (4, 3, 2), (5, 2, 4)])
def test_causal_counts(T, d, dv):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(s, generator=g, dtype=torch.float64) for s in ((T, d), (T, d), (T, dv)))
    full = sdpa_report((T, d), (T, d), (T, dv))
    # is_causal alone: PyTorch computes (and masks) the full matrix, so the count is the full one.
    causal_full = sdpa_report((T, d), (T, d), (T, dv), is_causal=True)
    for field in ("macs", "flops", "fma_ops", "activations"):
        assert getattr(causal_full, field) == getattr(full, field)
    # count_masked: false counts the causal half, as the naive causal loop does.
    half = sdpa_report((T, d), (T, d), (T, dv), is_causal=True, count_masked=False)
    out, counts = causal_bruteforce(q, k, v)
    _, fused = causal_bruteforce(q, k, v, fma=True)
    assert np.allclose(out, F.scaled_dot_product_attention(q, k, v, is_causal=True).numpy())
    for kind in symcost.OP_KINDS:
        assert half.ops.get(kind, 0) == counts[kind], kind
    assert half.fma_ops == sum(fused.values())
    assert half.macs == fused["fma"]


def cached_causal_bruteforce(q, k, v, past, *, half, fma=False):
    """Naive attention of new queries [B, T, d] over past + T keys; with ``half`` query i (at
    position past + i) scores only keys 0 .. past + i, else every key (the masked ones too)."""
    c = bf.Counter()
    q, k, v = c.wrap(q), c.wrap(k), c.wrap(v)
    out = []
    for b in range(q.shape[0]):
        rows = []
        for i, qi in enumerate(q[b]):
            seen = past + i + 1 if half else k.shape[1]
            rows.append(bf._attend([qi], list(k[b % k.shape[0]][:seen]), list(v[b % v.shape[0]][:seen]), fma)[0])
        out.append(rows)
    return c.result(out)


@pytest.mark.parametrize("B,Bk,T,P,d,dv", [(2, 2, 1, 3, 2, 2), (3, 1, 2, 2, 3, 2), (1, 1, 3, 0, 2, 4),
                                           (2, 1, 1, 5, 2, 3)])
@pytest.mark.parametrize("half", [False, True])
def test_sdpa_with_a_cache_against_bruteforce(B, Bk, T, P, d, dv, half):
    """past_length P: T new queries, keys and values after P cached ones; B_k = 1 is one key and
    value head shared by the query heads (multi-query attention)."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(B, T, d, generator=g, dtype=torch.float64)
    k = torch.randn(Bk, P + T, d, generator=g, dtype=torch.float64)
    v = torch.randn(Bk, P + T, dv, generator=g, dtype=torch.float64)
    r = sdpa_report((B, T, d), (Bk, T, d), (Bk, T, dv), is_causal=True, past_length=P, count_masked=not half)
    _, counts = cached_causal_bruteforce(q, k, v, P, half=half)
    _, fused = cached_causal_bruteforce(q, k, v, P, half=half, fma=True)
    for kind in symcost.OP_KINDS:
        assert r.ops.get(kind, 0) == counts[kind], kind
    assert r.fma_ops == sum(fused.values()) and r.macs == fused["fma"]
    assert r.output_shapes == [(B, T, dv)]
    if not half:  # every score computed: PyTorch's SDPA on the whole cache, FlopCounterMode's count
        with FlopCounterMode(display=False) as counter:
            F.scaled_dot_product_attention(q, k.expand(B, -1, -1), v.expand(B, -1, -1))
        assert 2 * r.macs == counter.get_total_flops()
    if P:
        layer = r.analysis.nodes[0]
        assert layer.quantities["cache"] == (P + T) * Bk * (d + dv)


def test_causal_half_needs_square_scores():
    with pytest.raises(ShapeError, match="count_masked"):
        sdpa_report((3, 2), (4, 2), (4, 2), is_causal=True, count_masked=False)


@pytest.mark.parametrize("form", ["self", "cross", "qkv"])
@pytest.mark.parametrize("bias", [False, True])
def test_mha_symbolic_form_substitutes_to_the_concrete_counts(form, bias):
    Tq, Tkv, h, dh, Ek, Ev = (symbol(n) for n in ("Tq", "Tkv", "h", "dh", "Ek", "Ev"))
    E = h * dh
    if form == "self":
        general = mha_report(E, h, bias, Tq, Tq, E, E, form)
    elif form == "cross":
        general = mha_report(E, h, bias, Tq, Tkv, Ek, Ek, form)
    else:
        general = mha_report(E, h, bias, Tq, Tkv, Ek, Ev, form)
    rng = random.Random(f"{form}{bias}")
    for _ in range(3):
        v = {n: rng.randint(1, 30) for n in ("Tq", "Tkv", "h", "dh", "Ek", "Ev")}
        vE = v["h"] * v["dh"]
        kd = vE if form == "self" else v["Ek"]
        vd = vE if form == "self" else (v["Ek"] if form == "cross" else v["Ev"])
        tkv = v["Tq"] if form == "self" else v["Tkv"]
        concrete = mha_report(vE, v["h"], bias, v["Tq"], tkv, kd, vd, form)
        sub = general.subs(**{n: x for n, x in v.items() if n in general.known_names()})
        for field in ("params", "activations", "macs", "flops", "fma_ops"):
            assert getattr(sub, field) == getattr(concrete, field), field
        for kind in symcost.OP_KINDS:
            assert sub.ops.get(kind, 0) == concrete.ops.get(kind, 0), kind


def test_slides_attention_is_d_n_m_per_stage():
    """Self-attention without projections' bias: 4·T·H·H (projections) + 2·T·T·H (two D×N×M stages)."""
    T, H = symbol("T"), symbol("H")
    r = mha_report(H, 1, False, T, T, H, H, "self")
    assert sympy.expand(r.macs - (4 * T * H * H + 2 * T * T * H)) == 0
    assert sympy.expand(r.params - 4 * H * H) == 0


def test_mha_errors():
    with pytest.raises(SpecError, match="add_bias_kv"):
        mha_report(4, 2, True, 3, 3, 4, 4, "self", add_bias_kv=True)
    with pytest.raises(ShapeError, match="divisible"):
        mha_report(6, 4, True, 3, 3, 6, 6, "self")
    with pytest.raises(ShapeError, match=r"layer 'att'.*kdim 5"):
        m = symcost.Model("bad", inputs={"q": [3, 4], "c": [6, 4]})
        m.add("multihead_attention", "q", "c", num_heads=2, kdim=5, id="att")
        m.cost()
    with pytest.raises(ShapeError, match="rank 2"):
        m = symcost.Model("bad", inputs={"x": [2, 3, 4]})
        m.add("multihead_attention", num_heads=2)
        m.cost()
    with pytest.raises(ShapeError, match="differ in length"):
        m = symcost.Model("bad", inputs={"q": [3, 4], "k": [5, 4], "v": [6, 4]})
        m.add("multihead_attention", "q", "k", "v", num_heads=2)
        m.cost()
    with pytest.raises(SpecError, match="1 to 3 input"):
        m = symcost.Model("bad", inputs={"q": [3, 4]})
        m.add("multihead_attention", "q", "q", "q", "q", num_heads=2)


def test_symbolic_heads_must_divide_embed_dim_on_substitution():
    m = symcost.Model("mha", inputs={"x": ["T", "E"]})
    m.add("multihead_attention", num_heads="h", id="att")
    r = m.cost()
    assert r.subs(T=3, E=12, h=4).params == 4 * 12 * 12 + 4 * 12
    with pytest.raises(ShapeError, match=r"layer 'att'.*divide embed_dim"):
        r.subs(T=3, E=10, h=4)


@pytest.mark.parametrize("causal,count_masked", [(False, True), (True, True), (True, False)])
@pytest.mark.parametrize("cached", [False, True])
def test_sdpa_symbolic_form_substitutes_to_the_concrete_counts(causal, count_masked, cached):
    Bn, Tn, dn, dvn, Pn = (symbol(n) for n in ("B", "T", "d", "dv", "P"))
    extra = {"past_length": Pn} if cached else {}
    general = sdpa_report((Bn, Tn, dn), (Bn, Tn, dn), (Bn, Tn, dvn), is_causal=causal, count_masked=count_masked,
                          **extra)
    rng = random.Random(f"{causal}{count_masked}{cached}")
    for _ in range(3):
        B, T, d, dv, P = (rng.randint(1, 20) for _ in range(5))
        extra = {"past_length": P} if cached else {}
        concrete = sdpa_report((B, T, d), (B, T, d), (B, T, dv), is_causal=causal, count_masked=count_masked,
                               **extra)
        sub = general.subs(B=B, T=T, d=d, dv=dv, P=P) if cached else general.subs(B=B, T=T, d=d, dv=dv)
        for field in ("activations", "macs", "flops", "fma_ops"):
            assert getattr(sub, field) == getattr(concrete, field), field
        assert sub.output_shapes == concrete.output_shapes
