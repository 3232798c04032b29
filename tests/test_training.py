"""Training cost: forward + backward (+ recomputation) MACs against FlopCounterMode on a
real training step of GPT-2-shaped torch modules, optimizer state against torch.optim's own
state tensors, mixed-precision bytes against ZeRO's 16 bytes per parameter."""

import json

import pytest
import sympy

import symcost
from symcost.cli import main
from symcost.sizes import symbol
from symcost.training import training

import torch
from torch.utils.checkpoint import checkpoint, set_checkpoint_early_stop  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from test_transformers import GPT2, nparams  # noqa: E402

CONFIGS = [(1, 8, 2, 11, 6, 5), (2, 12, 3, 7, 9, 9), (3, 8, 4, 5, 4, 3)]


def gpt2(**values):
    return symcost.load("gpt2").cost().subs(values)


class CheckpointedGPT2(GPT2):
    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[0]))
        for block in self.h:
            x = checkpoint(block, x, use_reentrant=False)
        return self.lm_head(self.ln_f(x))


def step_flops(m, idx):
    # no early stop: the whole block is recomputed (PyTorch otherwise stops once the tensors
    # backward needs are back, skipping a block's last linear)
    with set_checkpoint_early_stop(False), FlopCounterMode(display=False) as counter:
        m(idx).sum().backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("L,d,h,V,n_ctx,T", CONFIGS)
def test_training_step_macs_against_flop_counter(L, d, h, V, n_ctx, T):
    r = gpt2(n_layer=L, d_model=d, n_head=h, n_vocab=V, n_ctx=n_ctx, T=T)
    torch.manual_seed(0)
    idx = torch.randint(0, V, (T,))
    t = training(r)
    assert t.backward_macs == 2 * t.forward_macs == 2 * r.macs
    assert 2 * t.macs == step_flops(GPT2(L, d, h, V, n_ctx), idx)


@pytest.mark.parametrize("L,d,h,V,n_ctx,T", CONFIGS)
def test_recomputation_against_checkpointed_torch(L, d, h, V, n_ctx, T):
    r = gpt2(n_layer=L, d_model=d, n_head=h, n_vocab=V, n_ctx=n_ctx, T=T)
    torch.manual_seed(0)
    t = training(r, recompute=True)
    assert 2 * t.macs == step_flops(CheckpointedGPT2(L, d, h, V, n_ctx), torch.randint(0, V, (T,)))
    # the blocks run 4 times (forward, recomputation, two backward products), the head 3 times
    blocks = r.layer("h").macs
    assert t.macs == 4 * blocks + 3 * (r.macs - blocks)


def test_per_token_is_per_sequence_over_tokens_symbolically():
    r = symcost.load("gpt2").cost(batch="B")
    t = training(r)
    B, T = symbol("B"), symbol("T")
    assert sympy.expand(t.flops_per_token * B * T - t.flops) == 0
    assert sympy.expand(t.macs - 3 * r.macs) == 0


@pytest.mark.parametrize("optimizer,make,k", [
    ("sgd", lambda p: torch.optim.SGD(p, lr=0.1), 0),
    ("momentum", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), 1),
    ("adam", lambda p: torch.optim.Adam(p, lr=0.1), 2),
])
def test_optimizer_state_against_torch(optimizer, make, k):
    L, d, h, V, n_ctx, T = CONFIGS[1]
    m = GPT2(L, d, h, V, n_ctx)
    opt = make(m.parameters())
    m(torch.randint(0, V, (T,))).sum().backward()
    opt.step()
    state = sum(v.numel() for s in opt.state.values() for name, v in s.items()
                if torch.is_tensor(v) and name != "step")
    t = training(gpt2(n_layer=L, d_model=d, n_head=h, n_vocab=V, n_ctx=n_ctx, T=T), optimizer=optimizer)
    assert state == k * nparams(m)
    assert t.memory["optimizer_state"] == 4 * state
    assert t.memory["weights"] == t.memory["gradients"] == 4 * nparams(m)


def test_mixed_precision_adam_is_zero_16_bytes_per_parameter():
    """Rajbhandari et al. 2020 (ZeRO): 2Ψ + 2Ψ + KΨ bytes with K = 12 for mixed-precision Adam."""
    r = symcost.load("gpt2").cost()
    t = training(r, optimizer="adam", mixed_precision=True)
    P = r.params
    states = ("weights", "gradients", "master_weights", "optimizer_state")
    assert sympy.expand(sum(t.memory[k] for k in states) - 16 * P) == 0
    assert sympy.expand(t.memory["master_weights"] + t.memory["optimizer_state"] - 12 * P) == 0
    assert sympy.expand(t.memory["activations"] - 2 * r.activations) == 0


def test_recomputation_keeps_block_inputs_and_one_block():
    r = symcost.load("gpt2").cost()
    L, T, d = symbol("n_layer"), symbol("T"), symbol("d_model")
    one_block = r.layer("h").children.activations
    full = training(r).memory["activations"]
    ckpt = training(r, recompute=True).memory["activations"]
    assert sympy.expand(full - ckpt - 4 * ((L - 1) * one_block - L * T * d)) == 0
    assert ckpt.free_symbols and sympy.degree(sympy.expand(ckpt), L) == 1


def test_unknown_optimizer_or_token_size_is_refused():
    with pytest.raises(symcost.SymcostError, match="adam"):
        training(symcost.load("gpt2").cost(), optimizer="adma")
    with pytest.raises(symcost.SymcostError, match="not a size of the model"):
        training(symcost.load("gpt2").cost(), tokens="tokens")


def test_cli_train(capsys):
    argv = ["train", "gpt2", "--set", "n_layer=2", "--set", "d_model=8", "--set", "n_head=2", "--set", "n_vocab=11",
            "--set", "n_ctx=6", "--set", "T=5", "--optimizer", "momentum", "--mixed-precision", "--recompute",
            "--format", "json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    t = training(gpt2(n_layer=2, d_model=8, n_head=2, n_vocab=11, n_ctx=6, T=5), optimizer="momentum",
                 mixed_precision=True, recompute=True)
    assert out["macs"]["total"] == t.macs and out["memory_bytes"]["total"] == t.memory["total"]
    assert main(["train", "gpt2", "--optimizer", "adamw"]) == 2
    assert "adam" in capsys.readouterr().err
