"""Conventions by name: each installed peer's own number, reproduced from symcost's layer costs.

The peers (fvcore, ptflops, thop, torchinfo) are the optional `peers` extra; a test that
needs one is skipped, with the reason, when it is absent.  FlopCounterMode comes with torch.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings

import pytest
import sympy

import torch
nn = torch.nn
F = torch.nn.functional

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import symcost  # noqa: E402
from models_torch import SUITE, GPT, LeNet5, LSTMLanguageModel, ResNetish, TransformerEncoderNet, VGGish  # noqa: E402
from symcost import conventions  # noqa: E402
from symcost.errors import SymcostError  # noqa: E402
from symcost.torch_bridge import from_torch  # noqa: E402

#: The scaling papers' conventions: counts of a transformer (docs/transformers.md).
PAPERS = {"kaplan", "chinchilla", "megatron", "palm"}


class MHA(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(32, 4, batch_first=True)

    def forward(self, x):
        return self.attn(x, x, x, need_weights=False)[0]


class LSTMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(20, 30, num_layers=2, batch_first=True)

    def forward(self, x):
        return self.lstm(x)[0]


class GroupedStridedConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=4)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x):
        return self.up(x)


class SiLUPool(nn.Module):
    """nn.SiLU and F.silu, and the reductions as methods and functions (mean-pooling over tokens)."""
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(12, 10)
        self.act = nn.SiLU()
        self.out = nn.Linear(10, 4)

    def forward(self, x):                  # [B, T, 12]
        h = F.silu(self.act(self.fc(x)))
        pooled = h.mean(dim=1) + torch.sum(h, dim=1) + h.amax(1) - torch.amin(h, dim=1)
        return self.out(pooled)


class RMSNormNet(nn.Module):
    """LLaMA's norm between two linear layers."""
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(12, 10)
        self.norm = nn.RMSNorm(10, eps=1e-6)
        self.out = nn.Linear(10, 4, bias=False)

    def forward(self, x):
        return self.out(self.norm(self.fc(x)))


#: the issue's four (LeNet-5, an LSTM, multi-head attention, a grouped strided conv) and more
CASES = {
    "lenet5": (LeNet5, (1, 32, 32), torch.float32),
    "lstm": (LSTMNet, (7, 20), torch.float32),
    "mha": (MHA, (9, 32), torch.float32),
    "grouped_conv": (GroupedStridedConv, (8, 15, 13), torch.float32),
    "conv_transpose": (Upsample, (16, 6, 5), torch.float32),
    "vgg": (VGGish, (3, 16, 16), torch.float32),
    "resnet": (ResNetish, (3, 16, 16), torch.float32),
    "transformer": (TransformerEncoderNet, (6, 24), torch.float32),
    "gpt": (GPT, (8,), torch.long),
    "lstm_lm": (LSTMLanguageModel, (6,), torch.long),
    "silu_pool": (SiLUPool, (7, 12), torch.float32),
    "rmsnorm": (RMSNormNet, (5, 12), torch.float32),
}


def _quiet(fn):
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            return fn()
    finally:
        logging.disable(logging.NOTSET)


def run_fvcore(m, x):
    import fvcore.nn as fvcore_nn

    def go():
        fa = fvcore_nn.FlopCountAnalysis(m, (x,))
        fa.unsupported_ops_warnings(False)
        fa.uncalled_modules_warnings(False)
        return fa.total()
    return _quiet(go)


def run_ptflops(m, x):
    import ptflops
    return _quiet(lambda: ptflops.get_model_complexity_info(
        m, tuple(x.shape[1:]), as_strings=False, print_per_layer_stat=False,
        input_constructor=lambda _: x, backend="pytorch")[0])


def run_thop(m, x):
    import thop
    return int(_quiet(lambda: thop.profile(copy.deepcopy(m), inputs=(x,), verbose=False)[0]))


def run_torchinfo(m, x):
    import torchinfo
    return _quiet(lambda: torchinfo.summary(m, input_data=[x], verbose=0).total_mult_adds)


PEERS = {"fvcore": run_fvcore, "ptflops": run_ptflops, "thop": run_thop, "torchinfo": run_torchinfo}


@pytest.mark.parametrize("peer", sorted(PEERS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_each_installed_peer_is_reproduced(peer, case):
    factory, shape, dtype = CASES[case]
    torch.manual_seed(0)
    m = factory().eval()
    x = torch.zeros((1,) + shape, dtype=dtype)
    theirs = PEERS[peer](m, x)
    report = from_torch(m, shape, input_dtype=dtype).cost()
    assert conventions.count(report, peer).total == int(theirs)


def test_ptflops_divides_a_time_major_model_by_T():
    """ptflops' batch counter is len(input) = the input's first dim: T for a time-major RNN."""
    gru = nn.GRU(6, 10)
    T = 9
    theirs = run_ptflops(gru, torch.zeros(T, 1, 6))
    r = from_torch(gru, ("T", 6), batch_dim=1).cost()
    per_sample = conventions.count(r, "ptflops").total
    assert sympy.expand(per_sample.subs(symcost.symbol("T"), T) / T - theirs) == 0


@pytest.mark.parametrize("name", sorted(SUITE))
def test_torch_convention_is_flopcountermode_on_meta(name):
    factory, shape, sizes, batch_dim, dtype = SUITE[name]
    m = factory().eval()
    concrete = tuple(sizes[0].get(d, d) if isinstance(d, str) else d for d in shape)
    full = list(concrete[:batch_dim]) + [1] + list(concrete[batch_dim:])
    meta = copy.deepcopy(m).to("meta")
    with FlopCounterMode(display=False) as counter:
        meta(torch.zeros(full, dtype=dtype, device="meta"))
    r = from_torch(m, concrete, batch_dim=batch_dim).cost()
    assert conventions.count(r, "torch").total == counter.get_total_flops()


def test_torch_cpu_convention_has_flopcountermodes_lstm_zero():
    m = LSTMNet().eval()
    with FlopCounterMode(display=False) as counter:
        m(torch.zeros(1, 7, 20))
    r = from_torch(m, (7, 20)).cost()
    assert conventions.count(r, "torch_cpu").total == counter.get_total_flops() == 0
    assert conventions.count(r, "torch").total == 2 * r.macs > 0


@pytest.mark.parametrize("case", ["mha", "transformer", "gpt", "lstm", "lenet5"])
def test_torch_cpu_convention_is_flopcountermode_on_the_cpu(case):
    factory, shape, dtype = CASES[case]
    m = factory().eval()
    with FlopCounterMode(display=False) as counter:  # autograd on: no fused fast path
        m(torch.zeros((1,) + shape, dtype=dtype))
    r = from_torch(m, shape, input_dtype=dtype).cost()
    assert conventions.count(r, "torch_cpu").total == counter.get_total_flops()


def test_conventions_are_symbolic_and_substitute_to_the_concrete_count():
    for name in ("transformer", "lstm_lm", "gpt"):
        factory, shape, sizes, bd, _ = SUITE[name]
        m = factory().eval()
        sym = from_torch(m, shape, batch_dim=bd).cost()
        for conv in conventions.CONVENTIONS:
            if conv in PAPERS and name == "lstm_lm":   # a transformer's count: refused for an LSTM
                with pytest.raises(SymcostError, match="no attention layer"):
                    conventions.count(sym, conv)
                continue
            formula = conventions.count(sym, conv).total
            for s in sizes:
                concrete = tuple(s.get(d, d) if isinstance(d, str) else d for d in shape)
                want = conventions.count(from_torch(m, concrete, batch_dim=bd).cost(), conv).total
                assert sympy.expand(sympy.sympify(formula).subs(symcost.symbol("T"), s["T"]) - want) == 0, conv


def test_exact_symcost_and_macs_are_the_contract():
    r = symcost.load("lenet5").cost()
    assert conventions.count(r, "exact").total == r.flops == conventions.count(r, "symcost").total
    assert conventions.count(r, "macs").total == r.macs
    rb = symcost.load("lenet5").cost(batch=4)
    assert conventions.count(rb, "torch").total == 4 * conventions.count(r, "torch").total


def test_a_spec_model_counts_its_layers_as_the_nn_modules():
    r = symcost.load("lenet5").cost()  # relu layers from a spec count as nn.ReLU
    ptf = conventions.count(r, "ptflops").total
    relus = [row for row in r.rows if row.op == "relu"]
    assert ptf > r.macs and len(relus) == 4


def test_unknown_convention_names_the_known_ones():
    r = symcost.load("lenet5").cost()
    with pytest.raises(SymcostError, match="did you mean 'fvcore'"):
        conventions.count(r, "fvcor")


def test_per_layer_rows_sum_to_the_total():
    r = from_torch(ResNetish(), (3, 16, 16)).cost()
    for name in set(conventions.CONVENTIONS) - PAPERS:   # the papers' are refused for a CNN
        c = conventions.count(r, name)
        assert sum(v for _, _, v in c.rows) == c.total


# --------------------------------------------------------------------------- where a convention applies

ZOO = symcost.spec.builtin_names()
#: The zoo's transformers: what the papers' conventions count (an attention layer, and no product
#: outside linear layers and attention).
TRANSFORMERS = {"attention", "bert", "cross_attention", "gpt2", "llama", "palm", "transformer_encoder",
                "transformer_lm"}


@pytest.mark.parametrize("model", ZOO)
def test_every_convention_on_every_zoo_model_counts_or_refuses(model):
    """Never a silent 0 for a model that computes: a nonzero count, a refusal naming what the
    convention needs, or (a tool that sees none of the model's layers) a 0 with a note saying so."""
    r = symcost.load(model).cost()
    assert r.macs != 0
    for name in conventions.CONVENTIONS:
        if name in PAPERS and model not in TRANSFORMERS:
            with pytest.raises(SymcostError, match="counts a transformer") as err:
                conventions.count(r, name)
            assert r.name in str(err.value) and "--convention symcost" in str(err.value)
            continue
        c = conventions.count(r, name)
        assert c.total != 0 or c.note, (model, name)
        if c.total == 0:
            assert "the total is 0" in c.note and "counts nothing" in c.note, c.note


def test_a_paper_convention_on_a_model_it_does_not_fit_is_one_line():
    from symcost.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["cost", "rnn", "--convention", "palm"])
    assert code == 2 and out.getvalue() == "" and err.getvalue().count("\n") == 1
    assert "'palm'" in err.getvalue() and "RNN has no attention layer" in err.getvalue()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["cost", "lenet5", "--convention", "kaplan"])
    assert code == 2


def test_a_transformer_with_a_product_the_papers_do_not_count_is_refused():
    """A convolution in front of attention: kaplan has no rule for it, so its total would miss it."""
    m = symcost.Model("conv front", inputs={"x": [8, "T"]})
    m.add("conv1d", out_channels=8, kernel_size=3, padding="same", id="conv")
    m.add("transpose", dim0=0, dim1=1)
    m.add("multihead_attention", num_heads=2)
    with pytest.raises(SymcostError, match=r"products its rules do not count: layer 'conv' \(conv1d\)"):
        conventions.count(m.cost(), "kaplan")


def test_a_tool_that_counts_nothing_says_so():
    """fvcore has no handle for aten::lstm (docs/peers.md): its 0 is reported, with a note."""
    from symcost.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["cost", "lstm", "--convention", "fvcore"]) == 0
    text = out.getvalue()
    (total,) = [line for line in text.splitlines() if line.startswith("total")]
    assert total.split()[-1] == "0"
    assert " ".join(text.split("note: ")[1].split()).startswith("the total is 0: fvcore counts nothing")
    with contextlib.redirect_stdout(out := io.StringIO()):
        assert main(["cost", "lstm", "--convention", "fvcore", "--format", "json"]) == 0
    import json

    assert "counts nothing" in json.loads(out.getvalue())["note"]
