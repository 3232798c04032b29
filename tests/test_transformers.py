"""Transformer language models: gpt2, bert, transformer_lm, lstm_lm against hand-written
PyTorch modules of the same layout (parameters, FlopCounterMode) and the published
checkpoint sizes; positional_embedding, select, weight tying, size defaults and
cached_self_attention (against nn/F and a brute-force cached attention loop)."""

import json
import math
import random

import numpy as np
import pytest
import sympy

import symcost
from symcost import ShapeError, SpecError
from symcost.cli import main
from symcost.sizes import symbol

import torch
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import bruteforce as bf  # noqa: E402

S = {n: symbol(n) for n in ("n_layer", "d_model", "n_head", "d_ff", "n_vocab", "n_ctx", "T", "n_type", "d_attn")}


# --------------------------------------------------------------------------- PyTorch models


def causal_attention(q, k, v, h, past=0):
    """Multi-head attention on [T, E] rows written out with matmuls (FlopCounterMode sees bmm):
    query i (position past + i) sees keys 0 .. past + i."""
    T, E = q.shape
    Tk = k.shape[0]
    dh = E // h
    q, k, v = (t.reshape(t.shape[0], h, dh).transpose(0, 1) for t in (q, k, v))
    att = (q @ k.transpose(-2, -1)) / math.sqrt(dh)
    mask = torch.ones(T, Tk, dtype=torch.bool).tril(diagonal=past)
    att = att.masked_fill(~mask, float("-inf")).softmax(-1)
    return (att @ v).transpose(0, 1).reshape(T, E)


class GPT2Block(nn.Module):
    def __init__(self, d, h, dff):
        super().__init__()
        self.h = h
        self.ln_1 = nn.LayerNorm(d)
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.c_fc = nn.Linear(d, dff)
        self.mlp_proj = nn.Linear(dff, d)

    def forward(self, x):
        q, k, v = self.c_attn(self.ln_1(x)).chunk(3, dim=-1)
        x = x + self.c_proj(causal_attention(q, k, v, self.h))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT2(nn.Module):
    """GPT-2's layout (Hugging Face GPT2LMHeadModel), head tied to the token embedding."""

    def __init__(self, n_layer, d, h, V, n_ctx, dff=None):
        super().__init__()
        self.wte = nn.Embedding(V, d)
        self.wpe = nn.Embedding(n_ctx, d)
        self.h = nn.ModuleList(GPT2Block(d, h, dff or 4 * d) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, V, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[0]))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


class BertLayer(nn.Module):
    def __init__(self, d, h, dff):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, h)
        self.ln_1 = nn.LayerNorm(d, eps=1e-12)
        self.intermediate = nn.Linear(d, dff)
        self.output = nn.Linear(dff, d)
        self.ln_2 = nn.LayerNorm(d, eps=1e-12)

    def forward(self, x):
        a, _ = self.attn(x, x, x, need_weights=True)  # the unfused path: FlopCounterMode sees it all
        x = self.ln_1(x + a)
        return self.ln_2(x + self.output(F.gelu(self.intermediate(x))))


class Bert(nn.Module):
    """BERT's layout (Hugging Face BertModel with its pooler)."""

    def __init__(self, n_layer, d, h, V, n_ctx, n_type=2, dff=None):
        super().__init__()
        self.word = nn.Embedding(V, d)
        self.position = nn.Embedding(n_ctx, d)
        self.token_type = nn.Embedding(n_type, d)
        self.ln = nn.LayerNorm(d, eps=1e-12)
        self.layers = nn.ModuleList(BertLayer(d, h, dff or 4 * d) for _ in range(n_layer))
        self.pooler = nn.Linear(d, d)

    def forward(self, idx):
        T = idx.shape[0]
        x = self.ln(self.word(idx) + self.position(torch.arange(T)) + self.token_type(torch.zeros_like(idx)))
        x = x.unsqueeze(1)  # nn.MultiheadAttention: [T, batch 1, E]
        for layer in self.layers:
            x = layer(x)
        x = x.squeeze(1)
        return x, torch.tanh(self.pooler(x[0]))


class PaLMBlock(nn.Module):
    """y = x + out(MQA(ln(x))) + down(silu(gate(ln(x))) * up(ln(x))): one bias-free layernorm,
    n_head query heads of d_head, one key and one value head of d_head, no biases."""

    def __init__(self, d, h, dh, dff):
        super().__init__()
        self.h, self.dh = h, dh
        self.ln = nn.LayerNorm(d, bias=False)
        self.q = nn.Linear(d, h * dh, bias=False)
        self.kv = nn.Linear(d, 2 * dh, bias=False)
        self.out = nn.Linear(h * dh, d, bias=False)
        self.gate = nn.Linear(d, dff, bias=False)
        self.up = nn.Linear(d, dff, bias=False)
        self.down = nn.Linear(dff, d, bias=False)

    def forward(self, x):
        T = x.shape[0]
        y = self.ln(x)
        q = self.q(y).reshape(T, self.h, self.dh).transpose(0, 1)
        k, v = (t.unsqueeze(0) for t in self.kv(y).chunk(2, dim=-1))  # [1, T, d_head]: shared by the heads
        att = (q @ k.transpose(-2, -1)) / math.sqrt(self.dh)
        att = att.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf")).softmax(-1)
        heads = (att @ v).transpose(0, 1).reshape(T, self.h * self.dh)
        return x + self.out(heads) + self.down(F.silu(self.gate(y)) * self.up(y))


class PaLM(nn.Module):
    """PaLM's layout (Chowdhery et al. 2022, Section 2), RoPE left out; head tied to the embedding."""

    def __init__(self, n_layer, d, h, dh, V, dff=None):
        super().__init__()
        self.wte = nn.Embedding(V, d)
        self.h = nn.ModuleList(PaLMBlock(d, h, dh, dff or 4 * d) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d, bias=False)
        self.lm_head = nn.Linear(d, V, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, idx):
        x = self.wte(idx)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


class LlamaBlock(nn.Module):
    """h = x + out(GQA(rmsnorm(x))); y = h + down(silu(gate(rmsnorm(h))) * up(rmsnorm(h))): n_head
    query heads in n_kv groups, each group sharing one key and value head; no biases."""

    def __init__(self, d, h, kv, dff):
        super().__init__()
        self.h, self.kv, self.dh = h, kv, d // h
        self.attn_norm = nn.RMSNorm(d, eps=1e-5)
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, kv * self.dh, bias=False)
        self.v = nn.Linear(d, kv * self.dh, bias=False)
        self.out = nn.Linear(d, d, bias=False)
        self.mlp_norm = nn.RMSNorm(d, eps=1e-5)
        self.gate = nn.Linear(d, dff, bias=False)
        self.up = nn.Linear(d, dff, bias=False)
        self.down = nn.Linear(dff, d, bias=False)

    def forward(self, x):
        T, d = x.shape
        y = self.attn_norm(x)
        q = self.q(y).reshape(T, self.kv, self.h // self.kv, self.dh).permute(1, 2, 0, 3)
        k = self.k(y).reshape(T, self.kv, 1, self.dh).permute(1, 2, 0, 3)
        v = self.v(y).reshape(T, self.kv, 1, self.dh).permute(1, 2, 0, 3)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(self.dh)       # broadcast over each group
        att = att.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf")).softmax(-1)
        h = x + self.out((att @ v).permute(2, 0, 1, 3).reshape(T, d))
        z = self.mlp_norm(h)
        return h + self.down(F.silu(self.gate(z)) * self.up(z))


class Llama(nn.Module):
    """LLaMA's layout (Llama 2 / 3), RoPE left out; the output layer not tied."""

    def __init__(self, n_layer, d, h, kv, dff, V):
        super().__init__()
        self.embed = nn.Embedding(V, d)
        self.layers = nn.ModuleList(LlamaBlock(d, h, kv, dff) for _ in range(n_layer))
        self.norm = nn.RMSNorm(d, eps=1e-5)
        self.lm_head = nn.Linear(d, V, bias=False)

    def forward(self, idx):
        x = self.embed(idx)
        for layer in self.layers:
            x = layer(x)
        return self.lm_head(self.norm(x))


class LSTMLM(nn.Module):
    def __init__(self, V, d, n_layer):
        super().__init__()
        self.embed = nn.Embedding(V, d)
        self.lstm = nn.LSTM(d, d, n_layer)
        self.project = nn.Linear(d, V)

    def forward(self, idx):
        out, _ = self.lstm(self.embed(idx))
        return self.project(out)


def nparams(m):
    return sum(p.numel() for p in m.parameters())  # shared (tied) parameters are listed once


def flops(m, idx):
    with FlopCounterMode(display=False) as counter:
        out = m(idx)
    return counter.get_total_flops(), out


def report(name, **values):
    r = symcost.load(name).cost()
    return r.subs(values) if values else r


def against_torch(name, values, dff, module, V, T):
    """The built-in ``name`` at ``values`` (and d_ff when given) against ``module`` run on T random
    tokens of V: parameters, output shapes, and FlopCounterMode's FLOPs = 2 × MACs."""
    r = report(name, **values, **({"d_ff": dff} if dff else {}))
    total, out = flops(module, torch.randint(0, V, (T,)))
    outs = out if isinstance(out, tuple) else (out,)
    assert r.params == nparams(module)
    assert r.output_shapes == [tuple(o.shape) for o in outs]
    assert 2 * r.macs == total


# --------------------------------------------------------------------------- published sizes


def test_gpt2_small_published_parameter_count_from_the_cli(capsys):
    argv = ["cost", "gpt2", "--set", "n_layer=12", "--set", "d_model=768", "--set", "n_head=12",
            "--set", "n_vocab=50257", "--set", "n_ctx=1024", "--set", "T=1024", "--format", "json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == 124_439_808  # the released GPT-2 small checkpoint
    with torch.device("meta"):
        assert nparams(GPT2(12, 768, 12, 50257, 1024)) == 124_439_808


def test_bert_base_published_parameter_count():
    r = report("bert", n_layer=12, d_model=768, n_head=12, n_vocab=30522, n_ctx=512, T=512)
    assert r.params == 109_482_240  # bert-base-uncased with its pooler
    with torch.device("meta"):
        assert nparams(Bert(12, 768, 12, 30522, 512)) == 109_482_240


@pytest.mark.parametrize("name", ["gpt2", "transformer_lm"])
def test_gpt2_sized_family_at_gpt2_medium_and_large(name):
    with torch.device("meta"):
        for L, d, h in ((24, 1024, 16), (36, 1280, 20)):
            r = report(name, n_layer=L, d_model=d, n_head=h, n_vocab=50257, n_ctx=1024, T=8)
            assert r.params == nparams(GPT2(L, d, h, 50257, 1024))


# PaLM, Table 1: (n_layer, d_model, n_head) and the printed parameters (billions); d_head = 256,
# d_ff = 4·d_model, the 256k vocabulary
PALM_TABLE_1 = [(32, 4096, 16, "8.63"), (64, 8192, 32, "62.50"), (118, 18432, 48, "540.35")]


@pytest.mark.parametrize("L,d,h,printed", PALM_TABLE_1)
def test_palm_table1_parameter_column(L, d, h, printed):
    """The architecture of Section 2 gives 8.63B and 62.50B; for 540B it gives 540.356B, which
    prints as 540.36 -- the printed 540.35 is the count without the (n_layer + 1)·d_model
    layernorm scales (540.354B). The other two rows print the same either way."""
    r = report("palm", n_layer=L, d_model=d, n_head=h, d_head=256, n_vocab=256_000, T=2048)
    with torch.device("meta"):
        assert r.params == nparams(PaLM(L, d, h, 256, 256_000))
    norms = (L + 1) * d
    assert f"{(r.params - norms) / 10**9:.2f}" == printed
    assert (f"{r.params / 10**9:.2f}" == printed) == (printed != "540.35")


# Published parameter counts: (n_layer, d_model, n_head, n_kv_head, d_ff, n_vocab) and the count.
# (Hugging Face's safetensors metadata of Llama-2-13b/70b shows n_layer·d_head/2 more: the saved
# rotary inv_freq buffers, which are not parameters.)
LLAMA = {
    "Llama-2-7B": ((32, 4096, 32, 32, 11008, 32000), 6_738_415_616),
    "Llama-2-13B": ((40, 5120, 40, 40, 13824, 32000), 13_015_864_320),
    "Llama-2-70B": ((80, 8192, 64, 8, 28672, 32000), 68_976_648_192),
    "Llama-3-8B": ((32, 4096, 32, 8, 14336, 128256), 8_030_261_248),
}


@pytest.mark.parametrize("name", sorted(LLAMA))
def test_llama_published_parameter_counts(name):
    (L, d, h, kv, dff, V), published = LLAMA[name]
    r = report("llama", n_layer=L, d_model=d, n_head=h, n_kv_head=kv, d_ff=dff, n_vocab=V, T=4096)
    assert r.params == published
    with torch.device("meta"):
        assert nparams(Llama(L, d, h, kv, dff, V)) == published


# --------------------------------------------------------------------------- small configurations

CONFIGS = [  # n_layer, d, h, V, n_ctx, T, d_ff
    (1, 8, 2, 11, 6, 5, None),
    (2, 12, 3, 7, 9, 9, None),
    (3, 8, 4, 5, 4, 1, 20),
]


@pytest.mark.parametrize("L,d,h,V,n_ctx,T,dff", CONFIGS)
@pytest.mark.parametrize("name", ["gpt2", "transformer_lm"])
def test_gpt2_layout_against_torch(name, L, d, h, V, n_ctx, T, dff):
    torch.manual_seed(0)
    against_torch(name, dict(n_layer=L, d_model=d, n_head=h, n_vocab=V, n_ctx=n_ctx, T=T), dff,
                  GPT2(L, d, h, V, n_ctx, dff), V, T)


@pytest.mark.parametrize("L,d,h,V,n_ctx,T,dff", CONFIGS)
def test_bert_layout_against_torch(L, d, h, V, n_ctx, T, dff):
    torch.manual_seed(0)
    against_torch("bert", dict(n_layer=L, d_model=d, n_head=h, n_vocab=V, n_ctx=n_ctx, T=T), dff,
                  Bert(L, d, h, V, n_ctx, dff=dff), V, T)


@pytest.mark.parametrize("L,d,h,dh,V,T,dff", [(1, 8, 2, 4, 11, 5, None), (2, 6, 3, 5, 7, 4, None),
                                               (3, 4, 1, 3, 5, 1, 9)])
def test_palm_layout_against_torch(L, d, h, dh, V, T, dff):
    torch.manual_seed(0)
    against_torch("palm", dict(n_layer=L, d_model=d, n_head=h, d_head=dh, n_vocab=V, T=T), dff,
                  PaLM(L, d, h, dh, V, dff), V, T)


@pytest.mark.parametrize("L,d,h,kv,dff,V,T", [(1, 8, 4, 2, 12, 11, 5), (2, 12, 6, 3, 20, 7, 4),
                                               (2, 8, 2, 2, 8, 5, 3), (1, 6, 3, 1, 10, 9, 1)])
def test_llama_layout_against_torch(L, d, h, kv, dff, V, T):
    torch.manual_seed(0)
    against_torch("llama", dict(n_layer=L, d_model=d, n_head=h, n_kv_head=kv, d_ff=dff, n_vocab=V, T=T), None,
                  Llama(L, d, h, kv, dff, V), V, T)


@pytest.mark.parametrize("V,d,L,T", [(7, 4, 1, 3), (5, 6, 2, 4)])
def test_lstm_lm_against_torch(V, d, L, T):
    r = report("lstm_lm", n_vocab=V, d_model=d, n_layer=L, T=T)
    m = LSTMLM(V, d, L)
    assert r.params == nparams(m)
    assert r.output_shapes == [tuple(m(torch.randint(0, V, (T,))).shape)]


def test_symbolic_gpt2_by_substitution():
    """The symbolic parameter count and MACs, at random sizes, against torch modules."""
    r = report("gpt2")
    rng = random.Random(8)
    for _ in range(3):
        h = rng.randint(1, 3)
        d = h * rng.randint(1, 4)
        L, V, n_ctx = rng.randint(1, 3), rng.randint(2, 20), rng.randint(2, 12)
        T = rng.randint(1, n_ctx)
        v = {S["n_layer"]: L, S["d_model"]: d, S["n_head"]: h, S["n_vocab"]: V, S["n_ctx"]: n_ctx, S["T"]: T}
        m = GPT2(L, d, h, V, n_ctx)
        total, _ = flops(m, torch.randint(0, V, (T,)))
        assert r.params.xreplace(v) == nparams(m)
        assert 2 * r.macs.xreplace(v) == total


def test_gpt2_closed_form():
    """12·L·d² + 13·L·d + (V + n_ctx)·d + 2d: per block 4d² + 4d (attention), 8d² + 5d (MLP),
    4d (two layernorms); the embeddings; the final layernorm; the tied head adds nothing."""
    L, d, V, n = S["n_layer"], S["d_model"], S["n_vocab"], S["n_ctx"]
    assert sympy.expand(report("gpt2").params - (12 * L * d**2 + 13 * L * d + (V + n) * d + 2 * d)) == 0


# --------------------------------------------------------------------------- layers


def test_positional_embedding_checks_the_context():
    m = symcost.Model("p", inputs={"x": [5]})
    m.add("positional_embedding", num_embeddings=4, embedding_dim=3)
    with pytest.raises(ShapeError, match="num_embeddings 4"):
        m.cost()
    m = symcost.Model("p", inputs={"x": ["T"]})
    m.add("positional_embedding", num_embeddings="n_ctx", embedding_dim=3, id="wpe")
    r = m.cost()
    assert r.params == 3 * S["n_ctx"] and r.activations == 3 * S["T"]
    assert r.conditions  # T <= n_ctx recorded
    assert r.subs(T=4, n_ctx=4).params == 12
    with pytest.raises(ShapeError, match="wpe"):
        r.subs(T=5, n_ctx=4)
    ref = nn.Embedding(7, 3)
    assert r.subs(n_ctx=7, T=2).params == nparams(ref)


def test_select_is_a_free_view():
    m = symcost.Model("s", inputs={"x": ["T", 4]})
    m.add("select", dim=0, index=0)
    r = m.cost()
    assert r.output_shapes == [(4,)] and r.flops == 0 and r.steps == 0
    assert tuple(torch.zeros(3, 4).select(0, 0).shape) == (4,)
    with pytest.raises(ShapeError, match="out of range"):
        m = symcost.Model("s", inputs={"x": [2, 4]})
        m.add("select", dim=0, index=2)
        m.cost()


TIE = """
inputs: {{x: [T]}}
nodes:
  - {{id: wte, op: embedding, inputs: [x], num_embeddings: V, embedding_dim: E}}
  - {{id: blk, op: mlp, inputs: [wte]}}
  - {{id: head, op: linear, inputs: [blk], out_features: {out}, bias: false, tied_to: {target}}}
blocks:
  mlp:
    inputs: [x]
    nodes: [{{id: f, op: linear, inputs: [x], out_features: E}}]
"""


def test_weight_tying_adds_no_parameters_and_is_checked():
    r = symcost.load(TIE.format(out="V", target="wte")).cost()
    V, E = symbol("V"), symbol("E")
    assert sympy.expand(r.params - (V * E + E * E + E)) == 0
    assert sympy.expand(r.macs - (symbol("T") * (E * E + E * V))) == 0
    for out, target, words in [("V", "wtf", ["'wtf'", "wte"]), ("V", "blk", ["block"]),
                               ("V", "head", ["itself tied"]), ("2*V", "wte", ["[V, E]", "[2*V, E]"])]:
        with pytest.raises(symcost.SymcostError) as info:
            symcost.load(TIE.format(out=out, target=target)).cost()
        assert "layer 'head'" in str(info.value)
        for w in words:
            assert w in str(info.value)


def test_tying_a_symbolic_shape_that_differs():
    with pytest.raises(ShapeError, match="tied_to"):
        symcost.load(TIE.format(out="E", target="wte")).cost()


def test_defaults_apply_unless_set():
    r = report("gpt2")
    assert symbol("d_ff") not in r.params.free_symbols
    d, L = S["d_model"], S["n_layer"]
    r2 = r.subs(d_ff=10)
    assert sympy.expand(r2.params - report("gpt2").params) != 0
    per_block = 4 * d * d + 4 * d + 2 * 10 * d + 10 + d + 4 * d
    assert sympy.expand(r2.params - (L * per_block + (S["n_vocab"] + S["n_ctx"]) * d + 2 * d)) == 0
    with pytest.raises(SpecError, match="not one of the dims"):
        symcost.load("dims: {D: x}\ndefaults: {F: 2*D}\ninput: [D]\nlayers:\n  - relu: {}").cost()


# --------------------------------------------------------------------------- cached attention


def cached_bruteforce(x_new, k_cache, v_cache, mha, h, *, causal_half=False, fma=False):
    """Naive cached self-attention: project only the new rows, attend to cache + new keys."""
    c = bf.Counter()
    p = c.wrap_params(dict(mha.named_parameters()))
    w_q, w_k, w_v = np.split(p["in_proj_weight"], 3)
    b_q, b_k, b_v = np.split(p["in_proj_bias"], 3)
    rows = c.wrap(x_new)
    q = [bf._matvec(w_q, r, b_q, fma) for r in rows]
    k = list(c.wrap(k_cache)) + [bf._matvec(w_k, r, b_k, fma) for r in rows]
    v = list(c.wrap(v_cache)) + [bf._matvec(w_v, r, b_v, fma) for r in rows]
    P, E = len(k_cache), x_new.shape[1]
    d = E // h
    heads = []
    for j in range(h):
        cols = slice(j * d, (j + 1) * d)
        out = []
        for i, qi in enumerate(q):
            seen = P + i + 1 if causal_half else len(k)
            out.append(bf._attend([qi[cols]], [r[cols] for r in k[:seen]], [r[cols] for r in v[:seen]], fma)[0])
        heads.append(out)
    concat = [[e for head in heads for e in head[t]] for t in range(len(q))]
    out = [bf._matvec(p["out_proj.weight"], r, p["out_proj.bias"], fma) for r in concat]
    return c.result(out)


def cached_report(T, E, h, P, **extra):
    m = symcost.Model("c", inputs={"x": [T, E]})
    m.add("cached_self_attention", num_heads=h, past_length=P, **extra)
    return m.cost()


@pytest.mark.parametrize("T,E,h,P", [(1, 4, 2, 3), (2, 4, 1, 2), (3, 6, 3, 0), (1, 2, 1, 0)])
@pytest.mark.parametrize("half", [False, True])
def test_cached_self_attention_against_bruteforce(T, E, h, P, half):
    torch.manual_seed(1)
    mha = nn.MultiheadAttention(E, h).double()
    x = torch.randn(T, E, dtype=torch.float64)
    kc, vc = torch.randn(P, E, dtype=torch.float64), torch.randn(P, E, dtype=torch.float64)
    r = cached_report(T, E, h, P, count_masked=not half)
    assert r.params == nparams(mha)
    out, counts = cached_bruteforce(x.numpy(), kc.numpy(), vc.numpy(), mha, h, causal_half=half)
    _, fused = cached_bruteforce(x.numpy(), kc.numpy(), vc.numpy(), mha, h, causal_half=half, fma=True)
    for kind in symcost.OP_KINDS:
        assert r.ops.get(kind, 0) == counts[kind], kind
    assert r.fma_ops == sum(fused.values())
    assert r.macs == fused["fma"]
    if half:  # the causal output, against PyTorch on the cached keys
        w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
        b_q, b_k, b_v = mha.in_proj_bias.chunk(3)
        k = torch.cat([kc, F.linear(x, w_k, b_k)])
        v = torch.cat([vc, F.linear(x, w_v, b_v)])
        ref = mha.out_proj(causal_attention(F.linear(x, w_q, b_q), k, v, h, past=P))
        assert np.allclose(out, ref.detach().numpy())


@pytest.mark.parametrize("T,E,h,P", [(1, 8, 2, 5), (3, 8, 4, 2)])
def test_cached_self_attention_macs_against_flop_counter(T, E, h, P):
    mha = nn.MultiheadAttention(E, h)
    x, kc, vc = torch.randn(T, E), torch.randn(P, E), torch.randn(P, E)
    w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
    b_q, b_k, b_v = mha.in_proj_bias.chunk(3)
    with FlopCounterMode(display=False) as counter:
        k = torch.cat([kc, F.linear(x, w_k, b_k)])
        v = torch.cat([vc, F.linear(x, w_v, b_v)])
        mha.out_proj(causal_attention(F.linear(x, w_q, b_q), k, v, h, past=P))
    assert 2 * cached_report(T, E, h, P).macs == counter.get_total_flops()


def test_cached_attention_without_a_cache_is_causal_multihead_attention():
    T, E, h = symbol("T"), symbol("E"), symbol("h")
    m = symcost.Model("m", inputs={"x": [T, E]})
    m.add("multihead_attention", num_heads=h, is_causal=True)
    full = m.cost()
    cached = cached_report(T, E, h, 0)
    assert cached.total == full.total


def test_count_masked_false_counts_the_causal_half():
    T, P, E = symbol("T"), symbol("P"), symbol("E")
    half = cached_report(T, E, 1, P, count_masked=False)
    full = cached_report(T, E, 1, P)
    pairs = lambda t, p: sum(p + i + 1 for i in range(t))  # noqa: E731  query i sees P + i + 1 keys
    for t, p in [(1, 0), (4, 3), (5, 0)]:
        v = {T: t, P: p, E: 2}
        assert (full.macs - half.macs).xreplace(v) == 2 * 2 * (t * (p + t) - pairs(t, p))
