"""symcost.from_torch against PyTorch itself: parameter counts, FlopCounterMode on the meta
device, and the symbolic formula substituted at several sizes against a concrete trace."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import sympy

import torch
nn = torch.nn
F = torch.nn.functional

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import symcost  # noqa: E402
from models_torch import SUITE  # noqa: E402
from symcost.errors import SymbolError, SymcostError  # noqa: E402
from symcost.torch_bridge import UnsupportedError, from_torch  # noqa: E402

BATCH = 2


def concrete(shape, sizes):
    return tuple(sizes[d] if isinstance(d, str) else d for d in shape)


def meta_macs(module, shape, batch_dim, dtype):
    """FlopCounterMode's count on the meta device, / 2, for a batch of BATCH."""
    m = copy.deepcopy(module).to("meta").eval()
    full = list(shape[:batch_dim]) + [BATCH] + list(shape[batch_dim:])
    x = torch.zeros(full, dtype=dtype, device="meta")
    with FlopCounterMode(display=False) as counter:
        m(x)
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


@pytest.mark.parametrize("name", sorted(SUITE))
def test_suite_params_and_macs_match_pytorch(name):
    factory, shape, size_list, batch_dim, dtype = SUITE[name]
    torch.manual_seed(0)
    module = factory().eval()
    want_params = sum(p.numel() for p in module.parameters())
    symbolic = from_torch(module, shape, sizes=size_list[0], batch_dim=batch_dim).cost()
    assert symbolic.params == want_params
    for sizes in size_list:
        shp = concrete(shape, sizes)
        plain = from_torch(module, shp, batch_dim=batch_dim).cost()
        assert plain.params == want_params
        # FlopCounterMode is exact for matmul, conv and attention (and, on meta, LSTM/GRU)
        assert plain.macs * BATCH == meta_macs(module, shp, batch_dim, dtype), sizes
        # the symbolic formula, substituted, is the concrete count in every field
        sub = symbolic.subs(sizes) if sizes else symbolic
        for field in ("params", "macs", "flops", "fma_ops", "activations"):
            assert sympy.expand(getattr(sub, field) - getattr(plain, field)) == 0, (field, sizes)
        assert sub.ops == plain.ops


@pytest.mark.parametrize("name", ["lstm_lm", "gru_tagger", "transformer", "gpt"])
def test_sequence_models_are_symbolic_in_T(name):
    factory, shape, size_list, batch_dim, dtype = SUITE[name]
    r = from_torch(factory(), shape, batch_dim=batch_dim).cost()
    T = symbol_T = symcost.symbol("T")
    assert r.macs.free_symbols == {symbol_T}
    degree = sympy.degree(sympy.expand(r.macs), T)
    assert degree == (2 if name in ("transformer", "gpt") else 1)


def test_lstm_against_the_hand_formula():
    """CPU FlopCounterMode reports 0 for nn.LSTM; the slides' 4·T·(I·H + H·H) per layer is the reference."""
    I, H = 20, 30
    lstm = nn.LSTM(I, H, num_layers=2, batch_first=True)
    with FlopCounterMode(display=False) as counter:
        lstm(torch.zeros(1, 7, I))
    assert counter.get_total_flops() == 0  # the peer's flaw this bridge corrects
    r = from_torch(lstm, ("T", I)).cost()
    T = symcost.symbol("T")
    assert sympy.expand(r.macs - (4 * T * (I * H + H * H) + 4 * T * (H * H + H * H))) == 0
    assert r.params == sum(p.numel() for p in lstm.parameters())


def test_symbolic_hyperparameters_by_argument_name():
    lstm = nn.LSTM(16, 32, batch_first=True)
    t = from_torch(lstm, ("T", 16), symbolic={"hidden_size": "H"})
    T, H = symcost.symbol("T"), symcost.symbol("H")
    assert sympy.expand(t.cost().macs - 4 * T * (16 * H + H * H)) == 0
    assert sympy.expand(t.cost().params - (4 * H * (16 + H) + 8 * H)) == 0
    assert t.mapping == {"H": ["lstm.hidden_size"]}
    for h in (5, 32, 70):
        want = sum(p.numel() for p in nn.LSTM(16, h).parameters())
        assert t.cost().subs(H=h, T=3).params == want


def test_symbolic_by_value_maps_every_width_and_propagates():
    mlp = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    t = from_torch(mlp, (10,), symbolic={64: "D"})
    D = symcost.symbol("D")
    assert sympy.expand(t.cost().params - (10 * D + D + D * D + D + 3 * D + 3)) == 0
    assert sorted(t.mapping["D"]) == ["0.out_features", "2.out_features"]
    for d in (1, 7, 64):
        m = nn.Sequential(nn.Linear(10, d), nn.ReLU(), nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 3))
        assert t.cost().subs(D=d).params == sum(p.numel() for p in m.parameters())


class ViewWithLiteral(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 64)
        self.out = nn.Linear(16, 2)

    def forward(self, x):
        return self.out(self.fc(x).view(x.size(0), 4, 16))  # the literal 4·16 is the width 64


def test_a_wrong_symbolic_mapping_is_an_error_not_a_formula():
    with pytest.raises(SymcostError):  # 4·16 cannot be viewed from D elements
        from_torch(ViewWithLiteral(), (8,), symbolic={64: "D"})
    assert from_torch(ViewWithLiteral(), (8,)).cost().params == 8 * 64 + 64 + 16 * 2 + 2


def test_symbolic_key_that_replaces_nothing_is_an_error():
    with pytest.raises(SymbolError, match="replaced nothing"):
        from_torch(nn.Linear(4, 5), (4,), symbolic={99: "Z"})
    with pytest.raises(SymbolError, match="neither"):
        from_torch(nn.Linear(4, 5), (4,), symbolic={"nonexistent": "Z"})


def test_symbolic_attribute_name_of_a_user_module():
    class Net(nn.Module):
        def __init__(self, hidden=24):
            super().__init__()
            self.hidden = hidden
            self.a = nn.Linear(5, hidden)
            self.b = nn.Linear(hidden, 2)

        def forward(self, x):
            return self.b(F.relu(self.a(x)))

    t = from_torch(Net(), ("T", 5), symbolic={"hidden": "H"})
    H, T = symcost.symbol("H"), symcost.symbol("T")
    assert sympy.expand(t.cost().macs - T * (5 * H + 2 * H)) == 0
    assert t.cost().subs(H=9, T=4).params == sum(p.numel() for p in Net(9).parameters())


def test_unsupported_operations_are_all_listed_by_name():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.bil = nn.Bilinear(4, 4, 3)
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            y = torch.cumsum(self.fc(x), dim=-1)
            return self.bil(y, y)

    with pytest.raises(UnsupportedError) as info:
        from_torch(Odd(), (4,))
    names = [where for where, _ in info.value.items]
    assert "bil" in names and any("cumsum" in w for w in names)
    assert "Bilinear" in str(info.value) and "cumsum" in str(info.value)
    assert len(str(info.value).splitlines()) == 1


def test_module_prefix_costs_and_breakdown():
    factory, shape, sizes, bd, _ = SUITE["resnet"]
    t = from_torch(factory(), shape, sizes=sizes[0])
    total = t.cost().total
    parts = t.breakdown(depth=1)
    assert list(parts)[:3] == ["stem", "layer1", "layer2"]
    assert sympy.expand(sum((c.macs for c in parts.values()), sympy.Integer(0)) - total.macs) == 0
    block = factory().layer2[0]
    assert t.module_cost("layer2.0").params == sum(p.numel() for p in block.parameters())
    assert t.module_cost("layer2.0.downsample").params == sum(p.numel() for p in block.downsample.parameters())
    with pytest.raises(SymcostError, match="no module"):
        t.module_cost("layer9")


def test_a_root_layer_keeps_its_parts_paths():
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 2,
                                enable_nested_tensor=False)
    t = from_torch(enc, ("T", 16), symbolic={32: "F"})
    assert "layers.1.linear1" in t.model.node_ids
    assert t.mapping == {"F": ["layers.0.linear1.out_features", "layers.1.linear1.out_features"]}
    F_, T = symcost.symbol("F"), symcost.symbol("T")
    want = 2 * (4 * 16 * 16 * T + 2 * T * T * 16 + 2 * 16 * F_ * T)
    assert sympy.expand(t.cost().macs - want) == 0
    assert t.cost().subs(F=32, T=5).params == sum(p.numel() for p in enc.parameters())


def test_transformer_encoder_layer_is_expanded_into_named_parts():
    factory, shape, sizes, bd, _ = SUITE["transformer"]
    t = from_torch(factory(), shape)
    ids = t.model.node_ids
    for part in ("self_attn", "dropout1", "residual1", "norm1", "linear1", "activation", "linear2", "norm2"):
        assert f"encoder.layers.1.{part}" in ids
    layer = factory().encoder.layers[1]
    assert t.module_cost("encoder.layers.1").params == sum(p.numel() for p in layer.parameters())


def test_batch_is_put_back_and_batch_dim_is_respected():
    gru = nn.GRU(6, 5)  # time-major: batch at dim 1
    r = from_torch(gru, ("T", 6), batch_dim=1).cost()
    rb = from_torch(gru, ("T", 6), batch_dim=1).cost(batch="B")
    B = symcost.symbol("B")
    assert sympy.expand(rb.macs - B * r.macs) == 0
    assert rb.params == r.params
    with pytest.raises(SymcostError):  # the batch at dim 0 would make T the batch: nn.GRU reads it at dim 1
        from_torch(gru, ("T", 6), batch_dim=0)


def test_named_dims_by_index():
    lin = nn.Linear(12, 3)
    a = from_torch(lin, (7, 12), names={"T": 0}).cost()
    T = symcost.symbol("T")
    assert sympy.expand(a.macs - 36 * T) == 0


def test_import_symcost_does_not_import_torch():
    code = "import symcost, sys; assert 'torch' not in sys.modules; symcost.from_torch; " \
           "assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("bad", [None, -1, True, "0", 1.0])
def test_batch_dim_must_be_a_position(bad):
    with pytest.raises(symcost.SymcostError, match="batch_dim must be the position"):
        from_torch(nn.Linear(3, 2), (3,), batch_dim=bad)


def test_top_level_export():
    assert symcost.from_torch is from_torch


class Branchy(nn.Module):
    """fx cannot trace a branch on a size; the hook walk on the meta device can."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 16)
        self.out = nn.Linear(16, 3)
        self.scale = nn.Parameter(torch.ones(16))

    def forward(self, x):
        h = self.fc(x)
        if x.size(1) > 4:
            h = F.relu(h) * self.scale
        h = h.view(x.size(0), x.size(1), 4, 4).flatten(2)
        return self.out(h).softmax(-1)


def test_hook_walk_when_fx_cannot_trace():
    t = from_torch(Branchy(), ("T", 8))
    assert t.method == "hooks" and "hook walk" in t.notes[0]
    r = t.cost()
    assert r.params == sum(p.numel() for p in Branchy().parameters())
    T = symcost.symbol("T")
    assert sympy.expand(r.macs - T * (8 * 16 + 16 * 3)) == 0
    for n in (6, 11):  # the branch taken at the trace size (T > 4)
        plain = from_torch(Branchy(), (n, 8)).cost()
        assert r.subs(T=n).flops == plain.flops and plain.macs * BATCH == meta_macs(Branchy(), (n, 8), 0,
                                                                                       torch.float32)


def test_hook_walk_refuses_a_literal_read_as_a_named_size():
    class Literal(nn.Module):
        def forward(self, x):
            if x.size(1) > 1:  # fx cannot trace this
                x = x * 2
            return x.view(x.size(0), -1, 4).softmax(-1)  # the literal 4 equals T's trace value

    with pytest.raises(SymcostError, match="does not hold"):
        from_torch(Literal(), ("T", 8), sizes={"T": 4})
    T = symcost.symbol("T")
    r = from_torch(Literal(), ("T", 8), sizes={"T": 5}).cost()  # no coincidence: right
    assert r.subs(T=7).flops == from_torch(Literal(), (7, 8)).cost().flops


def test_cli_torch_and_convention(capsys):
    from symcost.cli import main

    assert main(["cost", "--torch", "models_torch:LSTMLanguageModel", "--input", "T=12", "--format", "json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["params"] == sum(p.numel() for p in SUITE["lstm_lm"][0]().parameters())
    assert "T" in out["macs"]
    assert main(["cost", "--torch", "models_torch:LeNet5", "--input", "1,32,32", "--convention", "torch",
                 "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total"] == meta_macs(SUITE["lenet5"][0](), (1, 32, 32), 0, torch.float32) * 2 // BATCH
    assert main(["cost", "--torch", "models_torch:LeNet5"]) == 2
    assert "--input" in capsys.readouterr().err
    assert main(["cost", "--torch", "models_torch:Nope", "--input", "3"]) == 2
    assert main(["cost", "lenet5", "--torch", "models_torch:LeNet5", "--input", "1,32,32"]) == 2
    assert main(["cost", "--torch", "models_torch:LeNet5", "--input", "1;32"]) == 2


# -- more mappings: cross-attention with a learned query expanded over the batch (time-major),
#    a bidirectional LSTM whose final state is read, Conv1d/BatchNorm1d/AvgPool1d with a
#    permuted matmul, F.scaled_dot_product_attention with a sliced mask buffer

class CrossAttentionPool(nn.Module):
    def __init__(s):
        super().__init__(); s.mem = nn.Linear(6, 16); s.att = nn.MultiheadAttention(16, 2, kdim=16, vdim=16); s.q = nn.Parameter(torch.zeros(4, 1, 16))
    def forward(s, x):  # time-major [T, B, 6]
        m = s.mem(x)
        q = s.q.expand(-1, x.size(1), -1)
        out, w = s.att(q, m, m, need_weights=False)
        return out.transpose(0, 1).flatten(1)
class BiLSTM(nn.Module):
    def __init__(s):
        super().__init__(); s.l = nn.LSTM(5, 7, num_layers=2, bidirectional=True, batch_first=True); s.fc = nn.Linear(14 + 7, 3)
    def forward(s, x):
        o, (h, c) = s.l(x)
        feat = torch.cat([o[:, -1], h[-1]], dim=-1)
        return s.fc(feat)
class Conv1dNet(nn.Module):
    def __init__(s):
        super().__init__(); s.c1 = nn.Conv1d(4, 8, 5, padding=2); s.bn = nn.BatchNorm1d(8); s.p = nn.AvgPool1d(2); s.c2 = nn.Conv1d(8, 8, 3, dilation=2, groups=2)
    def forward(s, x):
        h = s.p(F.relu(s.bn(s.c1(x))))
        h = s.c2(h)
        return (h.permute(0, 2, 1) @ h).softmax(dim=-1)
class SDPAMask(nn.Module):
    def __init__(s):
        super().__init__(); s.qkv = nn.Linear(8, 24); s.register_buffer("mask", torch.ones(32, 32).tril().bool())
    def forward(s, x):
        T = x.shape[1]
        q, k, v = s.qkv(x).unsqueeze(1).chunk(3, dim=-1)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=s.mask[:T, :T]).squeeze(1)

class SwiGLU(nn.Module):
    """PaLM's MLP: w2(silu(x w1) * (x w3)), no biases; the gate once as nn.SiLU, once as F.silu."""
    def __init__(s):
        super().__init__(); s.w1 = nn.Linear(6, 16, bias=False); s.w3 = nn.Linear(6, 16, bias=False); s.w2 = nn.Linear(16, 6, bias=False); s.act = nn.SiLU()
    def forward(s, x):
        h = s.w2(s.act(s.w1(x)) * s.w3(x))
        return F.silu(h)

class Reductions(nn.Module):
    """Mean-pooling over tokens, a keepdim sum, amax / amin over two dims, as methods and functions."""
    def __init__(s):
        super().__init__(); s.fc = nn.Linear(6, 4)
    def forward(s, x):                     # [B, T, 6]
        h = s.fc(x)                        # [B, T, 4]
        pooled = h.mean(dim=1)             # [B, 4]
        scale = torch.sum(h, dim=-1, keepdim=True)          # [B, T, 1]
        peak = (h * scale).amax(1) + torch.amin(h, dim=(1, 2), keepdim=True).squeeze(1)
        return pooled + peak
class TimeMajorMean(nn.Module):
    def __init__(s):
        super().__init__(); s.fc = nn.Linear(5, 3)
    def forward(s, x):                     # [T, B, 5]: the batch at dim 1, reduced past it
        return s.fc(x).mean(0)
class BranchyReductions(Reductions):
    def forward(s, x):
        return super().forward(x) if x.size(1) > 2 else x.sum(1)

MORE = {
    "reductions": (Reductions, ("T", 6), [{"T": 3}, {"T": 7}], 0),
    "reductions_time_major": (TimeMajorMean, ("T", 5), [{"T": 4}, {"T": 9}], 1),
    "reductions_hooks": (BranchyReductions, ("T", 6), [{"T": 3}, {"T": 7}], 0),
    "swiglu": (SwiGLU, ("T", 6), [{"T": 3}, {"T": 8}], 0),
    "cross_attention": (CrossAttentionPool, ("T", 6), [{"T": 5}, {"T": 9}], 1),
    "bilstm_state": (BiLSTM, ("T", 5), [{"T": 4}, {"T": 7}], 0),
    "conv1d": (Conv1dNet, (4, "L"), [{"L": 20}, {"L": 33}], 0),
    "sdpa_mask": (SDPAMask, ("T", 8), [{"T": 6}, {"T": 11}], 0),
}


@pytest.mark.parametrize("name", sorted(MORE))
def test_more_mappings_match_pytorch(name):
    factory, shape, size_list, bd = MORE[name]
    m = factory().eval()
    symbolic = from_torch(m, shape, sizes=size_list[0], batch_dim=bd).cost()
    for sizes in size_list:
        shp = concrete(shape, sizes)
        plain = from_torch(m, shp, batch_dim=bd).cost()
        assert plain.params == sum(p.numel() for p in m.parameters())
        assert plain.macs * BATCH == meta_macs(m, shp, bd, torch.float32)
        sub = symbolic.subs(sizes)
        assert sub.flops == plain.flops and sub.macs == plain.macs and sub.activations == plain.activations


class BatchedPaLMBlock(nn.Module):
    """PaLM's parallel block on [B, T, d]: multi-query attention through F.scaled_dot_product_attention
    (one key/value head broadcast over the query heads), SwiGLU with F.silu, no biases."""
    def __init__(s, d, h, dh):
        super().__init__(); s.h, s.dh = h, dh; s.ln = nn.LayerNorm(d, bias=False); s.q = nn.Linear(d, h * dh, bias=False); s.kv = nn.Linear(d, 2 * dh, bias=False); s.out = nn.Linear(h * dh, d, bias=False); s.gate = nn.Linear(d, 4 * d, bias=False); s.up = nn.Linear(d, 4 * d, bias=False); s.down = nn.Linear(4 * d, d, bias=False)
    def forward(s, x):
        B, T, _ = x.shape
        y = s.ln(x)
        q = s.q(y).view(B, T, s.h, s.dh).transpose(1, 2)
        k, v = s.kv(y).unsqueeze(1).chunk(2, dim=-1)
        heads = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, s.h * s.dh)
        return x + s.out(heads) + s.down(F.silu(s.gate(y)) * s.up(y))
class BatchedPaLM(nn.Module):
    def __init__(s, L=2, d=8, h=2, dh=4, V=11):
        super().__init__(); s.wte = nn.Embedding(V, d); s.blocks = nn.ModuleList(BatchedPaLMBlock(d, h, dh) for _ in range(L)); s.ln_f = nn.LayerNorm(d, bias=False); s.head = nn.Linear(d, V, bias=False); s.head.weight = s.wte.weight
    def forward(s, idx):
        x = s.wte(idx)
        for b in s.blocks:
            x = b(x)
        return s.head(s.ln_f(x))


def traced_equals_spec(module, name, sizes, extra_activations=0):
    """Two independent routes to one count: ``module`` traced by from_torch (tokens [T]) and the
    built-in ``name`` at ``sizes``; every total equal (activations up to ``extra_activations``)."""
    m = module.eval()
    traced = from_torch(m, ("T",), sizes={"T": 5}).cost()
    spec = symcost.load(name).cost().subs(sizes)
    assert traced.params == spec.params == sum(p.numel() for p in m.parameters())
    for field in ("macs", "flops", "fma_ops"):
        assert sympy.expand(getattr(traced, field) - getattr(spec, field)) == 0, field
    assert sympy.expand(traced.activations - spec.activations - extra_activations) == 0


def test_from_torch_palm_equals_the_zoo_spec():
    """PaLM's activations differ only by PyTorch's x + a + b being two adds (one [T, d] intermediate)."""
    traced_equals_spec(BatchedPaLM(), "palm", dict(n_layer=2, d_model=8, n_head=2, d_head=4, n_vocab=11),
                       extra_activations=2 * 8 * symcost.symbol("T"))


def repeat_kv(x, n_rep):
    """Hugging Face Llama's grouped-query helper: [B, kv, T, dh] -> [B, kv·n_rep, T, dh]."""
    B, kv, T, dh = x.shape
    return x if n_rep == 1 else x[:, :, None, :, :].expand(B, kv, n_rep, T, dh).reshape(B, kv * n_rep, T, dh)
class BatchedLlamaBlock(nn.Module):
    def __init__(s, d, h, kv, dff):
        super().__init__(); s.h, s.kv, s.dh = h, kv, d // h; s.attn_norm = nn.RMSNorm(d, eps=1e-5); s.q = nn.Linear(d, d, bias=False); s.k = nn.Linear(d, kv * s.dh, bias=False); s.v = nn.Linear(d, kv * s.dh, bias=False); s.o = nn.Linear(d, d, bias=False); s.mlp_norm = nn.RMSNorm(d, eps=1e-5); s.gate = nn.Linear(d, dff, bias=False); s.up = nn.Linear(d, dff, bias=False); s.down = nn.Linear(dff, d, bias=False)
    def forward(s, x):
        B, T, d = x.shape
        y = s.attn_norm(x)
        q = s.q(y).view(B, T, s.h, s.dh).transpose(1, 2)
        k = repeat_kv(s.k(y).view(B, T, s.kv, s.dh).transpose(1, 2), s.h // s.kv)
        v = repeat_kv(s.v(y).view(B, T, s.kv, s.dh).transpose(1, 2), s.h // s.kv)
        h = x + s.o(F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, d))
        z = s.mlp_norm(h)
        return h + s.down(F.silu(s.gate(z)) * s.up(z))
class BatchedLlama(nn.Module):
    def __init__(s, L=2, d=12, h=6, kv=2, dff=20, V=11):
        super().__init__(); s.embed = nn.Embedding(V, d); s.layers = nn.ModuleList(BatchedLlamaBlock(d, h, kv, dff) for _ in range(L)); s.norm = nn.RMSNorm(d, eps=1e-5); s.lm_head = nn.Linear(d, V, bias=False)
    def forward(s, idx):
        x = s.embed(idx)
        for layer in s.layers:
            x = layer(x)
        return s.lm_head(s.norm(x))


def test_from_torch_llama_equals_the_zoo_spec():
    """Hugging Face's way of writing grouped-query attention (repeat_kv: expand, reshape) and
    nn.RMSNorm, traced, against symcost/zoo/llama.yaml: every total equal."""
    traced_equals_spec(BatchedLlama(), "llama", dict(n_layer=2, d_model=12, n_head=6, n_kv_head=2, d_ff=20, n_vocab=11))


class BranchySwiGLU(SwiGLU):
    def forward(s, x):
        return super().forward(x) if x.size(0) > 2 else x


@pytest.mark.parametrize("factory,method", [(SwiGLU, "fx"), (BranchySwiGLU, "hooks")])
def test_silu_module_and_function_map_to_silu(factory, method):
    t = from_torch(factory().eval(), (5, 6))
    assert t.method == method
    report = t.cost()
    ops_ = [row.op for row in report.rows]
    assert ops_.count("silu") == 2 and "mul" in ops_
    # x/(1 + exp(-x)): one exp, one add and one div per element, 5·16 and 5·6 elements
    assert report.ops.get("exp") == 5 * 16 + 5 * 6


def test_reductions_are_mapped_per_sample():
    t = from_torch(BranchyReductions(), ("T", 6), sizes={"T": 5})
    assert t.method == "hooks"
    ops_ = [row.op for row in from_torch(Reductions(), ("T", 6)).cost().rows]
    assert {"mean", "sum", "amax", "amin"} <= set(ops_)
    T = symcost.symbol("T")
    r = from_torch(TimeMajorMean(), ("T", 5), batch_dim=1).cost()
    assert r.output_shapes == [(3,)] and sympy.expand(r.ops["div"] - 3) == 0
    assert sympy.expand(r.ops["add"] - (3 * (T - 1) + T * 3 * 5)) == 0  # the mean's folds + the linear's


class SumsTheBatch(nn.Module):
    def forward(s, x):
        return x.sum()
class MeansOverTheBatch(nn.Module):
    def forward(s, x):
        return x.mean(0)


@pytest.mark.parametrize("factory,words", [(SumsTheBatch, "every dim"), (MeansOverTheBatch, "batch dimension")])
def test_reductions_across_the_batch_are_refused(factory, words):
    with pytest.raises(symcost.SymcostError, match=words):
        from_torch(factory(), (4,))


def test_cli_symbolic_hyperparameter_and_convention_on_a_spec(capsys):
    import json

    from symcost.cli import main

    assert main(["cost", "--torch", "models_torch:LSTMLanguageModel", "--input", "T=6",
                 "--symbolic", "hidden_size=H", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "H" in out["params"] and "T" in out["macs"]
    assert main(["cost", "--torch", "models_torch:LSTMLanguageModel", "--input", "T=6",
                 "--symbolic", "hidden=H"]) == 2
    assert "hidden" in capsys.readouterr().err
    assert main(["cost", "lenet5", "--convention", "fvcore", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["unit"] == "MAC" and out["total"] == 416520  # the notes' LeNet-5: MACs only
    assert main(["cost", "lenet5", "--input", "3"]) == 2


def test_meta_copy_keeps_weights_tied_and_leaves_the_module_alone():
    from symcost.torch_bridge import meta_copy

    m = SUITE["gpt"][0]()
    before = m.head.weight.data_ptr()
    meta = meta_copy(torch, m)
    assert meta.head.weight is meta.tok.weight and meta.head.weight.is_meta
    assert m.head.weight.data_ptr() == before and not m.head.weight.is_meta


def test_symbolic_by_argument_path_replaces_that_argument_only():
    mlp = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    t = from_torch(mlp, (10,), symbolic={"0.out_features": "D"})
    assert t.mapping == {"D": ["0.out_features"]}
    # layer 2 reads D from its input but keeps its own width 64
    D = symcost.symbol("D")
    assert sympy.expand(t.cost().params - (10 * D + D + 64 * D + 64 + 64 * 3 + 3)) == 0
    with pytest.raises(SymbolError, match="both"):  # one name for two different values
        from_torch(mlp, (10,), symbolic={"0.out_features": "D", "4.out_features": "D"})


def flatten_head():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 14 * 14, 10))


def test_a_layer_built_for_a_fixed_size_refuses_a_named_one_in_one_line(capsys):
    """The Linear after Flatten has 784 inputs whatever H and W are: a formula in H and W would
    count modules the user does not have (40·(H−2)·(W−2) + 10 parameters, exit 0, is what it gave).
    Python gets the CLI's message, with the example as an input_shape; nothing is printed."""
    with pytest.raises(SymcostError) as info:
        from_torch(flatten_head(), (1, "H", "W"), name="head")
    assert str(info.value) == ("head: layer '2' (Linear, in_features=784) has weights for a fixed input size, 784, "
                               "but gets 4*(H - 2)*(W - 2), which varies with H and W: give H and W numbers, "
                               "e.g. input_shape (1, 16, 16)")
    assert capsys.readouterr() == ("", "")
    # the example is one that fits: the module's own count there
    r = from_torch(flatten_head(), (1, 16, 16)).cost()
    assert r.params == sum(p.numel() for p in flatten_head().parameters())
    # a trace size that does not fit (16 for a 28×28 head): the example is still the fitting size,
    # and no internal value (the trace batch 3, 16×16) is named
    mnist = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
    with pytest.raises(SymcostError, match=r"e\.g\. input_shape \(1, 28, 28\)") as info:
        from_torch(mnist, (1, "H", "W"))
    assert "16" not in str(info.value) and "batch" not in str(info.value)
    assert capsys.readouterr() == ("", "")


def test_a_named_feature_size_cannot_resize_fixed_weights():
    mlp = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    with pytest.raises(SymcostError, match=r"layer '0' \(Linear, in_features=64\) .* gets the named size D: "
                                           r"give D a number, e.g\. input_shape \(64,\)"):
        from_torch(mlp, ("D",), sizes={"D": 64})
    # a width made symbolic on purpose still follows into the next layer's in_features
    t = from_torch(mlp, (64,), symbolic={32: "H"})
    H = symcost.symbol("H")
    assert sympy.expand(t.cost().params - (64 * H + H + 10 * H + 10)) == 0


def test_a_module_that_does_not_run_is_one_error_and_prints_nothing(capsys):
    """torch.fx's ShapeProp printed a 40-line traceback (traceback.print_exc) before the error."""
    with pytest.raises(SymcostError, match=r"layer 'linear' \(Linear, in_features=3\) gets an input of shape \[4\]"):
        from_torch(nn.Linear(3, 4), (4,))
    assert capsys.readouterr() == ("", "")

    class Cat(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 6)

        def forward(self, x):
            return torch.cat([self.fc(x), x], dim=0)

    with pytest.raises(SymcostError, match=r"torch\.cat at 'cat' does not run on one sample's inputs of shape "
                                           r"\[6\], \[4\]: RuntimeError: Sizes of tensors must match"):
        from_torch(Cat(), (4,))
    assert capsys.readouterr() == ("", "")


def test_any_parameter_count_that_follows_a_named_size_is_refused():
    """The layers with a named input size (in_features, in_channels, ...) are checked by name; any
    other weight whose count would follow a named size (nn.MultiheadAttention's kdim) is refused too."""
    class Cross(nn.Module):
        def __init__(self):
            super().__init__()
            self.att = nn.MultiheadAttention(16, 2, kdim=8, vdim=8, batch_first=True)

        def forward(self, q, kv):
            return self.att(q, kv, kv, need_weights=False)[0]

    r = from_torch(Cross(), {"q": ("T", 16), "kv": ("S", 8)}).cost()
    assert r.params == sum(p.numel() for p in Cross().parameters())
    with pytest.raises(SymcostError, match=r"layer 'att' \(multihead_attention\) would have 32\*K \+ 576 parameters, "
                                           r"which varies with K, .*: give K a number"):
        from_torch(Cross(), {"q": ("T", 16), "kv": ("S", "K")}, sizes={"K": 8})
