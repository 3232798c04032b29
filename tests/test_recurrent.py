"""rnn, lstm and gru against PyTorch (params, output shapes, MACs where FlopCounterMode sees them)
and the brute-force cells of tests/bruteforce.py (ops, flops, fma_ops, MACs where it does not)."""

import random

import pytest
import sympy

import symcost
from symcost import ShapeError, SpecError
from symcost.sizes import symbol

import torch
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import bruteforce as bf  # noqa: E402

TORCH = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
BRUTE = {"rnn": bf.rnn, "lstm": bf.lstm, "gru": bf.gru}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
KINDS = list(TORCH)

# T, I, H, num_layers, bias, bidirectional
CONFIGS = [
    (5, 3, 4, 1, True, False),
    (4, 6, 2, 1, False, False),
    (3, 2, 5, 2, True, False),
    (4, 3, 2, 1, True, True),
    (3, 4, 3, 3, False, True),
    (2, 1, 1, 2, True, True),
]
SMALL = [(T, I, H, L, b, d) for T, I, H, L, b, d in CONFIGS if T * (I + H) * H * L <= 80]


def report(kind, T, I, H, L, bias, bidirectional, **extra):
    m = symcost.Model(kind, inputs={"x": [T, I]})
    m.add(kind, hidden_size=H, num_layers=L, bias=bias, bidirectional=bidirectional, **extra)
    return m.cost()


def module(kind, I, H, L, bias, bidirectional, **extra):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return TORCH[kind](I, H, num_layers=L, bias=bias, bidirectional=bidirectional, **extra).double().eval()


def hand_macs(kind, T, I, H, L, bidirectional):
    """gates × (n·H + H·H) per step and direction, n = I for layer 1 and D·H above it."""
    D = 2 if bidirectional else 1
    total = 0
    for layer in range(L):
        n = I if layer == 0 else D * H
        total += GATES[kind] * (n * H + H * H) * T * D
    return total


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("T,I,H,L,bias,bidirectional", CONFIGS)
def test_params_shape_and_macs_against_torch_and_hand_formula(kind, T, I, H, L, bias, bidirectional):
    r = report(kind, T, I, H, L, bias, bidirectional)
    m = module(kind, I, H, L, bias, bidirectional)
    assert r.params == sum(p.numel() for p in m.parameters())
    out, _ = m(torch.randn(T, I, dtype=torch.float64))
    assert r.output_shapes == [tuple(out.shape)]
    assert r.macs == hand_macs(kind, T, I, H, L, bidirectional)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("T,I,H,L,bias,bidirectional", CONFIGS)
def test_macs_against_flop_counter(kind, T, I, H, L, bias, bidirectional):
    """FlopCounterMode sees the matrix products of the float64 modules (2 FLOPs per MAC).

    It does not see float32 nn.LSTM on the CPU (PyTorch 2.x reports 0: a fused kernel without a
    FLOP formula); symcost's LSTM MACs are also checked against the brute-force cell's FMAs below.
    """
    m = module(kind, I, H, L, bias, bidirectional)
    with FlopCounterMode(display=False) as counter:
        m(torch.randn(T, I, dtype=torch.float64))
    assert 2 * report(kind, T, I, H, L, bias, bidirectional).macs == counter.get_total_flops()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("T,I,H,L,bias,bidirectional", SMALL)
def test_ops_flops_fma_against_bruteforce(kind, T, I, H, L, bias, bidirectional):
    r = report(kind, T, I, H, L, bias, bidirectional)
    m = module(kind, I, H, L, bias, bidirectional)
    x = torch.randn(T, I, dtype=torch.float64)
    params = dict(m.named_parameters())
    out, plain = BRUTE[kind](x, params)
    expected, _ = m(x)
    assert torch.allclose(torch.from_numpy(out), expected.detach(), rtol=1e-9, atol=1e-11)
    _, fused = BRUTE[kind](x, params, fma=True)
    assert plain["fma"] == 0
    for k in symcost.OP_KINDS:
        assert r.ops.get(k, 0) == plain[k], k
    assert r.flops == sum(plain.values())
    assert r.fma_ops == sum(fused.values())
    # In fused mode every dot-product term is one FMA: that is the MAC count, for the LSTM too.
    assert r.macs == fused["fma"]


@pytest.mark.parametrize("L", [1, 2])
def test_rnn_relu_against_bruteforce(L):
    r = report("rnn", 3, 2, 3, L, True, False, nonlinearity="relu")
    m = module("rnn", 2, 3, L, True, False, nonlinearity="relu")
    x = torch.randn(3, 2, dtype=torch.float64)
    out, counts = bf.rnn(x, dict(m.named_parameters()), nonlinearity="relu")
    assert torch.allclose(torch.from_numpy(out), m(x)[0].detach())
    assert r.ops.get("tanh", 0) == 0
    for k in symcost.OP_KINDS:
        assert r.ops.get(k, 0) == counts[k], k


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_activations_keep_every_hidden_state(kind, bidirectional):
    """h_t of every step, layer and direction (the outputs of the layers run one at a time),
    and c_t as well for the LSTM."""
    T, I, H, L = 4, 3, 5, 3
    x = torch.randn(T, I, dtype=torch.float64)
    kept = 0
    for _ in range(L):
        x, _ = module(kind, x.shape[-1], H, 1, True, bidirectional)(x)
        kept += x.numel()
    states = 2 if kind == "lstm" else 1
    assert report(kind, T, I, H, L, True, bidirectional).activations == states * kept


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_symbolic_form_substitutes_to_the_concrete_counts(kind, bidirectional, bias):
    T, I, H, L = (symbol(n) for n in "TIHL")
    m = symcost.Model(kind, inputs={"x": [T, I]})
    m.add(kind, hidden_size=H, num_layers=L, bias=bias, bidirectional=bidirectional)
    general = m.cost()
    rng = random.Random(f"{kind}{bidirectional}{bias}")
    for _ in range(3):
        v = {n: rng.randint(1, 40) for n in "TIH"} | {"L": rng.randint(1, 5)}
        concrete = report(kind, v["T"], v["I"], v["H"], v["L"], bias, bidirectional)
        sub = general.subs(**v)
        for field in ("params", "activations", "macs", "flops", "fma_ops", "steps"):
            assert getattr(sub, field) == getattr(concrete, field), field
        for k in symcost.OP_KINDS:
            assert sub.ops.get(k, 0) == concrete.ops.get(k, 0), k
        assert sub.output_shapes == concrete.output_shapes


def test_seed_elman_cell_is_i_h_plus_h_h_times_t():
    T, I, H = (symbol(n) for n in "TIH")
    m = symcost.Model("elman", inputs={"x": [T, I]})
    m.add("rnn", hidden_size=H, bias=False)
    r = m.cost()
    assert sympy.expand(r.macs - (I * H + H * H) * T) == 0
    assert sympy.expand(r.params - (I * H + H * H)) == 0


def test_errors_are_one_line_and_name_the_layer():
    m = symcost.Model("bad", inputs={"x": [2, 5, 3]})
    m.add("lstm", hidden_size=4, id="enc")
    with pytest.raises(ShapeError, match=r"layer 'enc'.*rank 2"):
        m.cost()
    m = symcost.Model("bad", inputs={"x": [5, 3]})
    m.add("gru", hidden_size=4, input_size=4, id="enc")
    with pytest.raises(ShapeError, match=r"layer 'enc'.*input_size 4"):
        m.cost()
    m = symcost.Model("bad", inputs={"x": [5, 3]})
    with pytest.raises(SpecError, match="nonlinearity"):
        m.add("rnn", hidden_size=4, nonlinearity="sigmoid")
    with pytest.raises(SpecError, match="proj_size"):
        m.add("lstm", hidden_size=4, proj_size=2)
    with pytest.raises(SpecError, match="hidden_size"):
        m.add("rnn")


def test_input_size_given_and_consistent_is_accepted():
    m = symcost.Model("ok", inputs={"x": ["T", "I"]})
    m.add("lstm", hidden_size="H", input_size="I")
    assert m.cost().output_shapes == [(symbol("T"), symbol("H"))]
