"""The fast paths give the results of the slow, obvious ones (no timing here: see tests/benchmarks).

- a block derived once and repeated == the same blocks unrolled, node by node;
- the per-analysis memo of layer derivations == deriving each layer on its own;
- the memoised tidy / text == computing them afresh;
- the linear-time max of step counts == the maximum of the values at sampled points;
- a sweep (lambdified, int64 or Python ints) == substituting each point into the report;
- ``import symcost`` imports none of jinja2, matplotlib, torch, tqdm, numpy.
"""

import random
import subprocess
import sys

import pytest
import sympy

import symcost
from benchmarks import gpt3, naive
from symcost.cost import _tidy, tidy
from symcost.graph import smax
from symcost.render import jsonable
from symcost.sizes import symbol
from symcost.spec import from_dict

D, T, V, h, L = (symbol(n) for n in ("D", "T", "V", "h", "L"))
FIELDS = ("params", "activations", "macs", "flops", "fma_ops", "steps", "input")
ATTENTION = ("primitives", "mha")


def points(rng, n, blocks=None):
    """Random GPT-shaped sizes: h divides D."""
    for _ in range(n):
        heads = rng.randint(1, 8)
        p = {"D": heads * rng.randint(1, 40), "T": rng.randint(1, 300), "V": rng.randint(1, 5000), "h": heads}
        if blocks is not None:
            p["L"] = blocks
        yield p


def assert_same_report(a, b, where):
    for f in FIELDS:
        assert sympy.expand(getattr(a, f) - getattr(b, f)) == 0, f"{where}: {f}"
    for k in symcost.OP_KINDS:
        assert sympy.expand(a.ops[k] - b.ops[k]) == 0, f"{where}: ops.{k}"


@pytest.mark.parametrize("attention", ATTENTION)
def test_repeated_block_equals_unrolled(attention):
    blocks = 4
    unrolled = from_dict(gpt3.unrolled_spec(blocks, attention)).cost()
    concrete = from_dict(gpt3.repeated_spec(blocks, attention)).cost()
    symbolic = from_dict(gpt3.repeated_spec("L", attention)).cost()
    assert_same_report(concrete, unrolled, "block x 4")
    assert_same_report(symbolic.subs(L=blocks), unrolled, "block x L, L = 4")
    rng = random.Random(1)
    for p in points(rng, 5):
        u, s = unrolled.subs(p), symbolic.subs(dict(p, L=blocks))
        for f in FIELDS:
            assert getattr(u, f) == getattr(s, f), (p, f)
    # the per-layer rows of the block are one repetition; the unrolled rows sum to the same
    (block_row,) = [r for r in symbolic.subs(L=blocks).rows if r.children is not None]
    unrolled_rows = [r for r in unrolled.rows if r.name.startswith("b")]
    for f in ("params", "activations", "macs", "flops", "fma_ops"):
        assert sympy.expand(getattr(block_row, f) - sum(getattr(r, f) for r in unrolled_rows)) == 0, f


@pytest.mark.parametrize("attention", ATTENTION)
def test_gpt_totals_equal_the_hand_written_formulas(attention):
    """The benchmark's naive prototype (formulas written out by hand per node) agrees."""
    for spec in (gpt3.unrolled_spec(3, attention), gpt3.repeated_spec("L", attention)):
        r = from_dict(spec).cost()
        for f, expr in naive.derive(spec).items():
            assert sympy.expand(getattr(r, f) - expr) == 0, (spec["name"], f)


def test_both_attention_forms_have_the_same_params_and_macs():
    a = from_dict(gpt3.repeated_spec("L", "primitives")).cost()
    b = from_dict(gpt3.repeated_spec("L", "mha")).cost()
    for f in ("params", "macs"):
        assert sympy.expand(getattr(a, f) - getattr(b, f)) == 0, f


def test_gpt_matches_pytorch_parameters_and_flop_counter():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    r = from_dict(gpt3.repeated_spec("L", "mha")).cost()
    for p in [{"D": 32, "T": 8, "V": 50, "h": 4, "L": 2}, {"D": 48, "T": 5, "V": 7, "h": 3, "L": 1}]:
        m = gpt3.torch_decoder(**p, device="meta")
        with FlopCounterMode(display=False) as fc:
            m(torch.zeros(p["T"], dtype=torch.long, device="meta"))
        s = r.subs(p)
        assert sum(q.numel() for q in m.parameters()) == s.params
        assert fc.get_total_flops() == 2 * s.macs


def test_memoised_layers_equal_fresh_derivations():
    """Every row of an unrolled stack (identical layers share one derivation) equals that layer
    derived alone, in a model of its own, on the same input shapes."""
    spec = gpt3.unrolled_spec(3, "primitives")
    model = from_dict(spec)
    analysis = model.analyze()
    shapes = dict(analysis.input_shapes)
    shapes.update({n.id: n.shape for n in analysis.nodes})
    for n in analysis.nodes:
        node = model.node(n.id)
        alone = symcost.Model("one", inputs={f"i{j}": list(shapes[s]) for j, s in enumerate(node.inputs)})
        args = dict(node.args)
        if args.get("tied_to") is not None:
            args.pop("tied_to")
            fresh = alone.add(node.op, *alone.inputs, id="x", **args)
            fresh_cost = alone.analyze()[fresh].cost
            assert sympy.expand(n.cost.macs - fresh_cost.macs) == 0
            continue
        fresh = alone.add(node.op, *alone.inputs, id="x", **args)
        result = alone.analyze()[fresh]
        assert result.cost == n.cost, n.id
        assert result.shape == n.shape, n.id
        assert result.steps == n.steps, n.id


def test_memoised_tidy_and_text_equal_fresh_ones():
    r = from_dict(gpt3.repeated_spec("L", "mha")).cost()
    exprs = [r.params, r.macs, r.flops, *r.ops.values(), *(row.cost.flops for row in r.rows)]
    for e in exprs:
        assert tidy(e) == _tidy.__wrapped__(e)
        assert sympy.expand(tidy(e) - e) == 0
        assert jsonable(e) == (int(e) if e.is_Integer else sympy.sstr(e))


def test_linear_max_equals_the_maximum_at_sampled_points():
    rng = random.Random(3)
    syms = [T, L, D]
    for _ in range(60):  # few values: sympy.Max of distinct symbolic terms is slow (and not ours)
        values = []
        for _ in range(rng.randint(1, 6)):
            c = rng.randint(0, 20)
            kind = rng.randrange(4)
            if kind == 0:
                values.append(sympy.Integer(c))
            elif kind == 1:
                values.append(c + rng.choice(syms))
            elif kind == 2:
                values.append(c + rng.choice(syms) * rng.choice(syms))
            else:
                values.append(c + sympy.Max(rng.choice(syms), rng.randint(0, 5)))
        got = smax(values)
        for _ in range(5):  # the obvious maximum: evaluate every value, take Python's max
            p = {s: rng.randint(1, 30) for s in syms}
            assert got.xreplace(p) == max(int(v.xreplace(p)) for v in values), (values, p)
    assert smax([]) == 0
    many = [sympy.Integer(i % 97) for i in range(5000)] + [T + i % 13 for i in range(5000)]
    assert smax(many) == sympy.Max(96, T + 12)  # thousands of terms: one per distinct symbolic part


def test_sweep_equals_substitution_at_every_sampled_point():
    from symcost import sweep
    report = from_dict(gpt3.repeated_spec("L", "mha")).cost().subs(V=50257, h=8)
    grid = {"D": [8 * i for i in range(1, 12)], "T": [3, 64, 100, 2048], "L": [1, 2, 96]}
    res = sweep.sweep(report, grid)
    n = len(res)
    assert n == 11 * 4 * 3
    rng = random.Random(4)
    for i in rng.sample(range(n), 15) + [0, n - 1]:
        point = {k: res.sizes[k][i] for k in grid}
        s = report.subs(point)
        for f in res.fields:
            assert res.fields[f][i] == getattr(s, f), (point, f)


def test_sweep_beyond_int64_is_exact():
    """Values past 2**63 take the Python-integer path and stay exact."""
    from symcost import sweep
    report = from_dict(gpt3.repeated_spec("L", "mha")).cost().subs(V=50257, h=96)
    grid = {"D": [96, 12288, 96 * 10**6], "T": [2048, 10**7], "L": [96, 10**4]}
    res = sweep.sweep(report, grid, fields=("flops", "params"))
    assert max(res.fields["flops"]) > 2**63
    for i in range(len(res)):
        point = {k: res.sizes[k][i] for k in grid}
        s = report.subs(point)
        assert res.fields["flops"][i] == s.flops and res.fields["params"][i] == s.params, point


def test_import_symcost_is_lazy():
    code = ("import sys, symcost; heavy = [m for m in ('jinja2', 'matplotlib', 'torch', 'tqdm', 'numpy') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import symcost imported {out.stdout.strip()}"


def test_libyaml_reading_equals_the_checked_python_loader():
    """Specs read through libyaml (the fast path) equal the pure-Python checked loader's
    reading; anything unusual takes the checked loader and its errors."""
    import yaml

    from symcost.spec import ZOO, _SLOW, _Loader, _parse_fast, parse_yaml

    if not hasattr(yaml, "CSafeLoader"):
        pytest.skip("PyYAML without libyaml")
    texts = [p.read_text(encoding="utf-8") for p in sorted(ZOO.glob("*.yaml"))]
    texts.append(gpt3.dump(gpt3.unrolled_spec(2, "primitives")))
    texts.append("a: &x [1, 2]\nb: *x\nc: {d: 0x1F, e: 1_000, f: true, g: ~, h: '3'}\n")
    for text in texts:
        fast = _parse_fast(text)
        assert fast is not _SLOW
        assert fast == yaml.load(text, Loader=_Loader)
    for hostile in ["a: 1\na: 2\n", "[" * 200 + "]" * 200, "a: [1\n", "x: " + "9" * 400, "--- 1\n--- 2\n",
                    "a: &a [1]\n" + "".join(f"b{i}: *a\n" for i in range(120))]:
        assert _parse_fast(hostile) is _SLOW
        with pytest.raises(symcost.SymcostError):
            parse_yaml(hostile)
    # within the checked loader's limits but not well inside them: it reads them itself
    for unusual in ["[" * 80 + "]" * 80, "a: &a [1]\n" + "".join(f"b{i}: *a\n" for i in range(60))]:
        assert _parse_fast(unusual) is _SLOW
        assert parse_yaml(unusual) == yaml.load(unusual, Loader=_Loader)


def test_fast_expand_equals_sympy_expand():
    """cost.expand (a dict of monomials) gives sympy.expand's very expression, on random
    polynomials in size symbols and on the non-polynomial forms it hands over."""
    from symcost.cost import expand

    rng = random.Random(5)
    syms = [D, T, V, h, L]

    def poly(depth):
        r = rng.randrange(6 if depth else 2)
        if r == 0:
            return rng.choice(syms)
        if r == 1:
            return sympy.Rational(rng.randint(-9, 9), rng.choice([1, 1, 2, 3]))
        if r == 2:
            return sympy.Add(*(poly(depth - 1) for _ in range(rng.randint(2, 4))))
        if r == 3:
            return sympy.Mul(*(poly(depth - 1) for _ in range(rng.randint(2, 3))))
        if r == 4:
            return poly(depth - 1) ** rng.randint(0, 3)
        return rng.choice(syms) ** rng.randint(-2, 3) * poly(depth - 1)

    for _ in range(300):
        e = poly(4)
        assert expand(e) == sympy.expand(e), e
    for e in [sympy.floor(D / h) * (T + 1), 1 / (T + 1), sympy.Max(T, L) * (D + 1), (D + T) ** -2, D ** (T + 1)]:
        assert expand(e) == sympy.expand(e), e
