"""Fuzzing the front door: random size strings and random specs, valid and broken.

Nothing may escape but symcost's own errors (``SizeError`` from ``parse_size``, any
``SymcostError`` from ``load(...).cost()``), the command line exits 0 or 2 and never 1 ("this is a
bug"), and no example takes longer than a second (hypothesis' deadline).

Bounded for CI: ``SYMCOST_FUZZ_EXAMPLES`` examples per test (default 200), derandomized so that
CI is reproducible.  A long local run draws fresh random examples::

    SYMCOST_FUZZ_EXAMPLES=5000 python -m pytest -q tests/test_fuzz.py
    SYMCOST_DIFF_EXAMPLES=3000 python -m pytest -q tests/test_differential.py

(see docs/robustness.md for the figures of the last long run).
"""

import io
import os
from contextlib import redirect_stderr, redirect_stdout
from fractions import Fraction

import pytest
import sympy
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from symcost import SizeError, SymcostError
from symcost.cli import main
from symcost.layers import REGISTRY, load_all
from symcost.sizes import parse_size, symbol
from symcost.spec import from_dict

EXAMPLES = int(os.environ.get("SYMCOST_FUZZ_EXAMPLES", "200"))
LONG_RUN = "SYMCOST_FUZZ_EXAMPLES" in os.environ

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=1000,  # ms: nothing symcost is given may take a second
    derandomize=not LONG_RUN,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    database=None,
)

load_all()
OPS = sorted(REGISTRY)
ARG_NAMES = sorted({a.name for k in REGISTRY.values() for a in k.args})
NAMES = ["H", "K", "T", "M", "N", "C", "W", "S", "P", "B", "Nh", "d_model", "x1"]

# ------------------------------------------------------------------------------------------------
# Size strings
# ------------------------------------------------------------------------------------------------

TOKENS = NAMES + [
    "floor", "ceil", "min", "max", "sin", "__import__", "lambda", "eval", "os", "system", "e", "I", "E", "pi", "oo",
    "(", ")", ",", "+", "-", "*", "/", "//", "**", "%", ".", "[", "]", "'", '"', ":", "=", " ", "\t", "\n",
    "0", "1", "2", "3", "7", "40", "64", "65", "1.5", "1e3", "9" * 40, "9" * 41, "10**40", "\x00", "é", "٣",
]

size_text = st.one_of(
    st.lists(st.sampled_from(TOKENS), max_size=40).map("".join),
    st.text(max_size=60),
    st.text(alphabet="()+-*/0123456789HK ,", max_size=200),
    st.builds(lambda d, x: "(" * d + x + ")" * d, st.integers(0, 120), st.sampled_from(["1", "H", "H+1"])),
    st.builds(lambda n: "**".join(["2"] * n), st.integers(1, 8)),
)


@FUZZ
@given(size_text)
def test_parse_size_only_raises_size_error(text):
    try:
        value = parse_size(text)
    except SizeError as err:
        assert "\n" not in str(err)
        return
    assert isinstance(value, sympy.Expr)
    assert not value.atoms(sympy.Float), "a size never becomes a float"


# A valid expression as a tree, rendered fully parenthesised and evaluated independently with
# Fractions -- the grammar's result must agree at random positive values of its names.


def _leaf():
    return st.one_of(st.integers(0, 10**6).map(lambda n: ("int", n)), st.sampled_from(NAMES[:6]).map(lambda s: ("name", s)))


def _node(children):
    binary = st.tuples(st.sampled_from(["+", "-", "*", "/", "//"]), children, children)
    power = st.tuples(st.just("**"), children, st.integers(0, 3))
    unary = st.tuples(st.just("neg"), children)
    func = st.tuples(st.sampled_from(["floor", "ceil"]), children)
    minmax = st.tuples(st.sampled_from(["min", "max"]), st.lists(children, min_size=1, max_size=3))
    return st.one_of(binary, power, unary, func, minmax)


trees = st.recursive(_leaf(), _node, max_leaves=12)


def render(t) -> str:
    kind = t[0]
    if kind == "int":
        return str(t[1])
    if kind == "name":
        return t[1]
    if kind == "neg":
        return f"(-{render(t[1])})"
    if kind == "**":
        return f"({render(t[1])})**{t[2]}"
    if kind in ("floor", "ceil"):
        return f"{kind}({render(t[1])})"
    if kind in ("min", "max"):
        return f"{kind}(" + ", ".join(render(c) for c in t[1]) + ")"
    return f"({render(t[1])} {kind} {render(t[2])})"


class _DivZero(Exception):
    pass


def evaluate(t, env):
    kind = t[0]
    if kind == "int":
        return Fraction(t[1])
    if kind == "name":
        return Fraction(env[t[1]])
    if kind == "neg":
        return -evaluate(t[1], env)
    if kind == "**":
        return evaluate(t[1], env) ** t[2]
    if kind == "floor":
        return Fraction(evaluate(t[1], env).__floor__())
    if kind == "ceil":
        return Fraction(evaluate(t[1], env).__ceil__())
    if kind in ("min", "max"):
        vals = [evaluate(c, env) for c in t[1]]
        return min(vals) if kind == "min" else max(vals)
    a, b = evaluate(t[1], env), evaluate(t[2], env)
    if kind in ("/", "//") and b == 0:
        raise _DivZero
    return {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else None, "//": Fraction((a / b).__floor__()) if b else None}[kind]


@FUZZ
@given(trees, st.lists(st.integers(1, 50), min_size=6, max_size=6))
def test_the_grammar_agrees_with_an_independent_evaluator(tree, values):
    text = render(tree)
    env = dict(zip(NAMES[:6], values))
    try:
        expected = evaluate(tree, env)
    except _DivZero:
        expected = None
    try:
        parsed = parse_size(text)
    except SizeError:
        # refused: only for a literal division by zero, a too-large number/expansion, or the length limit
        return
    got = parsed.xreplace({symbol(k): sympy.Integer(v) for k, v in env.items()})
    if expected is None:
        # a symbolic divisor that is zero at these values: sympy gives zoo/nan, never a silent number
        assume(False)
    assert got == sympy.Rational(expected.numerator, expected.denominator), (text, env)


# ------------------------------------------------------------------------------------------------
# Random specs
# ------------------------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 70), st.integers(-(10**80), 10**80), st.floats(allow_nan=True),
    st.sampled_from(NAMES + ["same", "valid", "tanh", "none", "x", "2*H", "H-1", "(K-1)//2", "floor(T/3)", "-1"]),
    size_text,
)
values = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=4),
                                                   st.dictionaries(st.sampled_from(ARG_NAMES + ["x"]), c, max_size=3)),
                      max_leaves=8)
small_size = st.one_of(st.integers(1, 12), st.sampled_from(NAMES[:6] + ["2*H", "H+1"]))


def arg_value(arg, noise=10):
    """Plausible values for an argument of the given type, anything with probability noise %."""
    plausible = {
        "size": small_size, "size0": st.one_of(st.integers(0, 4), small_size),
        "sizes": st.one_of(small_size, st.lists(small_size, min_size=1, max_size=3)),
        "sizes0": st.one_of(st.integers(0, 3), st.lists(st.integers(0, 3), min_size=1, max_size=3)),
        "padding": st.one_of(st.integers(0, 3), st.sampled_from(["same", "valid"])),
        "bool": st.booleans(), "int": st.integers(-4, 4), "prob": st.floats(0, 1),
        "choice": st.sampled_from(list(arg.choices) or ["x"]), "name": st.sampled_from(["l0", "l1", "x"]),
        "shape": st.lists(st.one_of(small_size, st.just(-1)), min_size=1, max_size=4),
    }.get(arg.type, values)
    return st.integers(0, 99).flatmap(lambda r: values if r < noise else plausible)


UNARY_OPS = [o for o in OPS if REGISTRY[o].min_inputs == 1]


@st.composite
def layer(draw, index, ops=UNARY_OPS, noise=10):
    def noisy():
        return draw(st.integers(0, 99)) < noise

    op = draw(st.one_of(st.sampled_from(["lineer", "conv", "Linear", "blk"]), st.text(max_size=8))
              if noisy() else st.sampled_from(ops))
    kind = REGISTRY.get(op)
    args = {}
    if kind is not None:
        from symcost.layers.base import REQUIRED as required

        for a in kind.args:
            wanted = a.default is required or draw(st.integers(0, 3)) == 0
            if wanted != noisy():
                args[a.name] = draw(arg_value(a, noise))
    if noisy():
        args[draw(st.sampled_from(ARG_NAMES + ["id", "repeat", "kernel", "bogus"]))] = draw(values)
    if draw(st.booleans()):
        args["id"] = f"l{index}"
    return {op: args}


@st.composite
def graph_node(draw, index, ids, noise):
    item = draw(layer(index, OPS, noise))
    ((op, args),) = item.items()
    kind = REGISTRY.get(op)
    n = draw(st.integers(kind.min_inputs if kind else 1, (kind.max_inputs or 3) if kind else 2))
    return {"id": f"n{index}", "op": op, "inputs": draw(st.lists(st.sampled_from(ids), min_size=n, max_size=n)),
            **{k: v for k, v in args.items() if k != "id"}}


input_shapes = st.lists(st.one_of(st.integers(1, 16), st.sampled_from(NAMES[:6])), min_size=1, max_size=4)


@st.composite
def specs(draw):
    form = draw(st.sampled_from(["layers"] * 3 + ["nodes"] * 3 + ["blocks"] * 2 + ["junk"]))
    if form == "junk":
        return draw(st.one_of(values, st.dictionaries(st.sampled_from(["name", "input", "layers", "inputs", "nodes",
                                                                       "dims", "batch", "outputs", "lyers"]),
                                                      values, max_size=4)))
    noise = draw(st.sampled_from([0, 0, 2, 10, 40]))  # % of choices that are junk
    spec = {"name": "fuzz"}
    if draw(st.booleans()):
        spec["dims"] = {n: "a size" for n in draw(st.lists(st.sampled_from(NAMES[:6]), max_size=3, unique=True))}
    if draw(st.integers(0, 3)) == 0:
        spec["batch"] = draw(values if draw(st.integers(0, 99)) < noise else small_size)
    n = draw(st.integers(1, 6))
    if form == "nodes":
        spec["inputs"] = {"x": draw(input_shapes), **({"y": draw(input_shapes)} if draw(st.booleans()) else {})}
        ids = list(spec["inputs"])
        nodes = []
        for i in range(n):
            nodes.append(draw(graph_node(i, ids + ["nX"] * (noise > 0), noise)))
            ids.append(f"n{i}")
        spec["nodes"] = nodes
    else:
        spec["input"] = draw(input_shapes)
        spec["layers"] = [draw(layer(i, noise=noise)) for i in range(n)]
        if form == "blocks":
            spec["blocks"] = {"blk": {"inputs": ["x"], "layers": [draw(layer(100 + i, noise=noise)) for i in range(draw(st.integers(1, 3)))]}}
            spec["layers"].insert(draw(st.integers(0, n)), {"blk": {"repeat": draw(st.one_of(st.integers(0, 3), small_size))}})
    if draw(st.integers(0, 99)) < noise:
        spec["outputs"] = draw(st.one_of(st.sampled_from(["l0", "n0", "x"]), values))
    return spec


def _exercise(report):
    """Touch every output the CLI can produce, and a substitution of every free size."""
    report.to_json(), report.table(), report.markdown(), report.latex()
    names = sorted(report.known_names())
    if names:
        report.subs({n: 3 + i for i, n in enumerate(names)}).to_json()


@FUZZ
@given(specs())
def test_random_specs_raise_only_symcost_errors(spec):
    try:
        model = from_dict(spec)
        _exercise(model.cost())
    except SymcostError as err:
        assert "\n" not in str(err)


@FUZZ
@given(specs(), st.sampled_from(["table", "json", "markdown", "latex"]),
       st.lists(st.tuples(st.sampled_from(NAMES[:6] + ["Q"]), st.one_of(st.integers(-1, 20).map(str), size_text)),
                max_size=2, unique_by=lambda t: t[0]))
def test_random_specs_through_the_cli_exit_0_or_2(spec, fmt, sets):
    try:
        text = yaml.safe_dump(spec, allow_unicode=True)
    except yaml.YAMLError:
        assume(False)
    argv = ["cost", text, "--format", fmt]
    for name, value in sets:
        argv += ["--set", f"{name}={value}"]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    assert code in (0, 2), err.getvalue()
    if code == 2:
        assert err.getvalue().count("\n") == 1 and out.getvalue() == ""


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_as_a_spec_file(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "spec.yaml"
    path.write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["cost", str(path)])
    assert code == 2 or (code == 0 and err.getvalue() == ""), err.getvalue()


# ------------------------------------------------------------------------------------------------
# Substitution: --set chains and cycles, sweeps across a condition, values from the Python API
# ------------------------------------------------------------------------------------------------

CHAIN_NAMES = ["A", "B", "C", "D"]
CHAIN_MODEL = "input: [A, B, C, D]\nlayers:\n  - relu: {}\n"


def _definition():
    """A tree: a size name, an integer 2..9 (never 1: A*1 is A, not a cycle), or (op, left, right)."""
    leaf = st.one_of(st.sampled_from(CHAIN_NAMES), st.integers(2, 9))
    return st.recursive(leaf, lambda inner: st.tuples(st.sampled_from(["+", "*"]), inner, inner), max_leaves=4)


def _text(t) -> str:
    return f"({_text(t[1])}{t[0]}{_text(t[2])})" if isinstance(t, tuple) else str(t)


def _independent(trees: dict, base: dict):
    """Evaluate every size by recursion on the definition trees (not by symcost): 'cycle' if they
    refer to each other in a loop, else {name: value}, undefined names taken from ``base``."""
    done, active = {}, set()

    def tree(t):
        if isinstance(t, int):
            return t
        if isinstance(t, str):
            return value(t)
        a, b = tree(t[1]), tree(t[2])
        return a + b if t[0] == "+" else a * b

    def value(name):
        if name in done:
            return done[name]
        if name not in trees or trees[name] == name:
            return base[name]
        if name in active:
            raise RecursionError
        active.add(name)
        done[name] = tree(trees[name])
        active.discard(name)
        return done[name]

    try:
        return {n: value(n) for n in CHAIN_NAMES}
    except RecursionError:
        return "cycle"


@FUZZ
@given(st.dictionaries(st.sampled_from(CHAIN_NAMES), _definition(), max_size=4))
def test_set_chains_and_cycles_resolve_as_an_independent_evaluation(trees):
    from symcost import load

    base = {"A": 2, "B": 3, "C": 5, "D": 7}
    defs = {n: _text(t) for n, t in trees.items()}
    expected = _independent(trees, base)
    report = load(CHAIN_MODEL).cost()
    try:
        r = report.subs(defs).subs({n: v for n, v in base.items() if n not in defs or defs[n] == n})
    except SymcostError as err:
        assert "\n" not in str(err)
        if expected == "cycle":
            assert "cycle" in str(err)
        else:
            assert "larger than" in str(err) or "terms" in str(err), (defs, str(err))
        return
    assert expected != "cycle", defs
    assert r.input == expected["A"] * expected["B"] * expected["C"] * expected["D"]


@FUZZ
@given(st.sampled_from(["H-{k}", "{c}//(H-{k})", "H//{k}", "(H-{k})*2"]), st.integers(1, 6), st.integers(1, 30),
       st.lists(st.integers(0, 20), min_size=1, max_size=8))
def test_sweeps_across_a_condition_print_only_valid_points(form, k, c, values):
    import warnings

    from symcost import Model, ShapeError

    text = form.format(k=k, c=c)
    m = Model("lin", inputs={"x": ["H"]})
    m.add("linear", out_features=text, id="lin")
    r = m.cost()

    def out(h):   # PyTorch's out_features for this H, or None where it is no valid layer
        if h < 1:
            return None
        if "//(H-" in text:
            if h == k:
                return None
            o = c // (h - k)
        elif text.startswith("H//"):
            o = h // k
        elif text.startswith("(H-"):
            o = (h - k) * 2
        else:
            o = h - k
        return o if o >= 1 else None

    valid = all(out(h) is not None for h in values)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            res = sweep_fn()(r, {"H": values}, fields=["params", "macs"])
        except ShapeError as err:
            assert not valid, (text, values, str(err))
            bad = next(h for h in values if out(h) is None)
            assert f"H={bad}" in str(err) and ("input 'x'" if bad < 1 else "layer 'lin'") in str(err), str(err)
            return
    assert valid, (text, values)
    assert res.fields["params"] == [h * out(h) + out(h) for h in values]
    assert res.fields["macs"] == [h * out(h) for h in values]


def sweep_fn():
    from symcost.sweep import sweep

    return sweep


def _api_value():
    import numpy as np

    D = sympy.Symbol("D")
    atoms = st.sampled_from([D, sympy.Symbol("D", integer=True), sympy.Symbol("E", positive=True), symbol("D"),
                             sympy.Integer(3), sympy.Rational(1, 2), sympy.Float(2.0), sympy.pi, sympy.oo,
                             sympy.zoo, sympy.nan, sympy.I, sympy.Dummy("q")])
    exprs = st.recursive(atoms, lambda inner: st.one_of(
        st.builds(lambda a, b: a + b, inner, inner), st.builds(lambda a, b: a * b, inner, inner),
        st.builds(lambda a: -a, inner), st.builds(lambda a: sympy.floor(a), inner),
        st.builds(lambda a, n: a ** n, inner, st.integers(-2, 3)), st.builds(sympy.sin, inner)), max_leaves=5)
    return st.one_of(exprs, st.integers(-5, 5).map(np.int64), st.floats(allow_nan=True), st.booleans(),
                     st.sampled_from([np.bool_(True), np.float32(3.0), np.uint8(7), 3.0, 3.5]))


@FUZZ
@given(_api_value())
def test_api_values_become_symcost_sizes_or_one_line_size_errors(value):
    from symcost.sizes import to_size

    try:
        expr = to_size(value, "size")
    except SizeError as err:
        assert "\n" not in str(err)
        return
    assert isinstance(expr, sympy.Expr)
    for s in expr.free_symbols:
        assert s is symbol(s.name)        # symcost's own positive-integer symbol
    assert not expr.has(sympy.Float, sympy.zoo, sympy.nan, sympy.oo, sympy.I, sympy.pi)
    if not expr.free_symbols:
        assert expr.is_Integer and expr >= 1


# Nested blocks against their unrolled count

PRIMITIVES = {"linear": "{out_features: D}", "relu": "{}"}  # on [D]: D² + D and 0 parameters, one step each
REPEATS = st.one_of(st.integers(1, 3).map(str), st.sampled_from(["N", "M"]))


@st.composite
def nested_block_specs(draw):
    """Blocks b0..b(d-1), each a chain of primitives and uses of earlier blocks (the same block
    may be used several times, each use repeated a concrete or symbolic number of times)."""
    depth = draw(st.integers(1, 7))
    item = lambda i: st.one_of(st.sampled_from(sorted(PRIMITIVES)).map(lambda op: (op, None)),
                               *([st.tuples(st.integers(0, i - 1).map(lambda j: f"b{j}"), REPEATS)] if i else []))
    bodies = [draw(st.lists(item(i), min_size=1, max_size=3)) for i in range(depth)]
    top = draw(st.lists(item(depth), min_size=1, max_size=3))
    return bodies, top


def _spec_text(bodies, top) -> str:
    def chain(items, indent):
        return "".join(f"{indent}- {op}: {PRIMITIVES[op]}\n" if rep is None else f"{indent}- {op}: {{repeat: {rep}}}\n"
                       for op, rep in items)

    text = "name: nested\ninput: [D]\nblocks:\n"
    for i, body in enumerate(bodies):
        text += f"  b{i}:\n    inputs: [x]\n    layers:\n" + chain(body, "      ")
    return text + "layers:\n" + chain(top, "  ")


def _unrolled(bodies, items, values=None):
    """(linear layers, all layers) of a chain, counted by walking it -- symbolic products of the
    repeats, or with ``values`` the primitive ops in order (the flattened model)."""
    flat, lin, total = [], sympy.Integer(0), sympy.Integer(0)
    for op, rep in items:
        if rep is None:
            flat.append(op)
            lin, total = lin + int(op == "linear"), total + 1
            continue
        n = sympy.Integer(int(rep)) if rep.isdigit() else (values[rep] if values else symbol(rep))
        inner = _unrolled(bodies, bodies[int(op[1:])], values)
        if values:
            flat.extend(inner[2] * int(n))
        lin, total = lin + n * inner[0], total + n * inner[1]
    return lin, total, flat


@settings(FUZZ, deadline=10_000)  # a hang guard: 2**d walks of a block used to take minutes
@given(nested_block_specs(), st.integers(1, 3), st.integers(1, 3))
def test_nested_blocks_equal_their_unrolled_count(spec, n, m):
    from symcost import load

    bodies, top = spec
    report = load(_spec_text(bodies, top)).cost()
    lin, total, _ = _unrolled(bodies, top)
    D = symbol("D")
    assert sympy.expand(report.params - lin * (D**2 + D)) == 0
    assert sympy.expand(report.macs - lin * D**2) == 0
    assert sympy.expand(report.steps - total) == 0  # a chain: one step per layer application
    # The flattened model (no blocks), with the repeats given values, costs the same.
    values = {"N": n, "M": m}
    _, count, flat = _unrolled(bodies, top, values)
    assume(0 < count <= 300)
    flat_model = load("name: flat\ninput: [D]\nlayers:\n" + "".join(f"  - {op}: {PRIMITIVES[op]}\n" for op in flat))
    given_values = {k: v for k, v in values.items() if k in report.known_names()}
    nested = report.subs(given_values) if given_values else report
    flat_report = flat_model.cost()
    assert nested.total == flat_report.total and sympy.expand(nested.steps - flat_report.steps) == 0
