"""Every core layer kind against independent counts, one row per configuration.

For each row the layer is built through the public API (``symcost.Model(...).add(...)``,
then ``.cost()``) and compared with:

- PyTorch: ``params`` == ``sum(p.numel() for p in module.parameters())``; the output
  shape == the module's output shape on one unbatched sample (batch norm: a batch of 1);
  ``macs`` == ``FlopCounterMode`` total / 2 (0 for the kinds it does not count, which is the
  contract: macs are linear algebra only);
- the brute-force counter (tests/bruteforce.py), run with the module's own weights, whose
  output is checked against the module's: every op kind, ``flops`` == the sum of its plain
  counts, ``fma_ops`` == the sum of its fused-mode counts;
- the activations contract of README.md: elements of the output, 0 for the in-place
  activations, dropout and views.

FlopCounterMode gap (PyTorch 2.13): it has no formula for ``aten.mv`` and ``aten.dot``, so a
``matmul`` with a 1-D second operand (vector·vector, matrix·vector, batch·vector) reports 0.
Those rows compare ``macs`` with the brute-force multiplication count instead, and assert
that the gap is still there (see docs/conventions.md).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy

import torch
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import bruteforce as bf  # noqa: E402
import symcost  # noqa: E402
from symcost import OP_KINDS  # noqa: E402
from symcost.layers import REGISTRY, load_all  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")

#: Kinds whose output takes no new memory (README's contract: in place, or a view).
NO_ACTIVATIONS = {"relu", "sigmoid", "silu", "tanh", "gelu", "dropout", "identity", "flatten", "reshape", "transpose"}

#: The core families this file covers (other families have their own test files).
CORE_FAMILIES = {"linear", "conv", "pool", "elementwise", "reduction", "norm", "tensor"}


# ----------------------------------------------------------------------------- torch side


class Fn(nn.Module):
    """A parameterless module around a function of the inputs (matmul, add, cat, ...);
    ``dims`` are the dims it works on (for the brute-force side)."""

    def __init__(self, f, dims=None):
        super().__init__()
        self.f = f
        self.dims = dims

    def forward(self, *xs):
        return self.f(*xs)


def seeded(build):
    """A float64 module in eval mode, initialised from seed 0 without touching the global RNG."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        m = build().double().eval()
        if isinstance(m, nn.modules.batchnorm._BatchNorm):  # non-trivial running statistics
            g = torch.Generator().manual_seed(1)
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g, dtype=torch.float64))
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g, dtype=torch.float64) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.randn(m.weight.shape, generator=g, dtype=torch.float64))
                m.bias.data.copy_(torch.randn(m.bias.shape, generator=g, dtype=torch.float64))
        return m


def tuples(args: dict) -> dict:
    """symcost's list arguments as PyTorch's tuples."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}


# ----------------------------------------------------------------------------- brute-force side


def moved(f):
    """A brute-force 'layer' that only moves data: apply f to Num arrays and count (nothing)."""

    def run(*xs):
        c = bf.Counter()
        return c.result(f(*[c.wrap(x) for x in xs]))

    return run


def torch_shape(mod, x):
    """The shape the module gives an input of x's shape (to reshape the counting scalars alike)."""
    return tuple(mod(torch.zeros(x.shape, dtype=torch.float64)).shape)


def brute_conv(op):
    def run(mod, xs, fused):
        (x,) = xs
        return getattr(bf, op)(x, mod.weight, mod.bias, mod.stride, mod.padding, mod.dilation, mod.groups,
                               fma=fused)
    return run


def brute_conv_transpose(op):
    def run(mod, xs, fused):
        (x,) = xs
        return getattr(bf, op)(x, mod.weight, mod.bias, mod.stride, mod.padding, mod.output_padding,
                               mod.groups, mod.dilation, fma=fused)
    return run


def brute_maxpool(op):
    return lambda mod, xs, fused: getattr(bf, op)(xs[0], mod.kernel_size, mod.stride, mod.padding, mod.dilation)


def brute_avgpool(op):
    return lambda mod, xs, fused: getattr(bf, op)(xs[0], mod.kernel_size, mod.stride, mod.padding)


def brute_batchnorm(op):
    return lambda mod, xs, fused: getattr(bf, op)(xs[0], mod.running_mean, mod.running_var, mod.weight,
                                                  mod.bias, mod.eps)


BRUTE = {
    "linear": lambda mod, xs, fused: bf.linear(xs[0], mod.weight, mod.bias, fma=fused),
    "matmul": lambda mod, xs, fused: bf.matmul(*xs, fma=fused),
    **{op: brute_conv(op) for op in ("conv1d", "conv2d", "conv3d")},
    **{op: brute_conv_transpose(op) for op in ("conv_transpose1d", "conv_transpose2d")},
    **{op: brute_maxpool(op) for op in ("maxpool1d", "maxpool2d")},
    **{op: brute_avgpool(op) for op in ("avgpool1d", "avgpool2d")},
    "relu": lambda mod, xs, fused: bf.relu(xs[0]),
    "sigmoid": lambda mod, xs, fused: bf.sigmoid(xs[0]),
    "silu": lambda mod, xs, fused: bf.silu(xs[0]),
    "tanh": lambda mod, xs, fused: bf.tanh_layer(xs[0]),
    "gelu": lambda mod, xs, fused: bf.gelu(xs[0], mod.approximate),
    "softmax": lambda mod, xs, fused: bf.softmax(xs[0], mod.dim),
    "layernorm": lambda mod, xs, fused: bf.layernorm(xs[0], mod.weight, mod.bias, mod.eps),
    "rmsnorm": lambda mod, xs, fused: bf.rmsnorm(xs[0], mod.weight, mod.eps),
    **{op: brute_batchnorm(op) for op in ("batchnorm1d", "batchnorm2d")},
    "embedding": lambda mod, xs, fused: bf.embedding(xs[0], mod.weight),
    "add": lambda mod, xs, fused: bf.add(*xs),
    "mul": lambda mod, xs, fused: bf.mul(*xs),
    # data movement: the same numpy operation on counting scalars
    "flatten": lambda mod, xs, fused: moved(lambda x: x.reshape(torch_shape(mod, x)))(*xs),
    "reshape": lambda mod, xs, fused: moved(lambda x: x.reshape(torch_shape(mod, x)))(*xs),
    "transpose": lambda mod, xs, fused: moved(lambda x: np.swapaxes(x, *mod.dims))(*xs),
    "concat": lambda mod, xs, fused: moved(lambda *a: np.concatenate(a, axis=mod.dims))(*xs),
    **{op: (lambda op: lambda mod, xs, fused: bf.reduce(xs[0], op, *mod.dims))(op)
       for op in ("sum", "mean", "amax", "amin")},
    "dropout": lambda mod, xs, fused: moved(lambda x: x)(*xs),  # the identity at inference
    "identity": lambda mod, xs, fused: moved(lambda x: x)(*xs),
}


# ----------------------------------------------------------------------------- the table


def case(op, inputs, args, build, *, batched=False):
    """One configuration: symcost ``op`` with ``args`` on one sample of shapes ``inputs``;
    ``build()`` makes the equivalent PyTorch module; ``batched``: the module needs a batch of 1."""
    inputs = [tuple(s) for s in inputs]
    label = op + "-" + "&".join("x".join(map(str, s)) or "scalar" for s in inputs)
    if args:
        label += "-" + ",".join(f"{k}={v}" for k, v in args.items())
    return pytest.param(op, inputs, args, build, batched, id=label.replace(" ", ""))


def linear(x, out_features, **kw):
    return case("linear", [x], dict(out_features=out_features, **kw),
                lambda: nn.Linear(x[-1], out_features, **kw))


def matmul(a, b):
    return case("matmul", [a, b], {}, lambda: Fn(torch.matmul))


def conv(op, x, out_channels, **kw):
    cls = {"conv1d": nn.Conv1d, "conv2d": nn.Conv2d, "conv3d": nn.Conv3d,
           "conv_transpose1d": nn.ConvTranspose1d, "conv_transpose2d": nn.ConvTranspose2d}[op]
    return case(op, [x], dict(out_channels=out_channels, **kw), lambda: cls(x[0], out_channels, **tuples(kw)))


def pool(op, x, **kw):
    cls = {"maxpool1d": nn.MaxPool1d, "maxpool2d": nn.MaxPool2d,
           "avgpool1d": nn.AvgPool1d, "avgpool2d": nn.AvgPool2d}[op]
    return case(op, [x], kw, lambda: cls(**tuples(kw)))


def unary(op, x, cls, **kw):
    return case(op, [x], kw, lambda: cls(**kw))


def fn(op, inputs, f, **kw):
    return case(op, inputs, kw, lambda: Fn(f))


def reduction(op, x, **kw):
    """torch.sum / mean / amax / amin with the same dim and keepdim (all dims when dim is omitted)."""
    f = getattr(torch, op)
    call = (lambda t: f(t, dim=kw["dim"], keepdim=kw.get("keepdim", False))) if "dim" in kw else f
    return case(op, [x], kw, lambda: Fn(call, (kw.get("dim"), kw.get("keepdim", False))))


CASES = [
    # linear: on the last dim, any leading dims
    linear((5,), 4),
    linear((3, 5), 2, bias=False),
    linear((2, 3, 4), 3),
    linear((1,), 1),
    # matmul: torch.matmul semantics
    matmul((3,), (3,)),
    matmul((3,), (3, 2)),
    matmul((2, 3), (3,)),
    matmul((2, 3), (3, 4)),
    matmul((2, 2, 3), (3, 4)),
    matmul((2, 1, 2, 3), (3, 3, 2)),
    matmul((3,), (2, 3, 4)),
    matmul((2, 4, 3), (3,)),
    # conv1d
    conv("conv1d", (3, 10), 4, kernel_size=3),
    conv("conv1d", (4, 11), 6, kernel_size=3, stride=2, padding=1, dilation=2, groups=2),
    conv("conv1d", (2, 8), 3, kernel_size=4, padding="same"),
    conv("conv1d", (2, 8), 2, kernel_size=3, stride=3, padding="valid", bias=False),
    conv("conv1d", (4, 9), 4, kernel_size=3, padding="same", dilation=3, groups=4),
    # conv2d
    conv("conv2d", (1, 8, 8), 2, kernel_size=3),
    conv("conv2d", (3, 7, 6), 4, kernel_size=[3, 2], stride=[2, 1], padding=[1, 0], bias=False),
    conv("conv2d", (4, 7, 7), 2, kernel_size=3, dilation=2, groups=2, padding="same"),
    conv("conv2d", (2, 6, 5), 3, kernel_size=[2, 3], stride=2, padding="valid"),
    conv("conv2d", (2, 5, 5), 4, kernel_size=[5, 3], stride=3, padding=2, dilation=[1, 2]),
    conv("conv2d", (2, 4, 6), 2, kernel_size=[2, 4], padding="same"),
    # conv3d
    conv("conv3d", (2, 4, 5, 4), 2, kernel_size=[2, 3, 2], stride=[1, 2, 1], padding=[1, 0, 1]),
    conv("conv3d", (2, 4, 4, 4), 2, kernel_size=3, padding="same", groups=2, bias=False),
    conv("conv3d", (1, 5, 3, 3), 2, kernel_size=[2, 1, 1], dilation=[2, 1, 1], stride=[2, 1, 3]),
    # transposed convolutions
    conv("conv_transpose1d", (3, 4), 2, kernel_size=3),
    conv("conv_transpose1d", (4, 5), 6, kernel_size=3, stride=2, padding=1, output_padding=1, groups=2),
    conv("conv_transpose1d", (2, 3), 2, kernel_size=2, stride=3, dilation=2, output_padding=2, bias=False),
    conv("conv_transpose2d", (2, 3, 3), 3, kernel_size=[3, 2], stride=2, padding=[1, 0], output_padding=[1, 0]),
    conv("conv_transpose2d", (4, 3, 2), 2, kernel_size=2, groups=2, dilation=2, bias=False),
    conv("conv_transpose2d", (1, 2, 2), 1, kernel_size=1),
    conv("conv_transpose2d", (2, 2, 3), 4, kernel_size=[2, 3], stride=[1, 2], padding=1, dilation=[2, 1]),
    # pooling
    pool("maxpool1d", (2, 9), kernel_size=3),
    pool("maxpool1d", (2, 10), kernel_size=3, stride=2, padding=1, dilation=2),
    pool("maxpool1d", (1, 5), kernel_size=2, stride=1),
    pool("maxpool2d", (2, 6, 6), kernel_size=2, stride=2),
    pool("maxpool2d", (2, 7, 5), kernel_size=[3, 2], stride=[2, 1], padding=[1, 0], dilation=[1, 2]),
    pool("maxpool2d", (1, 5, 5), kernel_size=3, stride=1, padding=1),
    pool("avgpool1d", (2, 9), kernel_size=3),
    pool("avgpool1d", (2, 8), kernel_size=4, stride=2, padding=2),
    pool("avgpool1d", (3, 4), kernel_size=3, stride=1, padding=1),
    pool("avgpool2d", (2, 6, 6), kernel_size=2),
    pool("avgpool2d", (2, 7, 5), kernel_size=[3, 2], stride=[2, 1], padding=[1, 1]),
    pool("avgpool2d", (1, 5, 5), kernel_size=3, stride=1, padding=1),
    # elementwise
    unary("relu", (3, 4), nn.ReLU),
    unary("relu", (5,), nn.ReLU),
    unary("sigmoid", (2, 3, 4), nn.Sigmoid),
    unary("sigmoid", (5,), nn.Sigmoid),
    unary("silu", (2, 3, 4), nn.SiLU),
    unary("silu", (6,), nn.SiLU),
    unary("tanh", (3, 4), nn.Tanh),
    unary("tanh", (2, 2, 2, 2), nn.Tanh),
    unary("gelu", (3, 4), nn.GELU),
    unary("gelu", (2, 5), nn.GELU, approximate="tanh"),
    unary("gelu", (7,), nn.GELU, approximate="none"),
    unary("softmax", (3, 4), nn.Softmax, dim=-1),
    unary("softmax", (3, 4), nn.Softmax, dim=0),
    unary("softmax", (2, 3, 4), nn.Softmax, dim=1),
    unary("softmax", (5,), nn.Softmax, dim=0),
    unary("dropout", (3, 4), nn.Dropout, p=0.5),
    unary("dropout", (2, 3, 4), nn.Dropout, p=0.1),
    unary("identity", (3, 4), nn.Identity),
    unary("identity", (5,), nn.Identity),
    # reductions
    reduction("sum", (3, 4), dim=1),
    reduction("sum", (2, 3, 4)),
    reduction("mean", (5, 3), dim=0),
    reduction("mean", (2, 3, 4), dim=[0, 2], keepdim=True),
    reduction("amax", (2, 3, 4), dim=-1),
    reduction("amax", (4, 2), dim=[0, 1]),
    reduction("amin", (3, 5), dim=0, keepdim=True),
    reduction("amin", (2, 2, 3)),
    fn("add", [(3, 4), (3, 4)], torch.add),
    fn("add", [(3, 4), (4,)], torch.add),
    fn("add", [(2, 1, 4), (3, 1), (1,)], lambda *xs: xs[0] + xs[1] + xs[2]),
    fn("add", [(1,), (5,)], torch.add),
    fn("mul", [(3, 4), (3, 4)], torch.mul),
    fn("mul", [(2, 3, 1), (4,)], torch.mul),
    fn("mul", [(3, 1), (1, 4), (3, 4), (4,)], lambda *xs: xs[0] * xs[1] * xs[2] * xs[3]),
    # normalisation
    case("layernorm", [(3, 4)], {}, lambda: nn.LayerNorm(4)),
    case("layernorm", [(2, 3, 5)], {"elementwise_affine": False}, lambda: nn.LayerNorm(5, elementwise_affine=False)),
    case("layernorm", [(6,)], {"bias": False}, lambda: nn.LayerNorm(6, bias=False)),
    case("layernorm", [(2, 4)], {"eps": 0.001}, lambda: nn.LayerNorm(4, eps=0.001)),
    case("rmsnorm", [(3, 4)], {"eps": 1e-6}, lambda: nn.RMSNorm(4, eps=1e-6)),
    case("rmsnorm", [(2, 3, 5)], {"elementwise_affine": False, "eps": 1e-5},
         lambda: nn.RMSNorm(5, eps=1e-5, elementwise_affine=False)),
    case("rmsnorm", [(6,)], {"eps": 0.001}, lambda: nn.RMSNorm(6, eps=0.001)),
    case("batchnorm1d", [(3,)], {}, lambda: nn.BatchNorm1d(3), batched=True),
    case("batchnorm1d", [(3, 5)], {"affine": False}, lambda: nn.BatchNorm1d(3, affine=False), batched=True),
    case("batchnorm2d", [(2, 3, 4)], {}, lambda: nn.BatchNorm2d(2), batched=True),
    case("batchnorm2d", [(3, 2, 2)], {"affine": False, "eps": 0.01},
         lambda: nn.BatchNorm2d(3, affine=False, eps=0.01), batched=True),
    # tensor
    case("embedding", [(4,)], {"num_embeddings": 10, "embedding_dim": 3}, lambda: nn.Embedding(10, 3)),
    case("embedding", [(2, 3)], {"num_embeddings": 5, "embedding_dim": 4, "padding_idx": 0},
         lambda: nn.Embedding(5, 4, padding_idx=0)),
    case("flatten", [(2, 3, 4)], {}, lambda: nn.Flatten(0, -1)),
    case("flatten", [(2, 3, 4)], {"start_dim": 1}, lambda: nn.Flatten(1, -1)),
    case("flatten", [(2, 3, 4)], {"start_dim": 0, "end_dim": 1}, lambda: nn.Flatten(0, 1)),
    case("reshape", [(2, 3, 4)], {"shape": [6, 4]}, lambda: Fn(lambda x: x.reshape(6, 4))),
    case("reshape", [(2, 3, 4)], {"shape": [-1, 2]}, lambda: Fn(lambda x: x.reshape(-1, 2))),
    case("reshape", [(2, 3, 4)], {"shape": [4, -1, 3]}, lambda: Fn(lambda x: x.reshape(4, -1, 3))),
    case("transpose", [(2, 3, 4)], {}, lambda: Fn(lambda x: x.transpose(0, 1), (0, 1))),
    case("transpose", [(2, 3, 4)], {"dim0": 0, "dim1": 2}, lambda: Fn(lambda x: x.transpose(0, 2), (0, 2))),
    case("transpose", [(2, 3, 4)], {"dim0": -1, "dim1": -2}, lambda: Fn(lambda x: x.transpose(-1, -2), (-1, -2))),
    case("concat", [(2, 3), (4, 3)], {"dim": 0}, lambda: Fn(lambda *xs: torch.cat(xs, 0), 0)),
    case("concat", [(2, 3), (2, 1), (2, 2)], {"dim": 1}, lambda: Fn(lambda *xs: torch.cat(xs, 1), 1)),
    case("concat", [(2, 3, 4), (2, 3, 1)], {"dim": -1}, lambda: Fn(lambda *xs: torch.cat(xs, -1), -1)),
    case("concat", [(3, 2)], {}, lambda: Fn(lambda *xs: torch.cat(xs, 0), 0)),
]

#: matmul rows whose second operand is 1-D: FlopCounterMode has no aten.mv / aten.dot formula.
FLOP_COUNTER_GAP = {("matmul", ((3,), (3,))), ("matmul", ((2, 3), (3,))), ("matmul", ((2, 4, 3), (3,)))}


# ----------------------------------------------------------------------------- helpers


def tensors(op, inputs, args):
    g = torch.Generator().manual_seed(2)
    if op == "embedding":
        return [torch.randint(args["num_embeddings"], s, generator=g) for s in inputs]
    return [torch.randn(s, generator=g, dtype=torch.float64) for s in inputs]


def symcost_layer(op, inputs, args):
    """The layer built through the public API: one model, one node; its report and row."""
    names = [f"x{i}" for i in range(len(inputs))]
    m = symcost.Model(op, inputs=dict(zip(names, [list(s) for s in inputs])))
    m.add(op, *names, id="layer", **args)
    report = m.cost()
    return report, report.layer("layer")


def run_torch(mod, xs, batched):
    if batched:
        return mod(*[x.unsqueeze(0) for x in xs])[0]
    return mod(*xs)


def flop_counter_macs(mod, xs, batched):
    with FlopCounterMode(display=False) as counter:
        run_torch(mod, xs, batched)
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


def as_int(expr):
    assert isinstance(expr, sympy.Integer), f"{expr!r} is not a concrete integer"
    return int(expr)


# ----------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("op,inputs,args,build,batched", CASES)
def test_layer_against_pytorch_and_brute_force(op, inputs, args, build, batched):
    report, row = symcost_layer(op, inputs, args)
    mod = seeded(build)
    xs = tensors(op, inputs, args)
    with torch.no_grad():
        out = run_torch(mod, xs, batched)

        # PyTorch: shape and parameters
        assert tuple(as_int(d) for d in row.shape) == tuple(out.shape)
        assert report.output_shapes == [tuple(out.shape)]
        assert as_int(row.params) == sum(p.numel() for p in mod.parameters())

        # brute force: outputs equal PyTorch's, so the configurations are the same layer
        plain_out, plain = BRUTE[op](mod, xs, False)
        fused_out, fused = BRUTE[op](mod, xs, True)
        for o in (plain_out, fused_out):
            assert o.shape == tuple(out.shape)
            assert np.allclose(o, out.numpy(), rtol=1e-9, atol=1e-11)

        # macs: FlopCounterMode, except where it has no formula
        counted = flop_counter_macs(mod, xs, batched)
        if (op, tuple(inputs)) in FLOP_COUNTER_GAP:
            assert counted == 0  # still a gap in this PyTorch: see the module docstring
            assert as_int(row.macs) == plain["mul"]
        else:
            assert as_int(row.macs) == counted

    # ops by kind, flops, fma_ops
    assert plain["fma"] == 0
    assert {k: as_int(row.ops.get(k, sympy.Integer(0))) for k in OP_KINDS} == {k: plain[k] for k in OP_KINDS}
    assert as_int(row.flops) == sum(plain.values())
    assert as_int(row.fma_ops) == sum(fused.values())

    # activations, per README's contract
    expected = 0 if op in NO_ACTIVATIONS else math.prod(out.shape)
    assert as_int(row.activations) == expected

    # a one-layer model's totals are its layer's
    for field in ("params", "activations", "macs", "flops", "fma_ops"):
        assert getattr(report, field) == getattr(row, field)
    assert report.input == sum(math.prod(s) for s in inputs)


def test_every_core_kind_has_rows():
    load_all()
    core = {name for name, kind in REGISTRY.items() if kind.family in CORE_FAMILIES}
    rows = {op: sum(1 for p in CASES if p.values[0] == op) for op in core}
    assert [op for op, n in rows.items() if n < 2] == [], "core kinds with fewer than 2 rows in CASES"


def test_both_gelu_approximations_are_covered():
    approx = {p.values[2].get("approximate", "none") for p in CASES if p.values[0] == "gelu"}
    assert approx == {"none", "tanh"}


# ----------------------------------------------------------------------------- configurations both reject

REJECTED = [
    case("conv2d", [(1, 4, 4)], {"out_channels": 2, "kernel_size": 5}, lambda: nn.Conv2d(1, 2, 5)),
    case("conv1d", [(1, 4)], {"out_channels": 1, "kernel_size": 3, "dilation": 2}, lambda: nn.Conv1d(1, 1, 3, dilation=2)),
    case("conv1d", [(2, 8)], {"out_channels": 2, "kernel_size": 3, "padding": "same", "stride": 2},
         lambda: nn.Conv1d(2, 2, 3, padding="same", stride=2)),
    case("conv1d", [(3, 8)], {"out_channels": 2, "kernel_size": 3, "groups": 2}, lambda: nn.Conv1d(3, 2, 3, groups=2)),
    case("conv_transpose1d", [(2, 4)], {"out_channels": 2, "kernel_size": 3, "stride": 2, "output_padding": 2},
         lambda: nn.ConvTranspose1d(2, 2, 3, stride=2, output_padding=2)),
    case("maxpool1d", [(1, 8)], {"kernel_size": 2, "padding": 2}, lambda: nn.MaxPool1d(2, padding=2)),
    case("avgpool2d", [(1, 8, 8)], {"kernel_size": 3, "padding": 2}, lambda: nn.AvgPool2d(3, padding=2)),
    case("maxpool2d", [(1, 2, 5)], {"kernel_size": 3}, lambda: nn.MaxPool2d(3)),
    case("linear", [(3, 5)], {"out_features": 2, "in_features": 4}, lambda: nn.Linear(4, 2)),
    case("matmul", [(2, 3), (4, 2)], {}, lambda: Fn(torch.matmul)),
    case("add", [(3, 4), (3,)], {}, lambda: Fn(torch.add)),
    case("concat", [(2, 3), (3, 2)], {"dim": 0}, lambda: Fn(lambda *xs: torch.cat(xs, 0))),
    case("softmax", [(3, 4)], {"dim": 2}, lambda: nn.Softmax(dim=2)),
    case("reshape", [(2, 3)], {"shape": [4, -1]}, lambda: Fn(lambda x: x.reshape(4, -1))),
    case("batchnorm2d", [(3, 4, 4)], {"num_features": 2}, lambda: nn.BatchNorm2d(2), batched=True),
]


@pytest.mark.parametrize("op,inputs,args,build,batched", REJECTED)
def test_configuration_pytorch_rejects_is_a_one_line_error_naming_the_layer(op, inputs, args, build, batched):
    with pytest.raises((RuntimeError, ValueError, IndexError)):
        mod = seeded(build)
        with torch.no_grad():
            run_torch(mod, tensors(op, inputs, args), batched)
    with pytest.raises(symcost.SymcostError) as info:
        symcost_layer(op, inputs, args)
    assert "'layer'" in str(info.value) and "\n" not in str(info.value)


def test_batchnorm_with_batch_statistics_is_refused():
    # track_running_stats=False normalises with the batch's own statistics even in eval mode,
    # which is not what the batchnorm rule counts: refuse it rather than count something else
    with pytest.raises(symcost.SpecError, match="track_running_stats"):
        symcost_layer("batchnorm2d", [(2, 3, 3)], {"track_running_stats": False})


def test_batchnorm_num_features_equal_as_a_formula():
    m = symcost.Model("bn", inputs={"x": ["C*M+C"]})
    m.add("batchnorm1d", num_features="C*(M+1)", id="bn")
    c, mm = symcost.symbol("C"), symcost.symbol("M")
    assert sympy.expand(m.cost().params - 2 * (c * mm + c)) == 0


# ----------------------------------------------------------------------------- the written conventions

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def contract_table(text):
    """The rows of the table that follows the '## The counting contract' heading."""
    rows = []
    for line in text.split("## The counting contract", 1)[1].splitlines()[1:]:
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break
    return rows


def test_conventions_copy_readmes_contract_and_cover_every_core_kind():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    conventions = (ROOT / "docs" / "conventions.md").read_text(encoding="utf-8")
    table = contract_table(readme)
    assert len(table) > 5 and contract_table(conventions) == table
    load_all()
    core = {name for name, kind in REGISTRY.items() if kind.family in CORE_FAMILIES}
    assert [op for op in sorted(core) if f"`{op}`" not in conventions] == []
