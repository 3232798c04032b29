"""The brute-force reference layers compute the same outputs as PyTorch (float64, tiny sizes)."""

import pytest

import torch
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import bruteforce as bf  # noqa: E402
from bruteforce import KINDS  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")


def seeded(module_cls, *args, **kwargs):
    """A float64 module initialised from seed 0 without touching the global RNG."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return module_cls(*args, **kwargs).double().eval()


def rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64)


def check(result, expected):
    out, counts = result
    expected = expected.detach()
    assert out.shape == tuple(expected.shape)
    assert torch.allclose(torch.from_numpy(out), expected, rtol=1e-9, atol=1e-11)
    assert set(counts) == set(KINDS) and all(isinstance(v, int) for v in counts.values())
    return counts


FMA = pytest.mark.parametrize("fma", [False, True])


# ----------------------------------------------------------------------------- scalar conventions


def test_num_counts_each_operation_including_constants():
    c = bf.Counter()
    a, b = bf.Num(2.0, c), bf.Num(3.0, c)
    r = (1.0 - a) * b / 2.0 + (-a)
    r = bf.cmax(r, 0.0)
    r = bf.fma(a, b, r)
    assert r.v == pytest.approx(max((1 - 2) * 3 / 2 - 2, 0) + 6)
    assert c.as_dict() == dict(mul=1, add=2, div=1, cmp=1, exp=0, tanh=0, erf=0, sqrt=0, fma=1)


def test_dot_product_convention():
    x, w, b = rand(3), rand(2, 3, seed=1), rand(2, seed=2)
    plain = check(bf.linear(x, w, b), F.linear(x, w, b))
    fused = check(bf.linear(x, w, b, fma=True), F.linear(x, w, b))
    assert (plain["mul"], plain["add"], plain["fma"]) == (6, 6, 0)
    assert (fused["mul"], fused["add"], fused["fma"]) == (0, 2, 6)


# ----------------------------------------------------------------------------- linear, matmul, embedding


@FMA
@pytest.mark.parametrize("shape", [(5,), (3, 5), (2, 3, 5)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_linear(shape, use_bias, fma):
    x, w, b = rand(*shape), rand(4, 5, seed=1), rand(4, seed=2) if use_bias else None
    check(bf.linear(x, w, b, fma=fma), F.linear(x, w, b))


@FMA
@pytest.mark.parametrize("sa,sb", [((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)), ((2, 3), (3, 4)),
                                   ((2, 2, 3), (3, 4)), ((2, 1, 2, 3), (3, 3, 2)), ((2, 3), (2, 3, 1))])
def test_matmul(sa, sb, fma):
    a, b = rand(*sa), rand(*sb, seed=1)
    check(bf.matmul(a, b, fma=fma), torch.matmul(a, b))


@pytest.mark.parametrize("indices", [[3, 0, 3], [[1, 2], [0, 4]], 2])
def test_embedding(indices):
    w, idx = rand(5, 3), torch.tensor(indices)
    counts = check(bf.embedding(idx, w), F.embedding(idx, w))
    assert sum(counts.values()) == 0


# ----------------------------------------------------------------------------- convolutions

CONV1D = [  # c_in, c_out, length, kernel, kwargs
    (2, 3, 7, 3, {}),
    (2, 3, 7, 3, dict(stride=2, padding=1)),
    (2, 2, 7, 2, dict(padding=2, dilation=2)),
    (4, 2, 6, 3, dict(groups=2, bias=False)),
    (2, 2, 6, 4, dict(padding="same")),
    (2, 2, 6, 2, dict(padding="same", dilation=3)),
    (3, 2, 6, 3, dict(padding="valid", stride=2)),
]

CONV2D = [  # c_in, c_out, (h, w), kernel, kwargs
    (2, 3, (5, 6), (3, 3), {}),
    (2, 2, (6, 5), (2, 3), dict(stride=(2, 1), padding=(1, 2))),
    (2, 2, (6, 6), (3, 2), dict(dilation=(2, 1), padding=1, bias=False)),
    (4, 4, (5, 5), (3, 3), dict(groups=4, stride=2)),
    (4, 2, (5, 4), (2, 2), dict(groups=2, padding="same")),
    (2, 2, (5, 6), (2, 3), dict(padding="same", dilation=(1, 2))),
]


def conv_args(nd, c_in, c_out, kernel, kw):
    kw = dict(kw)
    groups = kw.get("groups", 1)
    kernel = kernel if isinstance(kernel, tuple) else (kernel,) * nd
    w = rand(c_out, c_in // groups, *kernel, seed=1)
    b = rand(c_out, seed=2) if kw.pop("bias", True) else None
    return w, b, kw


@FMA
@pytest.mark.parametrize("c_in,c_out,length,kernel,kw", CONV1D)
def test_conv1d(c_in, c_out, length, kernel, kw, fma):
    x = rand(c_in, length)
    w, b, kw = conv_args(1, c_in, c_out, kernel, kw)
    check(bf.conv1d(x, w, b, **kw, fma=fma), F.conv1d(x, w, b, **kw))


@FMA
@pytest.mark.parametrize("c_in,c_out,size,kernel,kw", CONV2D)
def test_conv2d(c_in, c_out, size, kernel, kw, fma):
    x = rand(c_in, *size)
    w, b, kw = conv_args(2, c_in, c_out, kernel, kw)
    check(bf.conv2d(x, w, b, **kw, fma=fma), F.conv2d(x, w, b, **kw))


@FMA
@pytest.mark.parametrize("kernel,kw", [((2, 2, 2), {}),
                                       ((1, 2, 3), dict(stride=(1, 2, 1), padding=(0, 1, 1), bias=False)),
                                       ((2, 1, 2), dict(groups=2, dilation=(1, 1, 2), padding="same"))])
def test_conv3d(kernel, kw, fma):
    x = rand(2, 3, 4, 4)
    w, b, kw = conv_args(3, 2, 2, kernel, kw)
    check(bf.conv3d(x, w, b, **kw, fma=fma), F.conv3d(x, w, b, **kw))


CONV_T1D = [  # c_in, c_out, length, kernel, kwargs
    (2, 3, 4, 3, {}),
    (2, 2, 4, 3, dict(stride=2, padding=1, output_padding=1)),
    (2, 2, 3, 2, dict(stride=3, output_padding=2)),  # output_padding > padding
    (2, 2, 4, 3, dict(dilation=2, padding=2, bias=False)),
    (4, 2, 3, 2, dict(groups=2, stride=2)),
    (2, 4, 3, 3, dict(groups=2, stride=2, dilation=2, output_padding=1)),
]

CONV_T2D = [  # c_in, c_out, (h, w), kernel, kwargs
    (2, 3, (3, 4), (3, 3), {}),
    (2, 2, (3, 3), (2, 3), dict(stride=(2, 1), padding=(1, 1), output_padding=(1, 0))),
    (2, 2, (3, 2), (3, 2), dict(stride=2, dilation=(1, 2), output_padding=1, bias=False)),
    (4, 4, (2, 3), (2, 2), dict(groups=2, stride=(1, 2), padding=(0, 1))),
]


@FMA
@pytest.mark.parametrize("c_in,c_out,length,kernel,kw", CONV_T1D)
def test_conv_transpose1d(c_in, c_out, length, kernel, kw, fma):
    x, kw = rand(c_in, length), dict(kw)
    groups = kw.get("groups", 1)
    w = rand(c_in, c_out // groups, kernel, seed=1)
    b = rand(c_out, seed=2) if kw.pop("bias", True) else None
    check(bf.conv_transpose1d(x, w, b, **kw, fma=fma), F.conv_transpose1d(x, w, b, **kw))


@FMA
@pytest.mark.parametrize("c_in,c_out,size,kernel,kw", CONV_T2D)
def test_conv_transpose2d(c_in, c_out, size, kernel, kw, fma):
    x, kw = rand(c_in, *size), dict(kw)
    groups = kw.get("groups", 1)
    w = rand(c_in, c_out // groups, *kernel, seed=1)
    b = rand(c_out, seed=2) if kw.pop("bias", True) else None
    check(bf.conv_transpose2d(x, w, b, **kw, fma=fma), F.conv_transpose2d(x, w, b, **kw))


def test_conv_transpose_first_write_counts_as_add():
    x, w = rand(1, 1), rand(1, 1, 1, seed=1)
    counts = check(bf.conv_transpose1d(x, w), F.conv_transpose1d(x, w))
    assert (counts["mul"], counts["add"]) == (1, 1)


# ----------------------------------------------------------------------------- pooling

POOL1D = [(3, {}), (3, dict(stride=2, padding=1)), (2, dict(stride=1)), (3, dict(stride=1, padding=1))]
POOL2D = [(2, {}), ((2, 3), dict(stride=(1, 2), padding=(1, 1))), (3, dict(stride=2, padding=1))]


@pytest.mark.parametrize("kernel,kw", POOL1D + [(2, dict(stride=1, padding=1, dilation=2))])
def test_maxpool1d(kernel, kw):
    x = rand(3, 7)
    check(bf.maxpool1d(x, kernel, **kw), F.max_pool1d(x, kernel, **kw))


@pytest.mark.parametrize("kernel,kw", POOL2D + [((3, 2), dict(stride=1, padding=(1, 0), dilation=(2, 1)))])
def test_maxpool2d(kernel, kw):
    x = rand(2, 6, 7)
    check(bf.maxpool2d(x, kernel, **kw), F.max_pool2d(x, kernel, **kw))


@pytest.mark.parametrize("kernel,kw", POOL1D)
def test_avgpool1d(kernel, kw):
    x = rand(3, 7)
    check(bf.avgpool1d(x, kernel, **kw), F.avg_pool1d(x, kernel, **kw))


@pytest.mark.parametrize("kernel,kw", POOL2D)
def test_avgpool2d(kernel, kw):
    x = rand(2, 6, 7)
    check(bf.avgpool2d(x, kernel, **kw), F.avg_pool2d(x, kernel, **kw))


# ----------------------------------------------------------------------------- elementwise, softmax


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4)])
def test_activations(shape):
    x = rand(*shape) * 2
    check(bf.relu(x), F.relu(x))
    check(bf.sigmoid(x), torch.sigmoid(x))
    check(bf.silu(x), F.silu(x))
    check(bf.tanh_layer(x), torch.tanh(x))
    check(bf.gelu(x), F.gelu(x))
    check(bf.gelu(x, approximate="tanh"), F.gelu(x, approximate="tanh"))


@pytest.mark.parametrize("shapes", [[(3, 4), (3, 4)], [(2, 3, 4), (4,), (3, 1)], [(1, 4), (3, 1), (2, 1, 1), ()]])
def test_add_mul(shapes):
    xs = [rand(*s, seed=i) for i, s in enumerate(shapes)]
    total, product = xs[0], xs[0]
    for x in xs[1:]:
        total, product = total + x, product * x
    check(bf.add(*xs), total)
    check(bf.mul(*xs), product)


@pytest.mark.parametrize("shape,dim", [((5,), 0), ((3, 4), -1), ((3, 4), 0), ((2, 3, 4), 1)])
def test_softmax(shape, dim):
    x = rand(*shape) * 3
    check(bf.softmax(x, dim), F.softmax(x, dim))


# ----------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize("shape", [(5,), (3, 5), (2, 2, 5)])
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
def test_layernorm(shape, affine):
    x = rand(*shape) * 2 + 1
    w = rand(5, seed=1) if affine != "none" else None
    b = rand(5, seed=2) if affine == "both" else None
    check(bf.layernorm(x, w, b, eps=1e-3), F.layer_norm(x, (5,), w, b, eps=1e-3))


def batchnorm_params(channels):
    return rand(channels, seed=1), rand(channels, seed=2).abs() + 0.5, rand(channels, seed=3), rand(channels, seed=4)


@pytest.mark.parametrize("shape", [(3,), (3, 5)])
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm1d(shape, affine):
    # PyTorch's BatchNorm1d has no unbatched form: compare with a batch of one.
    x = rand(*shape)
    mean, var, w, b = batchnorm_params(3)
    w, b = (w, b) if affine else (None, None)
    expected = F.batch_norm(x[None], mean, var, w, b, training=False, eps=1e-4)[0]
    check(bf.batchnorm1d(x, mean, var, w, b, eps=1e-4), expected)


@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm2d(affine):
    x = rand(3, 4, 5)
    mean, var, w, b = batchnorm_params(3)
    w, b = (w, b) if affine else (None, None)
    expected = F.batch_norm(x[None], mean, var, w, b, training=False)[0]
    check(bf.batchnorm2d(x, mean, var, w, b), expected)


# ----------------------------------------------------------------------------- recurrent

RECURRENT = [  # num_layers, bias, bidirectional
    (1, True, False),
    (1, False, False),
    (2, True, False),
    (1, True, True),
    (2, False, True),
]


def run_recurrent(module, fn, fma, **kwargs):
    x = rand(4, 3)
    expected, _ = module(x)
    return check(fn(x, dict(module.named_parameters()), fma=fma, **kwargs), expected)


@FMA
@pytest.mark.parametrize("num_layers,bias,bidirectional", RECURRENT)
def test_rnn(num_layers, bias, bidirectional, fma):
    m = seeded(nn.RNN, 3, 2, num_layers=num_layers, bias=bias, bidirectional=bidirectional)
    run_recurrent(m, bf.rnn, fma)


def test_rnn_relu():
    m = seeded(nn.RNN, 3, 3, num_layers=2, nonlinearity="relu")
    run_recurrent(m, bf.rnn, False, nonlinearity="relu")


@FMA
@pytest.mark.parametrize("num_layers,bias,bidirectional", RECURRENT)
def test_lstm(num_layers, bias, bidirectional, fma):
    m = seeded(nn.LSTM, 3, 2, num_layers=num_layers, bias=bias, bidirectional=bidirectional)
    run_recurrent(m, bf.lstm, fma)


@FMA
@pytest.mark.parametrize("num_layers,bias,bidirectional", RECURRENT)
def test_gru(num_layers, bias, bidirectional, fma):
    m = seeded(nn.GRU, 3, 2, num_layers=num_layers, bias=bias, bidirectional=bidirectional)
    run_recurrent(m, bf.gru, fma)


# ----------------------------------------------------------------------------- attention


@FMA
@pytest.mark.parametrize("num_heads,bias", [(1, True), (2, True), (2, False), (4, True)])
def test_self_attention(num_heads, bias, fma):
    m = seeded(nn.MultiheadAttention, 4, num_heads, bias=bias)
    x = rand(3, 4)
    expected, _ = m(x, x, x, need_weights=False)
    check(bf.multihead_attention(x, x, x, dict(m.named_parameters()), num_heads, fma=fma), expected)


@FMA
@pytest.mark.parametrize("kdim,vdim,bias", [(4, 4, True), (3, 5, True), (2, 3, False)])
def test_cross_attention(kdim, vdim, bias, fma):
    m = seeded(nn.MultiheadAttention, 4, 2, bias=bias, kdim=kdim, vdim=vdim)
    q, k, v = rand(2, 4), rand(5, kdim, seed=1), rand(5, vdim, seed=2)
    expected, _ = m(q, k, v, need_weights=False)
    check(bf.multihead_attention(q, k, v, dict(m.named_parameters()), 2, fma=fma), expected)


@FMA
@pytest.mark.parametrize("sq,sk,sv", [((3, 4), (3, 4), (3, 4)), ((2, 3, 2), (2, 4, 2), (2, 4, 3)),
                                      ((2, 1, 2, 3), (2, 1, 3, 3), (2, 1, 3, 3))])
def test_scaled_dot_product_attention(sq, sk, sv, fma):
    q, k, v = rand(*sq), rand(*sk, seed=1), rand(*sv, seed=2)
    check(bf.scaled_dot_product_attention(q, k, v, fma=fma), F.scaled_dot_product_attention(q, k, v))
