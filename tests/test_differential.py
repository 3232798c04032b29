"""Differential testing: random valid architectures, built twice -- as a symcost model and as the
equivalent PyTorch graph -- must agree.

hypothesis draws sequential and graph-shaped networks (residual ``add`` and ``concat`` branches)
of convolutions, poolings, activations and linear layers, and -- when those kinds are registered
(``symcost.layers.REGISTRY``) -- recurrent (rnn/lstm/gru) and attention layers, with small random
sizes.  Each layer is chosen from the shape PyTorch actually produced so far, so every drawn
network is valid.  Compared, for every network:

- ``params`` with ``sum(p.numel() for p in module.parameters())`` (total and per layer);
- every output shape with PyTorch's;
- ``macs`` with ``FlopCounterMode`` / 2, per layer and in total.  FlopCounterMode reports 0 for
  nn.RNN/LSTM/GRU's fused float32 CPU kernel (it does count the float64 path used here); for those
  layers ``macs`` is compared with the brute-force counter's fused-multiply-add count, and
  FlopCounterMode's figure must be 0 or that count;
- per layer, ``ops`` by kind, ``flops`` and ``fma_ops`` with tests/bruteforce.py (naive loops on
  counting scalars, whose outputs are checked against PyTorch's first).

Bounded for CI by ``SYMCOST_DIFF_EXAMPLES`` (default 300 networks, in about 30 s); the long run
described in docs/robustness.md sets it higher.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import torch
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import bruteforce as bf  # noqa: E402
import symcost  # noqa: E402
from symcost import OP_KINDS  # noqa: E402
from symcost.layers import REGISTRY, load_all  # noqa: E402

EXAMPLES = int(os.environ.get("SYMCOST_DIFF_EXAMPLES", "300"))
LONG_RUN = "SYMCOST_DIFF_EXAMPLES" in os.environ

DIFF = settings(
    max_examples=EXAMPLES,
    deadline=None,  # a network of a dozen layers through the brute-force counter: not a latency test
    derandomize=not LONG_RUN,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

load_all()
RECURRENT = [k for k in ("rnn", "lstm", "gru") if k in REGISTRY]
ATTENTION = "multihead_attention" in REGISTRY
pytestmark = pytest.mark.filterwarnings("ignore")


class Fn(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, *xs):
        return self.f(*xs)


class First(nn.Module):
    """nn.RNN/LSTM/GRU return (output, state): keep the output."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)[0]


class SelfAttention(nn.Module):
    """nn.MultiheadAttention on (x, x, x); need_weights=True takes the unfused path FlopCounterMode sees."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x, x, x, need_weights=True)[0]


class Graph(nn.Module):
    """The PyTorch side: the same nodes, applied in the same order."""

    def __init__(self, steps):
        super().__init__()
        self.steps = [(s.id, s.inputs) for s in steps]
        self.mods = nn.ModuleDict({s.id: s.module for s in steps})

    def forward(self, x):
        values = {"x": x}
        for node_id, inputs in self.steps:
            values[node_id] = self.mods[node_id](*[values[i] for i in inputs])
        return values[self.steps[-1][0]]


class Step:
    def __init__(self, id, op, inputs, module, brute, xs, out):
        self.id, self.op, self.inputs, self.module, self.brute, self.xs, self.out = id, op, inputs, module, brute, xs, out


class Net:
    """Builds the symcost model and the torch graph together, running torch as it goes."""

    def __init__(self, x: torch.Tensor):
        self.model = symcost.Model("diff", inputs={"x": list(x.shape)})
        self.values = {"x": x}
        self.steps: list[Step] = []
        self.last = "x"
        self.gen = torch.Generator().manual_seed(len(x.shape))

    def shape(self, node=None):
        return tuple(self.values[node or self.last].shape)

    def add(self, op, module, brute, inputs=None, **args):
        inputs = inputs or [self.last]
        node_id = f"n{len(self.steps)}"
        self.model.add(op, *inputs, id=node_id, **args)
        module = module.double().eval()
        xs = [self.values[i] for i in inputs]
        with torch.no_grad():
            out = module(*xs)
        self.values[node_id] = out
        self.steps.append(Step(node_id, op, list(inputs), module, brute, xs, out))
        self.last = node_id
        return node_id


def seeded(make):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return make()


# ------------------------------------------------------------------------------------------------
# Layer choices, each valid for the current shape
# ------------------------------------------------------------------------------------------------

CONV = {1: (nn.Conv1d, "conv1d"), 2: (nn.Conv2d, "conv2d")}
POOL = {(1, "max"): (nn.MaxPool1d, "maxpool1d"), (2, "max"): (nn.MaxPool2d, "maxpool2d"),
        (1, "avg"): (nn.AvgPool1d, "avgpool1d"), (2, "avg"): (nn.AvgPool2d, "avgpool2d")}
ACTS = {"relu": (nn.ReLU, lambda m, xs, f: bf.relu(xs[0])), "tanh": (nn.Tanh, lambda m, xs, f: bf.tanh_layer(xs[0])),
        "sigmoid": (nn.Sigmoid, lambda m, xs, f: bf.sigmoid(xs[0])), "silu": (nn.SiLU, lambda m, xs, f: bf.silu(xs[0]))}


def brute_conv(op):
    return lambda m, xs, f: getattr(bf, op)(xs[0], m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups, fma=f)


def conv(draw, net, nd, out_channels=None, same=False):
    C, *space = net.shape()
    cls, op = CONV[nd]
    k = draw(st.integers(1, min(3, *space) if not same else 3))
    if same:
        k = draw(st.sampled_from([1, 3]))
        stride, padding, dilation = 1, k // 2, 1
    else:
        dilation = draw(st.integers(1, 2)) if min(space) >= 2 * (k - 1) + 1 else 1
        padding = draw(st.integers(0, 1))
        stride = draw(st.integers(1, 2))
    K = out_channels or draw(st.integers(1, 3))
    groups = draw(st.sampled_from([g for g in (1, 2) if C % g == 0 and K % g == 0]))
    bias = draw(st.booleans())
    module = seeded(lambda: cls(C, K, k, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias))
    return net.add(op, module, brute_conv(op), out_channels=K, kernel_size=k, stride=stride, padding=padding,
                   dilation=dilation, groups=groups, bias=bias)


def pool(draw, net, nd):
    _, *space = net.shape()
    kind = draw(st.sampled_from(["max", "avg"]))
    cls, op = POOL[(nd, kind)]
    k = draw(st.integers(1, min(3, *space)))
    stride = draw(st.integers(1, k))
    padding = draw(st.integers(0, k // 2))
    if kind == "max":
        module = cls(k, stride=stride, padding=padding)
        brute = lambda m, xs, f: getattr(bf, op)(xs[0], m.kernel_size, m.stride, m.padding, m.dilation)  # noqa: E731
    else:
        module = cls(k, stride=stride, padding=padding)
        brute = lambda m, xs, f: getattr(bf, op)(xs[0], m.kernel_size, m.stride, m.padding)  # noqa: E731
    return net.add(op, module, brute, kernel_size=k, stride=stride, padding=padding)


def act(draw, net):
    name = draw(st.sampled_from(sorted(ACTS)))
    cls, brute = ACTS[name]
    return net.add(name, cls(), brute)


def linear(draw, net, out_features=None):
    n = net.shape()[-1]
    k = out_features or draw(st.integers(1, 6))
    bias = draw(st.booleans())
    module = seeded(lambda: nn.Linear(n, k, bias=bias))
    return net.add("linear", module, lambda m, xs, f: bf.linear(xs[0], m.weight, m.bias, fma=f),
                   out_features=k, bias=bias)


def residual(draw, net, nd):
    """x -> conv(same channels, 'same' padding) [-> act] -> add(x, ·)."""
    start = net.last
    C = net.shape()[0]
    conv(draw, net, nd, out_channels=C, same=True)
    if draw(st.booleans()):
        act(draw, net)
    return net.add("add", Fn(lambda a, b: a + b), lambda m, xs, f: bf.add(*xs), inputs=[start, net.last])


def concat(draw, net, nd):
    """x -> two 'same' convolutions -> concat on channels."""
    start = net.last
    branches = []
    for _ in range(2):
        net.last = start
        branches.append(conv(draw, net, nd, same=True))
    return net.add("concat", Fn(lambda a, b: torch.cat([a, b], 0)), brute_concat, inputs=branches, dim=0)


def brute_concat(m, xs, f):
    return np.concatenate([x.numpy() for x in xs], 0), dict.fromkeys(bf.KINDS, 0)


def recurrent(draw, net):
    op = draw(st.sampled_from(RECURRENT))
    T, I = net.shape()
    H = draw(st.integers(1, 3))
    L = draw(st.integers(1, 2))
    bias, bidirectional = draw(st.booleans()), draw(st.booleans())
    cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[op]
    module = First(seeded(lambda: cls(I, H, num_layers=L, bias=bias, bidirectional=bidirectional)))
    brute = {"rnn": bf.rnn, "lstm": bf.lstm, "gru": bf.gru}[op]
    return net.add(op, module, lambda m, xs, f: brute(xs[0], dict(m.m.named_parameters()), fma=f),
                   hidden_size=H, num_layers=L, bias=bias, bidirectional=bidirectional)


def attention(draw, net):
    T, E = net.shape()
    h = draw(st.sampled_from([d for d in (1, 2, 3) if E % d == 0]))
    bias = draw(st.booleans())
    module = SelfAttention(seeded(lambda: nn.MultiheadAttention(E, h, bias=bias)))
    return net.add("multihead_attention", module,
                   lambda m, xs, f: bf.multihead_attention(xs[0], xs[0], xs[0], dict(m.m.named_parameters()), h, fma=f),
                   num_heads=h, bias=bias)


@st.composite
def networks(draw):
    domain = draw(st.sampled_from(["1d", "2d", "seq"] if (RECURRENT or ATTENTION) else ["1d", "2d"]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    if domain == "seq":
        shape = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    else:
        nd = 1 if domain == "1d" else 2
        shape = (draw(st.integers(1, 3)), *[draw(st.integers(2 if nd == 2 else 3, 7 if nd == 2 else 10))
                                            for _ in range(nd)])
    net = Net(torch.randn(shape, generator=g, dtype=torch.float64))
    if domain == "seq":
        for _ in range(draw(st.integers(1, 3))):
            choices = ["linear", "act"] + ["recurrent"] * 3 * bool(RECURRENT) + ["attention"] * ATTENTION
            what = draw(st.sampled_from(choices))
            if what == "linear":
                linear(draw, net)
            elif what == "act":
                act(draw, net)
            elif what == "recurrent":
                recurrent(draw, net)
            else:
                attention(draw, net)
        return net
    for _ in range(draw(st.integers(1, 4))):
        what = draw(st.sampled_from(["conv", "conv", "pool", "act", "residual", "concat"]))
        if what == "conv":
            conv(draw, net, nd)
        elif what == "pool":
            pool(draw, net, nd)
        elif what == "act":
            act(draw, net)
        elif what == "residual":
            residual(draw, net, nd)
        else:
            concat(draw, net, nd)
    if draw(st.booleans()):
        net.add("flatten", nn.Flatten(0, -1), lambda m, xs, f: (xs[0].numpy().reshape(-1), dict.fromkeys(bf.KINDS, 0)),
                start_dim=0, end_dim=-1)
        for _ in range(draw(st.integers(1, 2))):
            linear(draw, net)
            if draw(st.booleans()):
                act(draw, net)
    return net


# ------------------------------------------------------------------------------------------------
# The comparison
# ------------------------------------------------------------------------------------------------


def as_int(expr) -> int:
    assert isinstance(expr, sympy.Integer), f"{expr!r} is not a concrete integer"
    return int(expr)


def flop_counter(fn) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return counter.get_total_flops()


def check(net: Net):
    report = net.model.cost()
    graph = Graph(net.steps)
    x = net.values["x"]

    # PyTorch, whole network: parameters, output shape, MACs
    assert as_int(report.params) == sum(p.numel() for p in graph.parameters())
    with torch.no_grad():
        y = graph(x)
    assert report.output_shapes == [tuple(y.shape)]
    total_counted = flop_counter(lambda: graph(x))
    assert total_counted % 2 == 0

    expected_macs = counted_total = 0
    rows = {r.name: r for r in report.rows}
    for step in net.steps:
        row = rows[step.id]
        assert tuple(as_int(d) for d in row.shape) == tuple(step.out.shape), step.op
        assert as_int(row.params) == sum(p.numel() for p in step.module.parameters()), step.op
        plain_out, plain = step.brute(step.module, step.xs, False)
        fused_out, fused = step.brute(step.module, step.xs, True)
        for o in (plain_out, fused_out):  # the brute-force layer is the same layer as PyTorch's
            assert np.allclose(o, step.out.numpy(), rtol=1e-9, atol=1e-11), step.op
        counted = flop_counter(lambda: step.module(*step.xs))
        counted_total += counted
        if step.op in ("rnn", "lstm", "gru"):
            # float32 on CPU runs a fused kernel FlopCounterMode reports as 0; float64 (here) is
            # decomposed and counted.  Either way the brute-force FMA count must agree.
            macs = fused["fma"]
            assert counted in (0, 2 * macs), step.op
        else:
            macs = counted // 2
        assert as_int(row.macs) == macs, step.op
        expected_macs += macs
        assert plain["fma"] == 0
        assert {k: as_int(row.ops.get(k, sympy.Integer(0))) for k in OP_KINDS} == {k: plain[k] for k in OP_KINDS}, step.op
        assert as_int(row.flops) == sum(plain.values()), step.op
        assert as_int(row.fma_ops) == sum(fused.values()), step.op

    assert as_int(report.macs) == expected_macs
    assert total_counted == counted_total  # the whole graph counts as its layers do
    # totals are the sums of the rows (an invariant of the data, not of the printing)
    for field in ("params", "activations", "macs", "flops", "fma_ops"):
        assert getattr(report, field) == sum(as_int(getattr(r, field)) for r in report.rows)


@DIFF
@given(networks())
def test_random_networks_match_pytorch_and_the_brute_force_counter(net):
    check(net)


def test_the_generator_covers_every_family():
    """A guard that the strategy is not vacuous: collect the ops of 200 derandomized draws."""
    seen = set()

    @settings(max_examples=200, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(networks())
    def collect(net):
        seen.update(s.op for s in net.steps)
        if len(net.steps) > 1 and any(len(s.inputs) > 1 for s in net.steps):
            seen.add("<graph>")

    collect()
    expected = {"conv1d", "conv2d", "maxpool1d", "maxpool2d", "avgpool1d", "avgpool2d", "relu", "tanh", "sigmoid", "silu",
                "linear", "add", "concat", "flatten", "<graph>"}
    if ATTENTION:
        expected.add("multihead_attention")
    assert expected <= seen, expected - seen
    if RECURRENT:  # each kind has its own table in test_recurrent.py; here: they take part in networks
        assert seen & set(RECURRENT)
