"""Scaling analysis: leading terms and orders in a symbol, checked by hand and by numeric limits."""

from fractions import Fraction

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import symcost
from symcost.analysis import ScalingError, compare, depends_on, order, scaling, without_bias
from symcost.sizes import symbol

T, K, S, H, I, E, P = (symbol(n) for n in ("T", "K", "S", "H", "I", "E", "P"))
Ts, Tc = symbol("T_self"), symbol("T_cross")
log = sympy.log


@pytest.mark.parametrize(
    "expr, leading, text",
    [
        # conv output length, valid padding: floor((T - K)/S) + 1 = T/S + O(1)
        (sympy.floor((T - K) / S) + 1, T / S, "Θ(T)"),
        (sympy.floor((T + 2 * P - K) / S) + 1, T / S, "Θ(T)"),
        (sympy.ceiling(T / 2) * H, T * H / 2, "Θ(T)"),
        # the seed's Elman RNN, biases: T·(I·H + H·H) + 2H
        (T * (I * H + H * H) + 2 * H, T * (I * H + H * H), "Θ(T)"),
        # self-attention: projections 4·T·E² and the two T·T·E stages
        (4 * T * E**2 + 2 * T**2 * E, 2 * T**2 * E, "Θ(T²)"),
        (T * log(T) + 5 * T, T * log(T), "Θ(T·log T)"),
        (sympy.Max(T, 3), T, "Θ(T)"),
        (sympy.Max(T**2, 7 * T), T**2, "Θ(T²)"),
        (sympy.Min(T**2, 7 * T) + 1, 7 * T, "Θ(T)"),
        (sympy.Min(T, K) * H, K * H, "Θ(1)"),                 # bounded by the constant K
        (sympy.Max(T + 2, T) * H, T * H, "Θ(T)"),
        (sympy.Min(H * T, 5 * T), sympy.Min(H, 5) * T, "Θ(T)"),  # same order: Min of the coefficients
        (sympy.ceiling(K / 2) * T + 1, sympy.ceiling(K / 2) * T, "Θ(T)"),  # a constant ceiling stays
        (sympy.floor(K / 2) * T + 1, sympy.floor(K / 2) * T, "O(T)"),  # ... a floor too, but K = 1 makes it 0
        (sympy.sqrt(T) * H + H, sympy.sqrt(T) * H, "Θ(T¹ᐟ²)"),
        (H * I + H, H * I + H, "Θ(1)"),
        (sympy.Integer(0), 0, "0"),
    ],
)
def test_leading_term_and_order(expr, leading, text):
    o = order(expr, T)
    assert sympy.expand(o.leading - leading) == 0
    assert o.text() == text


def test_cancellation_is_found():
    # (T + 1)² − T² = 2T + 1: the T² terms cancel
    o = order((T + 1) ** 2 - T**2, T)
    assert o.text() == "Θ(T)" and sympy.expand(o.leading - 2 * T) == 0
    # T − 2·floor(T/2) is the parity of T: bounded, and may be 0 -- an upper bound only
    o = order(T - 2 * sympy.floor(T / 2), T)
    assert o.text() == "O(1)" and not o.exact
    # floor(K/2) − 1 is 0 when K = 1: the sign of the coefficient is unknown
    assert order(T * (sympy.floor(K / 2) - 1), T).text() == "O(T)"


def test_several_symbols_keep_the_non_dominated_terms():
    # cross-attention: projections in T_self and T_cross, the core in T_self·T_cross
    expr = 2 * Ts * E**2 + 2 * Tc * E**2 + 2 * Ts * Tc * E
    o = order(expr, [Ts, Tc])
    assert o.text() == "Θ(T_self·T_cross)"
    assert sympy.expand(o.leading - 2 * Ts * Tc * E) == 0
    o = order(Ts**2 + Ts * Tc + Tc, ["T_self", "T_cross"])
    assert o.text() == "Θ(T_self² + T_self·T_cross)"


def test_unanalysable_growth_is_an_error():
    with pytest.raises(ScalingError):
        order(sympy.exp(T), T)
    with pytest.raises(ScalingError):
        order(T**H, T)
    assert isinstance(ScalingError("x"), symcost.SymcostError)


def test_depends_on():
    assert depends_on(T * H + H, "T") and not depends_on(H * I + H, "T")
    assert depends_on(sympy.floor(T / 2), T)


# -- an independent check: the leading term is the limit of the expression -------------------

_pieces = st.sampled_from(["poly", "floor", "min", "max", "ceil"])


@st.composite
def growing_exprs(draw):
    """Sums of products of positive pieces that each grow like T^d (d >= 0)."""
    terms = []
    for _ in range(draw(st.integers(1, 4))):
        d = draw(st.integers(0, 3))
        c = draw(st.integers(1, 9))
        kind = draw(_pieces)
        a, b = draw(st.integers(1, 7)), draw(st.integers(0, 5))
        base = T**d
        if kind == "floor":
            piece = sympy.floor((a * T + b) / 3) ** d
        elif kind == "ceil":
            piece = sympy.ceiling((T + b) / a) ** d
        elif kind == "min":
            piece = sympy.Min(base, a * T**2 + b) * H
        elif kind == "max":
            piece = sympy.Max(base, a * T + b)
        else:
            piece = base * (a + b * H)
        terms.append(c * piece)
    return sympy.Add(*terms)


@settings(max_examples=60, deadline=None)
@given(growing_exprs(), st.integers(1, 9))
def test_leading_term_is_the_limit(expr, h):
    """f(T)/leading(T) -> 1: checked at T = 10^12 with exact integers (H fixed); the relative
    error of the lower-order terms is below (their coefficients)/T, far below 10^-6 there."""
    o = order(expr, T)
    assert o.exact
    big = 10**12
    h = sympy.Integer(h)
    f = expr.xreplace({H: h}).subs(T, big)
    g = o.leading.xreplace({H: h}).subs(T, big)
    ratio = Fraction(int(f)) / Fraction(sympy.Rational(g).p, sympy.Rational(g).q)
    assert abs(ratio - 1) < Fraction(1, 10**6)
    # and the order is the log-log slope between T = 10^12 and 10^13
    f2 = expr.xreplace({H: h}).subs(T, 10 * big)
    import math
    slope = math.log10(int(f2)) - math.log10(int(f))
    assert abs(slope - float(o.degree)) < 1e-3


# -- models ------------------------------------------------------------------------------------


def conv_model(bias=True):
    m = symcost.Model("cnn1d", inputs={"x": ["I", "T"]})
    m.add("conv1d", out_channels="H", kernel_size="K", stride="S", bias=bias)
    m.add("relu")
    m.add("flatten", start_dim=0)
    return m


def test_without_bias_matches_torch_bias_false_and_leaves_the_model_alone():
    import torch
    nn = torch.nn
    m = symcost.Model("mlp", inputs={"x": ["I", "T"]})
    m.add("conv1d", out_channels="H", kernel_size=3, padding="same")
    m.add("flatten", start_dim=0)
    m.add("linear", out_features="C")
    m.add("layernorm")
    nb = without_bias(m)
    sizes = dict(I=3, T=10, H=5, C=7)

    def reference(bias):
        return nn.Sequential(nn.Conv1d(3, 5, 3, padding="same", bias=bias), nn.Flatten(0),
                             nn.Linear(50, 7, bias=bias), nn.LayerNorm(7, bias=bias))

    assert nb.cost().subs(sizes).params == sum(p.numel() for p in reference(False).parameters())
    assert m.cost().subs(sizes).params == sum(p.numel() for p in reference(True).parameters())
    # MACs exclude biases by the counting contract: the same in both views
    assert sympy.expand(nb.cost().macs - m.cost().macs) == 0


def test_without_bias_reaches_into_blocks():
    text = """
name: stack
blocks:
  mlp:
    inputs: [x]
    layers:
      - linear: {out_features: D}
input: [D]
layers:
  - mlp: {repeat: L}
"""
    m = symcost.load(text)
    D, L = symbol("D"), symbol("L")
    assert sympy.expand(m.cost().params - L * (D * D + D)) == 0
    assert sympy.expand(without_bias(m).cost().params - L * D * D) == 0


def test_scaling_verdicts():
    dnn = symcost.Model("dnn", inputs={"x": ["T", "I"]})
    dnn.add("flatten", start_dim=0)
    dnn.add("linear", out_features="H")
    rows = compare([dnn, conv_model()], "T")
    assert [r.verdict for r in rows] == ["fixed", "T"]
    assert rows[0].fixed and not rows[1].fixed
    # the strided convolution: T/S output positions of H·I·K MACs
    assert sympy.expand(rows[1].macs_order.leading - H * I * K * T / S) == 0
    assert rows[1].steps_order.text() == "Θ(1)"
    d = rows[1].as_dict()
    assert d["time_scaling"] == "T" and d["macs_order"] == "Θ(T)"


def test_compare_substitutes_only_known_sizes():
    rows = compare([conv_model()], "T", values={"K": 3, "S": 1, "Z": 5})
    assert sympy.expand(rows[0].macs - H * I * 3 * (T - 2)) == 0
    assert sympy.expand(rows[0].macs_order.leading - 3 * H * I * T) == 0
