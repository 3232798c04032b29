"""Work and span: ``steps`` is the critical path of the unrolled dependency graph.

The recurrent claims (T for one layer, T + L − 1 for a stack, L·T bidirectional, T + 1 for
two RNNs in a row) are checked against an explicit unrolled DAG of cells built here with
networkx, whose longest path is counted independently of symcost's timing rules.
"""

import itertools

import networkx as nx
import pytest
import sympy

import symcost
from symcost.sizes import symbol

T, I, H, L, N = (symbol(n) for n in ("T", "I", "H", "L", "N"))


def unrolled_steps(T, stacks, tail=0):
    """Longest path (in cells) of the unrolled graph of layers applied in sequence.

    ``stacks`` lists the stages: (num_layers, bidirectional) for an RNN stack, or the string
    "linear" for a parallel layer (one node that needs every position of its input and
    produces every position at once).  Each layer of a stack has one cell per time step and
    direction; a forward cell needs its previous step, a reverse cell its next step, and
    every cell needs position t of the layer below (all its directions).  ``tail`` parallel
    layers follow the stages.
    """
    g = nx.DiGraph()
    below = [[("x", t)] for t in range(T)]  # what position t of the current input depends on
    stages = list(stacks) + ["linear"] * tail
    for s, stage in enumerate(stages):
        if stage == "linear":
            for src in {n for row in below for n in row}:
                g.add_edge(src, ("linear", s))
            below = [[("linear", s)] for _ in range(T)]
            continue
        layers, bidirectional = stage
        for layer in range(layers):
            dirs = ("f", "r") if bidirectional else ("f",)
            for d in dirs:
                for t in range(T):
                    cell = (s, layer, d, t)
                    for src in below[t]:
                        g.add_edge(src, cell)
                    prev = t - 1 if d == "f" else t + 1
                    if 0 <= prev < T:
                        g.add_edge((s, layer, d, prev), cell)
            below = [[(s, layer, d, t) for d in dirs] for t in range(T)]
    return nx.dag_longest_path_length(g)  # edges on the path = cells on it (it starts at an input)


def rnn_model(stacks, T=T, kind="rnn", tail=0):
    m = symcost.Model("stack", inputs={"x": [T, I]})
    for layers, bidirectional in stacks:
        m.add(kind, hidden_size=H, num_layers=layers, bidirectional=bidirectional)
    for _ in range(tail):
        m.add("linear", out_features=H)
    return m.cost()


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_single_rnn_takes_t_steps(kind):
    r = rnn_model([(1, False)], kind=kind)
    assert sympy.expand(r.steps - T) == 0
    assert r.subs(T=7, I=2, H=3).steps == unrolled_steps(7, [(1, False)]) == 7


def test_stacked_rnn_is_a_wavefront_not_l_times_t():
    r = rnn_model([(L, False)])
    assert sympy.expand(r.steps - (T + L - 1)) == 0
    row = r.layer("rnn1")
    assert sympy.expand(row.steps - (T + L - 1)) == 0


def test_two_rnns_in_sequence_take_t_plus_one():
    r = rnn_model([(1, False), (1, False)])
    assert sympy.expand(r.steps - (T + 1)) == 0


def test_bidirectional_layers_are_sequential():
    r = rnn_model([(L, True)])
    assert sympy.expand(r.steps - L * T) == 0


CASES = [
    [(1, False)], [(3, False)], [(1, False), (1, False)], [(2, False), (3, False)],
    [(1, True)], [(2, True)], [(3, True)], [(1, True), (1, False)], [(2, False), (1, True)],
    [(1, False), (2, True), (2, False)], [(1, False), (4, True), (2, False)], [(2, False), (3, True), (1, False)],
    [(1, False), (2, True), (2, True), (1, False)], [(3, False), (2, True), (1, False), (2, True), (3, False)],
]


@pytest.mark.parametrize("stacks", CASES, ids=str)
@pytest.mark.parametrize("tail", [0, 1])
def test_steps_equal_the_longest_path_of_the_unrolled_graph(stacks, tail):
    symbolic = rnn_model(stacks, tail=tail)
    for t in (1, 2, 3, 5, 8):
        expected = unrolled_steps(t, stacks, tail)
        assert symbolic.subs(T=t, I=2, H=2).steps == expected, (t, stacks)
        assert rnn_model(stacks, T=t, tail=tail).subs(I=2, H=2).steps == expected


@pytest.mark.parametrize("layers,bidirectional", list(itertools.product([1, 2, 4], [False, True])))
def test_symbolic_num_layers_matches_the_unrolled_graph(layers, bidirectional):
    r = rnn_model([(L, bidirectional)])
    for t in (1, 3, 6):
        assert r.subs(T=t, L=layers, I=1, H=1).steps == unrolled_steps(t, [(layers, bidirectional)])


def test_symbolic_bidirectional_depth_after_a_stream_is_an_upper_bound():
    """rnn -> bidirectional stack of L layers -> rnn: with L symbolic, position 0 of the stack is
    taken as ready at its end (exact for odd L; for even L it is ready T − 1 steps earlier)."""
    m = symcost.Model("stack", inputs={"x": [T, I]})
    m.add("rnn", hidden_size=H)
    m.add("rnn", hidden_size=H, num_layers=L, bidirectional=True)
    m.add("rnn", hidden_size=H)
    r = m.cost()
    for layers, t in ((1, 3), (2, 3), (3, 4), (4, 2)):
        exact = unrolled_steps(t, [(1, False), (layers, True), (1, False)])
        bound = r.subs(T=t, L=layers, I=1, H=1).steps
        assert bound == exact if layers % 2 else bound == exact + t - 1


def test_feed_forward_models_do_not_grow_with_t():
    conv = symcost.Model("cnn1d", inputs={"x": [I, T]})
    conv.add("conv1d", out_channels=H, kernel_size=3, padding="same")
    conv.add("relu")
    r = conv.cost()
    assert r.steps == 2 and T in r.macs.free_symbols

    att = symcost.Model("attention", inputs={"x": [T, H]})
    att.add("multihead_attention", num_heads=1)
    assert att.cost().steps == 1

    sdpa = symcost.Model("sdpa", inputs={"q": [T, H], "k": [T, H], "v": [T, H]})
    sdpa.add("scaled_dot_product_attention", "q", "k", "v")
    assert sdpa.cost().steps == 1


BLOCK = """
name: recurrent stack
dims: {T: time steps, H: width, N: repetitions}
blocks:
  cell:
    inputs: [x]
    nodes:
      - {id: rec, op: rnn, inputs: [x], hidden_size: H}
      - {id: mix, op: linear, inputs: [rec], out_features: H}
input: [T, H]
layers:
  - cell: {id: stack, repeat: REPEAT}
"""


def test_repeated_block_with_an_rnn():
    """Each repetition: the rnn (T steps, the input all ready) then a parallel linear (1 step)."""
    r = symcost.load(BLOCK.replace("REPEAT", "N")).cost()
    assert sympy.expand(r.steps - N * (T + 1)) == 0
    for n in (1, 2, 3):
        unrolled = symcost.load(BLOCK.replace("REPEAT", str(n))).cost()
        for t in (1, 4):
            expected = unrolled_steps(t, [(1, False), "linear"] * n)
            assert r.subs(N=n, T=t, H=2).steps == unrolled.subs(T=t, H=2).steps == expected


def test_repeated_rnn_block_streams():
    """A block of one rnn repeated N times is a stack of N layers: T + N − 1 steps."""
    text = BLOCK.replace("REPEAT", "N").replace(
        "      - {id: mix, op: linear, inputs: [rec], out_features: H}\n", "")
    r = symcost.load(text).cost()
    assert sympy.expand(r.steps - (T + N - 1)) == 0
    for n, t in ((1, 3), (2, 3), (4, 5)):
        assert r.subs(N=n, T=t, H=2).steps == unrolled_steps(t, [(1, False)] * n)
