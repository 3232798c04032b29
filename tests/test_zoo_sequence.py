"""The sequence models of the zoo (the lecture's "Complexity vs. parameter count" table) against
equivalent PyTorch modules at random concrete sizes: params, output shapes, MACs (FlopCounterMode
on paths it sees in full), and the slides' closed forms."""

import random

import pytest
import sympy

import symcost
from symcost.sizes import symbol

import torch
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")


def n_params(*modules):
    return sum(p.numel() for m in modules for p in m.parameters())


def flops_of(fn):
    with FlopCounterMode(display=False) as counter:
        out = fn()
    return out, counter.get_total_flops()


def dnn(s):
    fc = nn.Linear(s["T"] * s["I"], s["H"])
    x = torch.randn(s["T"], s["I"])
    return n_params(fc), *flops_of(lambda: fc(x.flatten()))


def cnn1d(s):
    conv = nn.Conv1d(s["I"], s["H"], s["K"], padding="same")
    x = torch.randn(s["I"], s["T"])
    return n_params(conv), *flops_of(lambda: conv(x))


def cnn2d(s):
    conv = nn.Conv2d(s["I"], s["H"], (s["Kt"], s["Kf"]), padding="same")
    x = torch.randn(s["I"], s["T"], s["F"])
    return n_params(conv), *flops_of(lambda: conv(x))


def recurrent(cls):
    def build(s):
        m = cls(s["I"], s["H"]).double()  # float64: FlopCounterMode sees nn.LSTM's products
        x = torch.randn(s["T"], s["I"], dtype=torch.float64)
        return n_params(m), *flops_of(lambda: m(x)[0])
    return build


def projections(s, x, context):
    q, k, v = (nn.Linear(s["I"], s["H"]) for _ in range(3))
    o = nn.Linear(s["H"], s["I"])
    out, flops = flops_of(lambda: o(F.scaled_dot_product_attention(q(x), k(context), v(context))))
    return n_params(q, k, v, o), out, flops


def attention(s):
    x = torch.randn(s["T"], s["I"])
    return projections(s, x, x)


def cross_attention(s):
    return projections(s, torch.randn(s["T_self"], s["I"]), torch.randn(s["T_cross"], s["I"]))


def transformer_encoder(s):
    layer = nn.TransformerEncoderLayer(s["D"], s["heads"], s["F"]).eval()
    x = torch.randn(s["T"], s["D"])

    def unfused():  # the layer's own modules, attention on its unfused path (FlopCounterMode sees it)
        h = layer.norm1(x + layer.self_attn(x, x, x, need_weights=True)[0])
        return layer.norm2(h + layer.linear2(F.relu(layer.linear1(h))))

    with torch.no_grad():
        out, flops = flops_of(unfused)
        assert torch.allclose(out, layer(x), atol=1e-5)
    return n_params(layer), out, flops


def rnn_lm(s):
    emb, rnn, proj = nn.Embedding(s["V"], s["E"]), nn.RNN(s["E"], s["H"]), nn.Linear(s["H"], s["V"])
    tokens = torch.randint(0, s["V"], (s["T"],))
    return n_params(emb, rnn, proj), *flops_of(lambda: torch.softmax(proj(rnn(emb(tokens))[0]), -1))


MODELS = {
    "dnn": (dnn, "TIH"), "cnn1d": (cnn1d, "TIHK"), "cnn2d": (cnn2d, ["T", "F", "I", "H", "Kt", "Kf"]),
    "rnn": (recurrent(nn.RNN), "TIH"), "lstm": (recurrent(nn.LSTM), "TIH"), "gru": (recurrent(nn.GRU), "TIH"),
    "attention": (attention, "TIH"), "cross_attention": (cross_attention, ["T_self", "T_cross", "I", "H"]),
    "transformer_encoder": (transformer_encoder, ["T", "D", "heads", "F"]),
    "rnn_lm": (rnn_lm, "TVEH"),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_zoo_model_matches_torch(name):
    build, dims = MODELS[name]
    general = symcost.load(name).cost()
    assert set(general.analysis.model.dims) == set(dims)  # every size is described
    rng = random.Random(name)
    for _ in range(3):
        sizes = {d: rng.randint(1, 7) for d in dims}
        if name == "transformer_encoder":
            sizes["D"] = sizes["heads"] * rng.randint(1, 4)
        r = general.subs(**sizes)
        params, out, flops = build(sizes)
        assert r.params == params
        assert r.output_shapes == [tuple(out.shape)]
        assert 2 * r.macs == flops


T, I, H, K = (symbol(n) for n in "TIHK")


@pytest.mark.parametrize("name,params,macs,steps", [
    ("dnn", T * I * H + H, T * I * H, 1),
    ("cnn1d", H * I * K + H, T * H * I * K, 1),
    ("rnn", I * H + H * H + 2 * H, T * (I * H + H * H), T),
    ("attention", 4 * I * H + 3 * H + I, 4 * T * I * H + 2 * T * T * H, 3),
])
def test_slides_table_rows(name, params, macs, steps):
    """The lecture's table, up to the biases the slides leave out."""
    r = symcost.load(name).cost()
    assert sympy.expand(r.params - params) == 0
    assert sympy.expand(r.macs - macs) == 0
    assert sympy.expand(r.steps - steps) == 0
