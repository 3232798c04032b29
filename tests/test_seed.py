"""The seed notes' LeNet-5 numbers, from the notes' own arithmetic (slips corrected)."""

import sympy

import symcost
from symcost.render import latex


def lenet():
    return symcost.load("lenet5").cost()


def test_lenet5_parameters_per_layer_and_total():
    r = lenet()
    params = {row.name: int(row.params) for row in r.rows if row.params != 0}
    # Size(w1,b1) = 6·1·5·5 + 6; Size(w2,b2) = 16·6·5·5 + 16; 400·120 + 120; 120·84 + 84; 84·10 + 10
    assert params == {"conv1": 156, "conv2": 2416, "fc1": 48120, "fc2": 10164, "fc3": 850}
    assert r.params == 61706


def test_lenet5_activations_and_input():
    r = lenet()
    sizes = [int(sympy.Mul(*row.shape)) for row in r.rows if row.activations != 0]
    # z1 6×28×28, z2 6×14×14, z3 16×10×10, z4 16×5×5, z5 120, z6 84, z7 10
    assert sizes == [4704, 1176, 1600, 400, 120, 84, 10]
    assert r.activations == 8094
    assert r.input == 1024
    assert r.memory_bytes["total"] == (8094 + 61706) * 4


def test_lenet5_shapes():
    shapes = {row.name: tuple(int(d) for d in row.shape) for row in lenet().rows}
    assert shapes["conv1"] == (6, 28, 28)
    assert shapes["pool1"] == (6, 14, 14)
    assert shapes["conv2"] == (16, 10, 10)
    assert shapes["pool2"] == (16, 5, 5)
    assert shapes["flatten"] == (400,)
    assert [shapes[k] for k in ("fc1", "fc2", "fc3")] == [(120,), (84,), (10,)]


def test_lenet5_operations():
    r = lenet()
    conv1, pool1 = r.layer("conv1"), r.layer("pool1")
    assert conv1.flops == 6 * 28 * 28 * 2 * 1 * 5 * 5 == 235200      # K·M1·N1·2CHW
    assert conv1.fma_ops == 6 * 28 * 28 * (1 * 5 * 5 + 1) == 122304  # K·M1·N1·(CHW + 1)
    assert pool1.ops["cmp"] == 6 * 14 * 14 * (2 * 2 - 1) == 3528       # (hw − 1) per output
    assert r.macs == 416520


def test_symbolic_conv_formula_renders_and_evaluates():
    m = symcost.Model("conv", inputs={"x": ["C", "M", "N"]})
    m.add("conv2d", out_channels="K", kernel_size=["W", "H"], id="conv")
    row = m.cost().layer("conv")
    C, M, N, K, W, H = (symcost.symbol(s) for s in "CMNKWH")
    expected = K * (M - W + 1) * (N - H + 1) * 2 * C * W * H
    assert sympy.expand(row.flops - expected) == 0
    tex = latex(row.flops)
    assert "W" in tex and "\\cdot" in tex
    values = {C: 1, M: 32, N: 32, K: 6, W: 5, H: 5}
    assert row.flops.xreplace(values) == 235200
