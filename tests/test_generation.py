"""Generation: totals with and without a KV cache against (1) a brute-force Python sum over the
steps of per-step costs that symcost derives for each step's own shapes, and (2) FlopCounterMode
on a real cached / uncached decoding loop of a GPT-2-shaped torch module."""

import json

import pytest
import sympy

import symcost
from symcost.cli import main
from symcost.generation import generation
from symcost.sizes import symbol

import torch
import torch.nn.functional as F  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from test_transformers import GPT2, PaLM, causal_attention  # noqa: E402

CASES = [  # n_layer, d, h, V, n_ctx, T_p, T_new
    (1, 8, 2, 11, 16, 3, 4),
    (2, 12, 3, 7, 12, 1, 5),
    (2, 8, 4, 5, 9, 4, 1),
]


def sizes(L, d, h, V, n_ctx):
    return dict(n_layer=L, d_model=d, n_head=h, n_vocab=V, n_ctx=n_ctx)


def sdpa_macs(h, Tq, Tkv, dh):
    """symcost's own count for one attention core of these shapes (a fresh derivation)."""
    m = symcost.Model("core", inputs={"q": [h, Tq, dh], "k": [h, Tkv, dh], "v": [h, Tkv, dh]})
    m.add("scaled_dot_product_attention", "q", "k", "v")
    return m.cost().macs


@pytest.mark.parametrize("L,d,h,V,n_ctx,Tp,Tn", CASES)
def test_attention_macs_with_cache_equal_the_sum_over_steps(L, d, h, V, n_ctx, Tp, Tn):
    g = generation(symcost.load("gpt2"), values=sizes(L, d, h, V, n_ctx))
    brute = L * sdpa_macs(h, Tp, Tp, d // h)                  # step 1: the prompt
    for s in range(2, Tn + 1):                                 # step s: one query, P + 1 keys
        P = Tp + s - 2
        brute += L * sdpa_macs(h, 1, P + 1, d // h)
    v = {symbol("T_p"): Tp, symbol("T_new"): Tn}
    assert g.attention_macs.xreplace(v) == brute


@pytest.mark.parametrize("L,d,h,V,n_ctx,Tp,Tn", CASES)
def test_attention_macs_without_cache_equal_the_sum_of_recomputations(L, d, h, V, n_ctx, Tp, Tn):
    g = generation(symcost.load("gpt2"), values=sizes(L, d, h, V, n_ctx), kv_cache=False)
    brute = sum(L * sdpa_macs(h, Tp + s - 1, Tp + s - 1, d // h) for s in range(1, Tn + 1))
    v = {symbol("T_p"): Tp, symbol("T_new"): Tn}
    assert g.attention_macs.xreplace(v) == brute
    # and every field of the total is the sum of full forward passes of the model itself
    full = symcost.load("gpt2").cost()
    for field in ("macs", "flops", "fma_ops", "activations"):
        expected = sum(getattr(full.subs({**sizes(L, d, h, V, n_ctx), "T": Tp + s - 1}), field)
                       for s in range(1, Tn + 1))
        assert getattr(g.total, field).xreplace(v) == expected


def cached_decode(m, prompt, n_new, h):
    """Greedy decoding with a KV cache: a full pass on the prompt, then one token per step."""
    logits = m(prompt)
    tokens = prompt.tolist()
    caches = [([], []) for _ in m.h]

    # fill the caches from the prompt: recompute k, v of the prompt (not counted: see below)
    def kv_of(block, x):
        _, k, v = block.c_attn(block.ln_1(x)).chunk(3, dim=-1)
        return k, v
    with torch.no_grad():
        x = m.wte(prompt) + m.wpe(torch.arange(len(prompt)))
        for block, cache in zip(m.h, caches):
            k, v = kv_of(block, x)
            cache[0].append(k)
            cache[1].append(v)
            x = block(x)
    return logits, tokens, caches


def count_cached_decoding(m, prompt, n_new, step_fn):
    """FlopCounterMode's FLOPs of greedy decoding with a KV cache: step 1 runs ``m`` on the
    prompt (the prefill), step s = 2 .. n_new runs ``step_fn(token, s)`` on the last token."""
    with FlopCounterMode(display=False) as counter:
        tok = int(m(prompt)[-1].argmax())
        for s in range(2, n_new + 1):
            tok = int(step_fn(torch.tensor([tok]), s)[-1].argmax())
    return counter.get_total_flops()


def step(m, token, pos, caches, h):
    x = m.wte(token) + m.wpe(torch.tensor([pos]))
    for block, (ks, vs) in zip(m.h, caches):
        q, k, v = block.c_attn(block.ln_1(x)).chunk(3, dim=-1)
        ks.append(k)
        vs.append(v)
        K, V = torch.cat(ks), torch.cat(vs)
        x = x + block.c_proj(causal_attention(q, K, V, h, past=pos))
        x = x + block.mlp_proj(F.gelu(block.c_fc(block.ln_2(x)), approximate="tanh"))
    return m.lm_head(m.ln_f(x))


@pytest.mark.parametrize("L,d,h,V,n_ctx,Tp,Tn", CASES)
def test_generation_totals_against_flop_counter(L, d, h, V, n_ctx, Tp, Tn):
    torch.manual_seed(0)
    m = GPT2(L, d, h, V, n_ctx)
    prompt = torch.randint(0, V, (Tp,))
    v = {symbol("T_p"): Tp, symbol("T_new"): Tn}
    with torch.no_grad():
        logits, tokens, caches = cached_decode(m, prompt, Tn, h)  # cache filling outside the counter
        counted = count_cached_decoding(m, prompt, Tn, lambda tok, s: step(m, tok, Tp + s - 2, caches, h))
        cached = generation(symcost.load("gpt2"), values=sizes(L, d, h, V, n_ctx))
        assert 2 * cached.total.macs.xreplace(v) == counted
        seq = prompt.tolist()
        with FlopCounterMode(display=False) as counter:
            for s in range(1, Tn + 1):
                out = m(torch.tensor(seq))
                seq.append(int(out[-1].argmax()))
        plain = generation(symcost.load("gpt2"), values=sizes(L, d, h, V, n_ctx), kv_cache=False)
        assert 2 * plain.total.macs.xreplace(v) == counter.get_total_flops()


def test_growth_and_cache_memory_symbolically():
    m = symcost.load("gpt2")
    cached, plain = generation(m), generation(m, kv_cache=False)
    Tp, Tn, L, d = (symbol(n) for n in ("T_p", "T_new", "n_layer", "d_model"))
    assert sympy.Poly(cached.attention_macs, Tn).degree() == 2
    assert sympy.Poly(plain.attention_macs, Tn).degree() == 3
    # 2 · n_layer · T · d_model elements (keys and values), 4 bytes each, T = T_p + T_new − 1
    assert sympy.expand(cached.kv_cache_bytes - 2 * L * (Tp + Tn - 1) * d * 4) == 0
    assert cached.steps == Tn == plain.steps
    # one cached step is linear in the context, one uncached step quadratic
    assert sympy.Poly(cached.step.macs, cached.past).degree() == 1
    assert sympy.Poly(plain.full.macs, plain.length).degree() == 2


def test_generation_checks_the_context():
    g = generation(symcost.load("gpt2"), values=dict(n_ctx=8), prompt=6, new=3)
    # the last step reads position T_p + T_new − 2 = 7 of 8: fine; one more would not fit
    assert g.steps == 3
    with pytest.raises(symcost.ShapeError):
        symcost.load("gpt2").cost().subs(n_ctx=8, T=9)


def test_lstm_lm_generates_with_its_state():
    g = generation(symcost.load("lstm_lm"))
    assert g.attention_macs == 0 and g.kv_cache_bytes == 0
    assert sympy.Poly(g.total.macs, symbol("T_new")).degree() == 1
    assert sympy.Poly(generation(symcost.load("lstm_lm"), kv_cache=False).total.macs, symbol("T_new")).degree() == 2


NON_CAUSAL_SDPA = """
inputs: {x: [T, E]}
nodes:
  - {id: attend, op: scaled_dot_product_attention, inputs: [x, x, x]}
"""


def test_bidirectional_models_are_refused_with_a_reason():
    with pytest.raises(symcost.SymcostError, match="causal self-attention"):
        generation(symcost.load("bert"))
    assert generation(symcost.load("bert"), kv_cache=False).steps == symbol("T_new")  # recomputation is fine
    with pytest.raises(symcost.SymcostError, match="layer 'attend'.*is_causal"):
        generation(symcost.load(NON_CAUSAL_SDPA))
    assert generation(symcost.load(NON_CAUSAL_SDPA), kv_cache=False).steps == symbol("T_new")


# --------------------------------------------------------------------------- bare SDPA: transformer_lm, palm


@pytest.mark.parametrize("L,d,h,V,n_ctx,Tp,Tn", CASES)
def test_transformer_lm_generates_as_gpt2(L, d, h, V, n_ctx, Tp, Tn):
    """transformer_lm is gpt2 with the attention written out (d_attn = d_model): the same MACs,
    attention work and cache, step by step, with its causal SDPA reading the cache."""
    v = {symbol("T_p"): Tp, symbol("T_new"): Tn}
    a = generation(symcost.load("transformer_lm"), values=sizes(L, d, h, V, n_ctx))
    b = generation(symcost.load("gpt2"), values=sizes(L, d, h, V, n_ctx))
    for field in ("attention_macs", "kv_cache_bytes"):
        assert getattr(a, field).xreplace(v) == getattr(b, field).xreplace(v)
    assert a.total.macs.xreplace(v) == b.total.macs.xreplace(v)


def palm_sizes(L, d, h, dh, V):
    return dict(n_layer=L, d_model=d, n_head=h, d_head=dh, n_vocab=V)


PALM_CASES = [(1, 8, 2, 4, 11, 3, 4), (2, 6, 3, 5, 7, 1, 5), (2, 4, 1, 3, 5, 4, 1)]


@pytest.mark.parametrize("L,d,h,dh,V,Tp,Tn", PALM_CASES)
def test_palm_attention_and_cache_over_the_steps(L, d, h, dh, V, Tp, Tn):
    """Multi-query attention: h query heads against one cached key and value head of d_head,
    so the cache is 2·n_layer·T·d_head elements, h times smaller than with h key heads."""
    g = generation(symcost.load("palm"), values=palm_sizes(L, d, h, dh, V))
    v = {symbol("T_p"): Tp, symbol("T_new"): Tn}
    brute = L * sdpa_macs(h, Tp, Tp, dh)
    for s in range(2, Tn + 1):
        brute += L * sdpa_macs(h, 1, Tp + s - 1, dh)
    assert g.attention_macs.xreplace(v) == brute
    assert g.kv_cache_bytes.xreplace(v) == 2 * L * (Tp + Tn - 1) * dh * 4
    plain = generation(symcost.load("palm"), values=palm_sizes(L, d, h, dh, V), kv_cache=False)
    assert plain.attention_macs.xreplace(v) == sum(L * sdpa_macs(h, Tp + s - 1, Tp + s - 1, dh)
                                                   for s in range(1, Tn + 1))


def palm_step(m, token, caches):
    """One cached decoding step of the PaLM module: project the new token only; its query heads
    attend to the cached keys and values of the one shared head and its own."""
    x = m.wte(token)
    for block, (ks, vs) in zip(m.h, caches):
        y = block.ln(x)
        q = block.q(y).reshape(1, block.h, block.dh).transpose(0, 1)
        k, v = block.kv(y).chunk(2, dim=-1)
        ks.append(k)
        vs.append(v)
        K, V = torch.cat(ks).unsqueeze(0), torch.cat(vs).unsqueeze(0)
        att = ((q @ K.transpose(-2, -1)) / block.dh ** 0.5).softmax(-1)   # the last query sees every key
        heads = (att @ V).transpose(0, 1).reshape(1, block.h * block.dh)
        x = x + block.out(heads) + block.down(F.silu(block.gate(y)) * block.up(y))
    return m.lm_head(m.ln_f(x))


@pytest.mark.parametrize("L,d,h,dh,V,Tp,Tn", PALM_CASES)
def test_palm_generation_totals_against_flop_counter(L, d, h, dh, V, Tp, Tn):
    torch.manual_seed(0)
    m = PaLM(L, d, h, dh, V)
    prompt = torch.randint(0, V, (Tp,))
    v = {symbol("T_p"): Tp, symbol("T_new"): Tn}
    with torch.no_grad():
        caches = [([], []) for _ in m.h]
        x = m.wte(prompt)                      # fill the caches from the prompt (not counted)
        for block, (ks, vs) in zip(m.h, caches):
            k, v_ = block.kv(block.ln(x)).chunk(2, dim=-1)
            ks.append(k)
            vs.append(v_)
            x = block(x)
        counted = count_cached_decoding(m, prompt, Tn, lambda tok, s: palm_step(m, tok, caches))
    cached = generation(symcost.load("palm"), values=palm_sizes(L, d, h, dh, V))
    assert 2 * cached.total.macs.xreplace(v) == counted


def test_cli_generate(capsys):
    base = ["generate", "gpt2", "--prompt", "4", "--new", "3", "--set", "n_layer=2", "--set", "d_model=8",
            "--set", "n_head=2", "--set", "n_vocab=11", "--set", "n_ctx=16", "--format", "json"]
    assert main(base) == 0
    out = json.loads(capsys.readouterr().out)
    g = generation(symcost.load("gpt2"), prompt=4, new=3, values=sizes(2, 8, 2, 11, 16))
    assert out["total"]["macs"] == g.total.macs and out["kv_cache_bytes"] == 2 * 2 * 6 * 8 * 4
    assert main(base + ["--no-kv-cache"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kv_cache"] is False and out["kv_cache_bytes"] == 0
    assert main(["generate", "gpt2", "--set", "T=4"]) == 2
    assert "T" in capsys.readouterr().err


@pytest.mark.parametrize("L,d,h,kv,dff,V,Tp,Tn", [(1, 8, 4, 2, 12, 11, 3, 4), (2, 12, 6, 3, 20, 7, 1, 5),
                                                  (2, 8, 2, 2, 8, 5, 4, 2)])
def test_llama_grouped_query_cache_over_the_steps(L, d, h, kv, dff, V, Tp, Tn):
    """Grouped-query attention: n_head query heads, n_kv_head cached key and value heads, so the
    cache is 2·n_layer·T·n_kv_head·d_head elements; the attention work is still per query head."""
    values = dict(n_layer=L, d_model=d, n_head=h, n_kv_head=kv, d_ff=dff, n_vocab=V)
    g = generation(symcost.load("llama"), values=values)
    v = {symbol("T_p"): Tp, symbol("T_new"): Tn}
    dh = d // h
    brute = L * sdpa_macs(h, Tp, Tp, dh) + sum(L * sdpa_macs(h, 1, Tp + s - 1, dh) for s in range(2, Tn + 1))
    assert g.attention_macs.xreplace(v) == brute
    assert g.kv_cache_bytes.xreplace(v) == 2 * L * (Tp + Tn - 1) * kv * dh * 4
    # every step's MACs: the model at one token, plus its attention over P + 1 keys
    one = symcost.load("llama").cost().subs({**values, "T": 1})
    for P in (Tp, Tp + 3):
        step = g.step.macs.xreplace({g.past: P})
        assert step == one.macs - L * sdpa_macs(h, 1, 1, dh) + L * sdpa_macs(h, 1, P + 1, dh)
