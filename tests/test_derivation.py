"""The derivation record (``symcost derive``): the seed notes' walkthrough, checked on the data, not the text.

Expected numbers come from the notes (000_…: LeNet-5 with its two slips corrected, the perceptron's
2n / n + 1 / k(2n), the conv output size ⌊(M − W + 2P)/S⌋ + 1), from PyTorch (output shapes, parameter
counts), or from arithmetic written out here; never from symcost itself.  The invariants hold on every
built-in model: each step's formula with its sizes put in is its value, and layers add up to the totals.
"""

from __future__ import annotations

import functools
import random
import re

import pytest
import sympy

import symcost
from symcost.cli import main
from symcost.derivation import UNNAMED_QUANTITY, Derivation, SpeedError, derive, parse_speed, plug, render
from symcost.errors import SymcostError
from symcost.render.mathprint import latex_written
from symcost.spec import builtin_names


def lenet() -> Derivation:
    # the record behind `symcost derive lenet5 --dtype fp32 --speed 1GFLOPS`
    return derive(symcost.load("lenet5"), dtype="fp32", speed="1GFLOPS")


def same(a, b) -> bool:
    """Mathematical equality; doit() opens the unevaluated forms a derivation keeps for display."""
    return sympy.expand(sympy.sympify(a).doit() - sympy.sympify(b).doit()) == 0


# ---------------------------------------------------------------------------
# The notes' LeNet-5
# ---------------------------------------------------------------------------


def test_lenet5_activations_as_in_the_notes():
    d = lenet()
    assert d.inputs[0].value == 1 * 32 * 32 == 1024                       # Size(x0) = 1×32×32
    z = {layer.z: layer.step("activations").value for layer in d.layers if layer.z is not None}
    # z1 is 6×28×28 (the notes' "5×28×28" is a slip), z2 6×14×14, z3 16×10×10, z4 16×5×5, z5..z7
    assert z == {1: 6 * 28 * 28, 2: 6 * 14 * 14, 3: 16 * 10 * 10, 4: 16 * 5 * 5, 5: 120, 6: 84, 7: 10}
    assert z[1] == 4704 and z[2] == 1176 and z[3] == 1600 and z[4] == 400
    assert d.total("activations").value == 8094


def test_lenet5_parameters_as_in_the_notes():
    d = lenet()
    params = {layer.id: layer.step("params").value for layer in d.layers if layer.w is not None}
    # Size(w1,b1) = 6·1·5·5 + 6, 16·6·5·5 + 16, 400·120 + 120, 120·84 + 84 (not "80×84"), 84·10 + 10
    assert params == {"conv1": 156, "conv2": 2416, "fc1": 48120, "fc2": 10164, "fc3": 850}
    conv1 = d.layer("conv1")
    assert conv1.step("weights").value == 6 * 1 * 5 * 5 == 150            # "where is it coming from?"
    assert conv1.step("bias").value == 6
    assert d.total("params").value == 156 + 2416 + 48120 + 10164 + 850 == 61706


def test_lenet5_memory_69_8k_times_4_bytes():
    d = lenet()
    assert d.total("elements").value == 8094 + 61706 == 69800
    assert d.total("elements").approx == "69.8k"                          # the notes' "≈ 69.8k × (dt)"
    memory = d.total("memory")
    assert memory.value == 69800 * 4 and memory.unit == "bytes"


def test_lenet5_conv1_operations_written_out():
    conv1 = lenet().layer("conv1")
    ops = conv1.step("ops")
    assert ops.value == 6 * 28 * 28 * 2 * 1 * 5 * 5 == 235200               # K·M1·N1·2CHW
    K, M1, N1, C, W, H = (symcost.symbol(x) for x in ("K", "M_1", "N_1", "C", "W", "H"))
    assert same(ops.general, K * M1 * N1 * 2 * C * W * H)
    assert latex_written(ops.substituted) == r"6 \cdot 28 \cdot 28 \cdot 2 \cdot 1 \cdot 5 \cdot 5"
    fma = conv1.step("fma")
    assert fma.value == 6 * 28 * 28 * (1 * 5 * 5 + 1) == 122304              # K·M1·N1·(CHW + 1)
    assert same(fma.general, K * M1 * N1 * (C * W * H + 1))
    node = conv1.step("ops_node")                                           # 1A + CHW M + (CHW − 1) A
    assert same(node.general, 2 * C * W * H) and node.value == 50
    assert conv1.step("macs").value == 6 * 28 * 28 * 25


def test_lenet5_output_size_formula_is_the_notes_one():
    conv1 = lenet().layer("conv1")
    step = conv1.step("size_M1")
    M, W, P, S = (symcost.symbol(x) for x in ("M", "W", "P_w", "S_w"))
    # M1 = ⌊(M − W + 2P)/S⌋ + 1 (shown with D = 1, and the layer says so)
    assert same(step.general, sympy.floor((M - W + 2 * P) / S) + 1)
    assert step.value == (32 - 5 + 2 * 0) // 1 + 1 == 28
    assert "no dilation" in "".join(p for p in conv1.note if isinstance(p, str))


def test_lenet5_pool_comparisons():
    pool1 = lenet().layer("pool1")
    assert pool1.step("ops").value == 6 * 14 * 14 * (2 * 2 - 1) == 3528    # (hw − 1) per output node
    assert pool1.step("ops_node").value == 3
    assert pool1.step("fma").value is None                                   # nothing to fuse


def test_lenet5_latency_and_throughput_at_1_gflops():
    d = lenet()
    # non-pipelined operations, layer by layer (conv K·M1·N1·2CHW, relu 1 cmp per element,
    # pool (hw − 1) per output, linear k·2n)
    ops = (6 * 28 * 28 * 2 * 25 + 6 * 28 * 28 + 6 * 14 * 14 * 3 + 16 * 10 * 10 * 2 * 150 + 16 * 10 * 10
           + 16 * 5 * 5 * 3 + 120 * 2 * 400 + 120 + 84 * 2 * 120 + 84 + 10 * 2 * 84)
    assert d.total("ops").value == ops
    assert d.speed == 10**9
    latency, throughput = d.total("latency"), d.total("throughput")
    assert latency.value == sympy.Rational(ops, 10**9) and latency.unit == "s"
    assert throughput.value == sympy.Rational(10**9, ops) and throughput.unit == "samples/s"
    assert latency.shown == f"{ops / 1000:.3f} µs"                          # 844.276 µs, exact
    assert throughput.shown.startswith("≈ 1,184.4")


def test_cli_derive_lenet5_runs_every_format(capsys, tmp_path):
    for fmt in ("markdown", "latex", "html"):
        out = tmp_path / f"lenet5.{fmt}"
        assert main(["derive", "lenet5", "--dtype", "fp32", "--speed", "1GFLOPS", "--format", fmt,
                     "-o", str(out)]) == 0
        assert out.stat().st_size > 1000
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------------------
# The perceptron and the symbolic mode
# ---------------------------------------------------------------------------


def test_perceptron_2n_pipelined_n_plus_1_and_k_nodes():
    d = derive(symcost.load("perceptron"))
    n, k = symcost.symbol("n"), symcost.symbol("k")
    layer = d.layers[0]
    node = layer.step("ops_node")
    # n multiplications, n − 1 additions, 1 bias addition = 2n
    terms = node.general.args[0].args
    assert len(terms) == 3 and all(same(t, e) for t, e in zip(terms, (n, n - 1, 1)))
    assert same(node.value, 2 * n)
    words = "".join(p for p in node.sentence if isinstance(p, str))
    assert "multiplications" in words and "additions" in words and "bias addition" in words
    assert same(layer.step("fma_node").value, n + 1)                        # pipelined: n + 1
    assert same(layer.step("ops").value, k * 2 * n)                          # k(2n) for k nodes
    assert same(layer.step("fma").value, k * (n + 1))
    assert same(layer.step("params").value, n * k + k)


def test_symbolic_mode_is_formulas_only():
    d = derive(symcost.load("lenet5"), symbolic=True)
    steps = [s for layer in d.layers for s in layer.steps] + list(d.totals)
    assert all(s.substituted is None and s.value is None for s in steps)
    assert any(s.general is not None and s.general.free_symbols for s in steps)


def test_symbolic_model_without_sizes_keeps_its_symbols_and_agrees_with_sizes_put_in():
    sym = derive(symcost.load("mnist_mlp"))
    Nh = symcost.symbol("Nh")
    assert sym.total("params").value.free_symbols == {Nh}
    for value in random.Random(4).sample(range(1, 5000), 4):
        given = derive(symcost.load("mnist_mlp"), values={"Nh": value})
        for key in ("params", "activations", "ops", "fma", "macs", "memory"):
            assert sym.total(key).value.xreplace({Nh: value}) == given.total(key).value
    # and the notes' count for the hidden layer: 784·Nh + Nh parameters
    assert same(sym.layer("hidden").step("params").value, 785 * Nh)


def test_dilated_conv_output_size_matches_pytorch():
    import torch
    m = symcost.Model("dilated", inputs={"x": [3, 37, 29]})
    m.add("conv2d", out_channels=4, kernel_size=[5, 3], stride=[2, 3], padding=[1, 2], dilation=[3, 2], id="c")
    layer = derive(m).layer("c")
    ref = torch.nn.Conv2d(3, 4, (5, 3), stride=(2, 3), padding=(1, 2), dilation=(3, 2))(torch.zeros(1, 3, 37, 29))
    assert (layer.step("size_M1").value, layer.step("size_N1").value) == tuple(ref.shape[2:])
    assert layer.step("params").value == sum(p.numel() for p in
                                             torch.nn.Conv2d(3, 4, (5, 3), dilation=(3, 2)).parameters())
    M, W, P, S, D = (symcost.symbol(x) for x in ("M", "W", "P_w", "S_w", "D_w"))
    assert same(layer.step("size_M1").general, sympy.floor((M + 2 * P - D * (W - 1) - 1) / S) + 1)


# ---------------------------------------------------------------------------
# Invariants on every built-in model
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _derived(name: str) -> Derivation:
    return derive(symcost.load(name), speed="1GFLOPS")


def _all_steps(d: Derivation):
    for s in d.inputs:
        yield "input", s
    for layer in d.all_layers():
        for s in layer.steps:
            yield layer.id, s
    for s in d.totals:
        yield "totals", s


@pytest.mark.parametrize("name", builtin_names())
def test_every_step_substituted_is_its_value(name):
    d = _derived(name)
    checked = 0
    for where, s in _all_steps(d):
        if s.value is None:
            continue
        if s.substituted is not None:
            assert same(s.substituted.doit(), s.value), (where, s.key)
        if s.general is not None and s.values:
            # the general formula with the quantities' values put in (evaluated) is the value too
            assert same(s.general.doit().xreplace(s.values), s.value), (where, s.key)
            assert same(plug(s.general, s.values).doit(), s.value), (where, s.key)
        checked += 1
    assert checked > 3


@pytest.mark.parametrize("name", builtin_names())
def test_layers_add_up_to_the_totals_and_to_the_report(name):
    model = symcost.load(name)
    d = _derived(name)
    report = model.cost(batch=1)
    layers = d.layers
    for key, field in (("params", "params"), ("activations", "activations"), ("ops", "flops"),
                       ("fma", "fma_ops")):
        per_layer = sympy.Add(*(getattr(layer.cost, field) for layer in layers))
        assert same(per_layer, d.total(key).value), key
        assert same(d.total(key).value, getattr(report, field)), key
    for layer, row in zip(layers, report.rows):
        assert layer.id == row.name
        assert same(layer.cost.params, row.params) and same(layer.cost.flops, row.flops)
    # the per-layer steps are the layer's own count
    for layer in d.all_layers():
        for key, field in (("params", "params"), ("ops", "flops"), ("fma", "fma_ops"), ("macs", "macs")):
            if layer.has(key) and layer.step(key).value is not None and not layer.children:
                assert same(layer.step(key).value, getattr(layer.cost, field)), (layer.id, key)


#: Keys of the derivation record that are not words: they must never reach a reader.
INTERNAL = re.compile(r"size_|size\\_|ops_node|ops\\_node|fma_node|fma\\_node|FMA_node")


def _size_names(name: str) -> set[str]:
    model = symcost.load(name)
    d = _derived(name)
    names = set(model.dims)
    for s in d.totals:
        if s.value is not None:
            names |= {x.name for x in s.value.free_symbols}
    return names


@pytest.mark.parametrize("name", builtin_names())
def test_no_internal_key_in_any_rendering(name):
    """Issue 12 item 10: a block's list of layers printed the record's keys (size_d, ops_node, fma_node)."""
    d = _derived(name)
    for fmt in ("markdown", "latex", "html"):
        text = render(d, fmt)
        found = INTERNAL.findall(text)
        assert not found, (name, fmt, sorted(set(found)))


@pytest.mark.parametrize("name", builtin_names())
def test_notation_letters_are_defined_and_never_read_as_a_users_size(name):
    """Every letter a layer's formulas use is in its notation line (or its note), and a letter that is also
    one of the model's size names stands for that very size there (rnn's T over the model's T); otherwise
    it is primed (rnn_lm's softmax has V' vectors beside the vocabulary V)."""
    d = _derived(name)
    users = _size_names(name)
    for layer in d.all_layers():
        legend = {sym: what for sym, what in layer.legend}
        note = set().union(*(p.free_symbols for p in layer.note if isinstance(p, sympy.Basic)))
        values = {}
        used = set()
        for s in layer.steps:
            values.update(s.values)
            used |= s.general.free_symbols if s.general is not None else set()
        for sym in used | set(legend) | note:
            if sym.name in users:
                assert values.get(sym, sym) == sym, (name, layer.id, sym, values.get(sym))
            else:
                assert sym in legend or sym in note, (name, layer.id, sym, "used but never defined")
        assert UNNAMED_QUANTITY not in legend.values(), (name, layer.id, "a quantity without a meaning")


def test_a_notation_letter_that_is_a_users_size_is_primed():
    """The model's own V (vocabulary) and L, D (sizes of its own) beside the softmax's V and the RNN's L = 1,
    D = 1: the layer's letters are primed, the user's stay."""
    text = ("dims: {T: tokens, V: vocabulary, L: layers, D: width}\ninput: [T, D]\n"
            "layers:\n  - rnn: {hidden_size: V}\n  - softmax: {}\n  - linear: {out_features: L}\n")
    d = derive(symcost.load(text))
    rnn, soft = d.layers[0], d.layers[1]
    note = set().union(*(p.free_symbols for p in rnn.note if isinstance(p, sympy.Basic)))
    assert {x.name for x in note} >= {"L'", "D'"} and not {x.name for x in note} & {"L", "D"}
    assert {x.name for x, _ in soft.legend} == {"E", "n", "V'"}
    md = render(d, "markdown")
    assert "$V'$ vectors" in md and "L' = 1" in md
    assert r"\mathrm{V'}" not in md  # the prime follows the letter, not an upright name


def test_a_block_from_the_readme_lists_its_layers_in_words():
    text = ("blocks:\n  mlp:\n    inputs: [x]\n    nodes:\n"
            "      - {id: up, op: linear, inputs: [x], out_features: 4*D}\n"
            "      - {id: act, op: gelu, inputs: [up]}\n"
            "      - {id: down, op: linear, inputs: [act], out_features: D}\n"
            "      - {id: res, op: add, inputs: [x, down]}\n"
            "input: [D]\nlayers:\n  - mlp: {id: blocks, repeat: L}\n")
    d = derive(symcost.load(text))
    block = d.layers[0]
    up = block.children[0]
    assert [label for label, _ in up.summary] == ["activations", "parameters", "operations",
                                                  "operations with FMA", "MACs"]
    assert same(dict(up.summary)["parameters"], 4 * symcost.symbol("D") ** 2 + 4 * symcost.symbol("D"))
    assert [s.lhs.name for s in block.steps if s.lhs is not None] == ["params_blocks", "act_blocks",
                                                                      "ops_blocks", "FMA_blocks"]
    for fmt in ("markdown", "latex", "html"):
        text_out = render(d, fmt)
        assert not INTERNAL.findall(text_out) and "(pipelined, fma)" not in text_out, fmt


def test_a_layer_derived_once_is_the_same_for_every_layer_like_it():
    """Layers with the same kind and sizes share one derivation (derive pays once per distinct layer):
    the later ones have their own id, z and w numbers, and the same formulas and values."""
    text = "dims: {D: width}\ninput: [D]\nlayers:\n" + "- linear: {out_features: D}\n- tanh: {}\n" * 3
    d = derive(symcost.load(text), values={"D": 7})
    first, third = d.layers[0], d.layers[4]
    assert (first.id, third.id, first.z, third.z, first.w, third.w) == ("linear1", "linear3", 1, 3, 1, 3)
    for a, b in zip(first.steps, third.steps):
        assert (a.key, a.general, a.substituted, a.value) == (b.key, b.general, b.substituted, b.value)
    act = third.step("activations")
    assert "'linear3'" in act.sentence and symcost.symbol("z_3") in act.sentence
    assert act.lhs.args == (symcost.symbol("z_3"),)
    assert third.step("weights").lhs.args == (symcost.symbol("w_3"),)
    md = render(d, "markdown")
    assert md.count("Size}{\\left(w_{3} \\right)}") == 1 and "'linear3'" in md


def test_a_long_derivation_writes_a_run_of_identical_layers_once():
    n = 150
    model = symcost.load("input: [4, 5]\nlayers:\n" + "- sigmoid: {}\n" * n)
    d = derive(model)
    assert [layer.id for layer in d.layers] == ["sigmoid1", f"sigmoid2..sigmoid{n}"]
    run_ = d.layers[1]
    assert run_.same_as == "sigmoid1" and run_.repeat == n - 1
    assert run_.step("ops").value == (n - 1) * d.layers[0].cost.flops
    report = model.cost(batch=1)
    for key, field in (("params", "params"), ("activations", "activations"), ("ops", "flops"), ("fma", "fma_ops")):
        assert same(d.total(key).value, getattr(report, field)), key
    for s in d.totals:
        if s.substituted is not None and s.value is not None:
            assert same(s.substituted.doit(), s.value), s.key
    assert len(render(d, "markdown")) < 20_000


# ---------------------------------------------------------------------------
# Speeds and errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, flops", [
    ("1e9", 10**9), ("1000000000", 10**9), ("1GFLOPS", 10**9), ("2.5 TFLOPS", 25 * 10**11),
    ("500 MFLOP/s", 5 * 10**8), ("1.5e3k", 15 * 10**5), ("3 gflops", 3 * 10**9), ("7", 7),
])
def test_parse_speed(text, flops):
    value = parse_speed(text)
    assert value == flops and isinstance(value, sympy.Rational)


@pytest.mark.parametrize("text", ["", "abc", "-1", "0", "0 GFLOPS", "1e999", "1e9; rm -rf /", "__import__('os')",
                                  "1 XFLOPS", "1,5 GFLOPS", "9" * 80, "1e9e9"])
def test_parse_speed_refuses(text):
    with pytest.raises(SpeedError):
        parse_speed(text)


@pytest.mark.parametrize("argv, words", [
    (["derive", "lenet6"], ["lenet5"]),
    (["derive", "mnist_mlp", "--set", "Nx=3"], ["Nx", "Nh"]),
    (["derive", "lenet5", "--speed", "fast"], ["speed", "fast"]),
    (["derive", "lenet5", "--format", "pdf"], ["pdf"]),
    (["derive", "lenet5", "-o", "/nonexistent-dir/x.md"], ["/nonexistent-dir/x.md"]),
    (["derive", "lenet5", "--templates", "/nonexistent-dir"], ["/nonexistent-dir"]),
])
def test_derive_user_errors_are_one_line_exit_2(capsys, argv, words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("symcost: error:")
    for w in words:
        assert w in err


def test_speed_errors_are_symcost_errors():
    assert issubclass(SpeedError, SymcostError)
    with pytest.raises(SymcostError):
        derive(symcost.load("lenet5"), speed=-3)


def test_user_templates_come_first(tmp_path, capsys):
    (tmp_path / "derive.md.j2").write_text("custom {{ d.model }} {{ d.total('params').value }}\n", encoding="utf-8")
    assert main(["derive", "lenet5", "--templates", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "custom LeNet-5 61706\n"


def test_latex_lines_break_a_long_product_inside_its_sum():
    """n_layer·(one block's long count), as in a repeated block: broken inside the sum between
    \\bigl( and \\bigr), each line within the width, and nothing lost or reordered."""
    from symcost.render.mathprint import DerivationLatexPrinter, arrange, latex_lines, visible_length

    L, T, d, h = (symcost.symbol(n) for n in ("n_layer", "T", "d_model", "n_head"))
    block = 24 * T * d**2 + 4 * T**2 * d + 5 * T**2 * h + 51 * T * d - 2 * T * h + 4 * T
    for expr in (L * block, T * d + L * block + 7 * T * d * L):
        whole = DerivationLatexPrinter().doprint(arrange(expr))
        lines = latex_lines(expr, width=40)
        assert len(lines) > 2 and all(visible_length(line) <= 40 for line in lines), lines
        assert sum(line.count(r"\bigl(") for line in lines) == sum(line.count(r"\bigr)") for line in lines) == 1
        joined = " ".join(lines).replace(r"\bigl(", r"\left(").replace(r"\bigr)", r"\right)")
        assert joined.replace(" ", "") == whole.replace(" ", "")
    assert latex_lines(L * (T + d)) == [DerivationLatexPrinter().doprint(arrange(L * (T + d)))]  # short: one line


@pytest.mark.parametrize("name", ["lenet5", "gpt2", "palm", "llama", "lstm_lm", "transformer_encoder", "cross_attention"])
def test_mathml_lines_break_long_sums_without_losing_a_symbol(name):
    """HTML's breakable formulas (one <math> per term of a long sum; MathML Core never breaks a <math>):
    every formula of a derivation reads, piece after piece, exactly as its one-<math> print, symbol for
    symbol; long sums are broken, short formulas are one <math>; n_layer·(…)'s ( and ) fall in different
    pieces and do not stretch (each piece is laid out alone)."""
    import xml.etree.ElementTree as ET

    from symcost.render.mathprint import BREAK_FROM, mathml, mathml_lines, shown_chars

    def tokens(markup):
        root = ET.fromstring("<r>" + markup.replace("<wbr>", "<wbr/>") + "</r>")
        return [el.text for el in root.iter() if el.tag.endswith(("}mi", "}mn", "}mo"))]

    broken = 0
    for where, s in _all_steps(_derived(name)):
        for e in s.parts:
            whole, lines = mathml(e), mathml_lines(e)
            assert tokens(lines) == tokens(whole), (where, s.key)
            if lines != whole:
                broken += 1
                assert lines.startswith('<span class="terms">') and shown_chars(whole) > BREAK_FROM
                pieces = lines.count("<math")
                assert pieces >= 2 and lines.count("<wbr>") == pieces - 1
                fences = lines.count('stretchy="false"')
                assert fences % 2 == 0 and (fences == 0 or "(" in tokens(lines))
            else:
                assert lines.count("<math") == 1
    assert broken > 0
