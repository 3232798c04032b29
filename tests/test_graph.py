"""Graph building, shape propagation, blocks and the errors of broken graphs."""

import pytest
import sympy

import symcost
from symcost import Model, ShapeError, SpecError
from symcost.sizes import symbol

RESIDUAL = """
name: residual MLP
dims: {D: model width, F: hidden width}
inputs:
  x: [D]
nodes:
  - {id: up, op: linear, inputs: [x], out_features: F}
  - {id: act, op: relu, inputs: [up]}
  - {id: down, op: linear, inputs: [act], out_features: D}
  - {id: out, op: add, inputs: [x, down]}
"""

D, F, L = symbol("D"), symbol("F"), symbol("L")


def test_residual_graph_spec():
    r = symcost.load(RESIDUAL).cost()
    assert sympy.expand(r.params - (2 * D * F + D + F)) == 0
    assert sympy.expand(r.macs - 2 * D * F) == 0
    assert r.output_shapes == [(D,)]
    assert r.subs(D=4, F=8).params == 2 * 4 * 8 + 4 + 8


def test_per_layer_costs_sum_to_total():
    r = symcost.load("lenet5").cost()
    for field in ("params", "activations", "macs", "flops", "fma_ops"):
        assert sum(getattr(row, field) for row in r.rows) == getattr(r, field)


def block_model(repeat):
    text = f"""
name: stack
dims: {{D: width, L: depth}}
blocks:
  mlp:
    inputs: [x]
    nodes:
      - {{id: up, op: linear, inputs: [x], out_features: 4*D}}
      - {{id: act, op: gelu, inputs: [up]}}
      - {{id: down, op: linear, inputs: [act], out_features: D}}
      - {{id: res, op: add, inputs: [x, down]}}
input: [D]
layers:
  - mlp: {{id: blocks, repeat: {repeat}}}
  - linear: {{id: head, out_features: 10}}
"""
    return symcost.load(text)


def test_block_repeat_symbolic_equals_unrolled():
    sym = block_model("L").cost()
    per_block = 2 * (4 * D * D) + 4 * D + D
    assert sympy.expand(sym.params - (L * per_block + 10 * D + 10)) == 0
    assert sym.steps == 4 * L + 1
    three = block_model(3).cost()
    assert sym.subs(L=3, D=8).params == three.subs(D=8).params
    assert sym.subs(L=3, D=8).flops == three.subs(D=8).flops
    # the cost of the block itself, one use (all repetitions)
    blk = block_model("L").cost().layer("blocks")
    assert blk.children is not None and [c.name for c in blk.children.rows] == ["up", "act", "down", "res"]


def test_python_builder_matches_yaml():
    m = Model("LeNet-5", inputs={"x": [1, 32, 32]})
    for op, args in [
        ("conv2d", dict(out_channels=6, kernel_size=5)), ("relu", {}), ("maxpool2d", dict(kernel_size=2)),
        ("conv2d", dict(out_channels=16, kernel_size=5)), ("relu", {}), ("maxpool2d", dict(kernel_size=2)),
        ("flatten", {}), ("linear", dict(out_features=120)), ("relu", {}),
        ("linear", dict(out_features=84)), ("relu", {}), ("linear", dict(out_features=10)),
    ]:
        m.add(op, **args)
    r, y = m.cost(), symcost.load("lenet5").cost()
    assert (r.params, r.macs, r.flops, r.activations) == (y.params, y.macs, y.flops, y.activations)


def test_batch_scales_everything_but_params():
    one = symcost.load("lenet5").cost()
    b = symcost.load("lenet5").cost(batch="B")
    B = symbol("B")
    assert b.params == one.params
    assert sympy.expand(b.macs - B * one.macs) == 0
    assert sympy.expand(b.input - B * one.input) == 0
    assert b.subs(B=8).activations == 8 * one.activations


@pytest.mark.parametrize(
    "text, error, words",
    [
        ("input: [4]\nlayers:\n  - linaer: {out_features: 3}", SpecError, ["linaer", "linear"]),
        ("input: [4]\nnodes:\n  - {id: a, op: relu, inputs: [b]}", SpecError, ["'b'", "layer 'a'"]),
        ("inputs: {x: [4]}\nnodes:\n  - {id: a, op: add, inputs: [x, b]}\n  - {id: b, op: relu, inputs: [a]}",
         SpecError, ["cycle"]),
        ("input: [1, 4, 4]\nlayers:\n  - conv2d: {out_channels: 2, kernel_size: 5}", ShapeError,
         ["conv2d", "larger than the padded input"]),
        ("inputs: {x: [3], y: [4]}\nnodes:\n  - {id: s, op: add, inputs: [x, y]}", ShapeError, ["[3]", "[4]"]),
        ("input: [4]\nlayers:\n  - linear: {out_features: -2}", symcost.SizeError, ["out_features"]),
        ("input: [4]\nlayers:\n  - linear: {out_feature: 2}", SpecError, ["out_features"]),
        ("input: [1, 8]\nlayers:\n  - conv1d: {out_channels: 3, kernel_size: 2, groups: 2}", ShapeError,
         ["divisible"]),
    ],
)
def test_broken_specs_name_the_layer_and_the_problem(text, error, words):
    with pytest.raises(error) as info:
        symcost.load(text).cost()
    message = str(info.value)
    assert "\n" not in message
    for w in words:
        assert w in message


def test_substitution_checks_shapes():
    m = Model("c", inputs={"x": [1, "M"]})
    m.add("conv1d", out_channels=2, kernel_size=5, id="c")
    r = m.cost()
    assert r.conditions and "M1" in r.conditions[0][1]
    with pytest.raises(ShapeError, match="layer 'c'"):
        r.subs(M=3)
    assert r.subs(M=5).macs == 2 * 1 * 5


def test_add_block_refuses_the_name_of_a_layer_kind():
    """From Python as from YAML: a block called 'linear' would replace the kind for the whole model."""
    m = Model("m", inputs={"x": [4]})
    inner = Model("inner")
    inner.add_input("x", None)
    inner.add("relu", "x")
    with pytest.raises(SpecError, match="block 'linear' has the name of the layer kind 'linear'"):
        m.add_block("linear", inner)
    m.add_block("act", inner)  # any other name is a block
    m.add("act")
    assert m.cost().activations == 0
