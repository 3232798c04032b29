"""The cost record: what one layer (or a block, or a model) costs for one sample.

Fields are sympy expressions (integers once every size is known):

- ``params``      learnable parameters;
- ``activations`` elements of the outputs the layer produces (in-place ops: 0);
- ``macs``        multiply-accumulates of linear algebra, biases excluded;
- ``ops``         operation counts by kind (:data:`OP_KINDS`); a dot product of
                  n terms is n ``mul`` and n-1 ``add``, a bias one ``add``;
- ``fma_ops``     the same work on fused-multiply-add hardware: a dot product of
                  n terms is n FMAs (+1 for a bias), every other op as in ``ops``.

``flops`` is the sum of ``ops`` (the seed's non-pipelined count).  Records
add (``a + b``, :meth:`Cost.total` for many), scale by a repeat count
(``n * cost``), and scale by a batch (:meth:`batched`, parameters excepted).
Units stay plain: FLOPs, never GFLOPs; scaling to k/M/G is presentation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Callable, Iterable, Mapping

import sympy

#: Operation kinds.  ``exp``, ``tanh``, ``erf`` and ``sqrt`` are the
#: transcendental class (the slides: "exponentials are more expensive");
#: each still counts as one FLOP in ``flops``.
OP_KINDS = ("mul", "add", "div", "cmp", "exp", "tanh", "erf", "sqrt")
TRANSCENDENTAL = ("exp", "tanh", "erf", "sqrt")

ZERO = sympy.Integer(0)

FIELDS = ("params", "activations", "macs", "fma_ops")


def _expr(value) -> sympy.Expr:
    return value if isinstance(value, sympy.Basic) else sympy.Integer(value)


def tidy(expr: sympy.Expr) -> sympy.Expr:
    """A canonical, readable form: products expanded (never inside floor/min/max
    arguments), unless the unexpanded form is shorter -- K·(M1 + 1)·(N1 + 1) stays
    factored, D·F + F·(D − 1) + F becomes 2·D·F.  No ``simplify``: linear in size.
    Memoised: the layers of a repeated or unrolled stack share their expressions."""
    if not isinstance(expr, sympy.Expr) or expr.is_Atom:
        return expr
    return _tidy(expr)


@lru_cache(maxsize=16384)
def _tidy(expr: sympy.Expr) -> sympy.Expr:
    from .sizes import EXPAND_TERMS, expanded_terms

    if expanded_terms(expr) > EXPAND_TERMS:  # the expanded form would be longer anyway: keep it factored
        return expr
    calls = {f: sympy.Dummy() for f in expr.atoms(sympy.Function)}
    if calls:  # keep floor(...), Min(...) arguments as written
        back = {d: f for f, d in calls.items()}
        expanded = expand(expr.xreplace(calls)).xreplace(back)
    else:
        expanded = expand(expr)
    if expanded == expr:
        return expr
    return expr if sympy.count_ops(expr) < sympy.count_ops(expanded) else expanded


def expand(expr: sympy.Expr) -> sympy.Expr:
    """``sympy.expand(expr)``, the same expression, in linear time for what costs are made of:
    a polynomial (sums, products, integer powers of symbols and of sums, rational
    coefficients) is multiplied out as a dict of monomials and rebuilt as one Add (3-4x
    faster than sympy's general expansion); anything else goes to ``sympy.expand``."""
    terms = _monomials(expr)
    if terms is None:
        return sympy.expand(expr)
    return sympy.Add(*(
        sympy.Mul(sympy.Rational(c.numerator, c.denominator), *(s if e == 1 else sympy.Pow(s, e) for s, e in m))
        for m, c in terms.items()
    ))


def polynomial(expr: sympy.Expr) -> bool:
    """Whether ``expr`` is a polynomial in its symbols (what :func:`expand` multiplies out in linear time)."""
    return _monomials(expr) is not None


def whole_polynomial(expr: sympy.Expr) -> bool:
    """Whether ``expr`` is a polynomial with integer coefficients in integer symbols: a whole
    number for every value of the sizes (floor(u) + r = floor(u + r) for such an r)."""
    terms = _monomials(expr)
    return terms is not None and all(
        c.denominator == 1 and all(s.is_integer and e > 0 for s, e in m) for m, c in terms.items())


def _monomials(e) -> dict | None:
    """{frozenset((symbol, exponent), ...): Fraction coefficient} of a polynomial, or None."""
    if e.is_Symbol:
        return {frozenset(((e, 1),)): Fraction(1)}
    if e.is_Rational:
        return {frozenset(): Fraction(int(e.p), int(e.q))} if e != 0 else {}
    if e.is_Add:
        out: dict = {}
        for a in e.args:
            part = _monomials(a)
            if part is None:
                return None
            for m, c in part.items():
                out[m] = out.get(m, 0) + c
        return {m: c for m, c in out.items() if c}
    if e.is_Mul:
        out = {frozenset(): Fraction(1)}
        for a in e.args:
            part = _monomials(a)
            if part is None:
                return None
            out = _times(out, part)
        return out
    if e.is_Pow and e.exp.is_Integer:
        n = int(e.exp)
        if e.base.is_Symbol:
            return {frozenset(((e.base, n),)): Fraction(1)}
        if n >= 0 and e.base.is_Add:
            base = _monomials(e.base)
            if base is None:
                return None
            out = {frozenset(): Fraction(1)}
            for _ in range(n):
                out = _times(out, base)
            return out
    return None


def _times(a: dict, b: dict) -> dict:
    out: dict = {}
    for ma, ca in a.items():
        for mb, cb in b.items():
            if not ma or not mb:
                m = ma or mb
            else:
                powers = dict(ma)
                for s, e in mb:
                    powers[s] = powers.get(s, 0) + e
                m = frozenset((s, e) for s, e in powers.items() if e)
            out[m] = out.get(m, 0) + ca * cb
    return {m: c for m, c in out.items() if c}


def ops(**counts) -> dict[str, sympy.Expr]:
    """An ops mapping from keyword counts; zero counts are dropped, kinds are checked."""
    unknown = set(counts) - set(OP_KINDS)
    if unknown:
        raise ValueError(f"unknown op kinds {sorted(unknown)}; known: {OP_KINDS}")
    return {k: _expr(v) for k, v in counts.items() if v != 0}


@dataclass(frozen=True, eq=False)
class Cost:
    params: sympy.Expr = ZERO
    activations: sympy.Expr = ZERO
    macs: sympy.Expr = ZERO
    ops: Mapping[str, sympy.Expr] = field(default_factory=dict)
    fma_ops: sympy.Expr = ZERO

    def __post_init__(self):
        for name in FIELDS:
            object.__setattr__(self, name, _expr(getattr(self, name)))
        object.__setattr__(self, "ops", {k: _expr(v) for k, v in self.ops.items() if v != 0})

    # -- derived -----------------------------------------------------------
    @property
    def flops(self) -> sympy.Expr:
        """Sum of all operation kinds: the non-pipelined count (in its tidy form: the
        kinds' terms combine, T·H·(H + I) + T·H·(H + I − 2) is 2·T·H·(H + I − 1))."""
        return tidy(sympy.Add(*self.ops.values())) if self.ops else ZERO

    def op(self, kind: str) -> sympy.Expr:
        return self.ops.get(kind, ZERO)

    # -- algebra -----------------------------------------------------------
    @classmethod
    def total(cls, costs: Iterable["Cost"]) -> "Cost":
        """Sum many records with one sympy Add per field (linear, not quadratic)."""
        costs = list(costs)
        fields = {name: sympy.Add(*(getattr(c, name) for c in costs)) for name in FIELDS}
        kinds: dict[str, list] = {}
        for c in costs:
            for k, v in c.ops.items():
                kinds.setdefault(k, []).append(v)
        return cls(ops={k: sympy.Add(*v) for k, v in kinds.items()}, **fields)

    def __add__(self, other: "Cost") -> "Cost":
        if not isinstance(other, Cost):
            return NotImplemented
        return Cost.total([self, other])

    def __radd__(self, other):
        if other == 0:  # sum(costs) starts from 0
            return self
        return NotImplemented

    def map(self, fn: Callable[[sympy.Expr], sympy.Expr], *, params: bool = True) -> "Cost":
        """Apply ``fn`` to every field (to ``params`` only if ``params``)."""
        return Cost(
            params=fn(self.params) if params else self.params,
            activations=fn(self.activations),
            macs=fn(self.macs),
            ops={k: fn(v) for k, v in self.ops.items()},
            fma_ops=fn(self.fma_ops),
        )

    def __mul__(self, count) -> "Cost":
        """``n * cost``: the cost of n repetitions (each with its own parameters)."""
        count = _expr(count)
        return self.map(lambda e: count * e)

    __rmul__ = __mul__

    def batched(self, batch) -> "Cost":
        """The cost for ``batch`` samples: everything scales but the parameters."""
        batch = _expr(batch)
        if batch == 1:
            return self
        return self.map(lambda e: batch * e, params=False)

    def subs(self, values: Mapping) -> "Cost":
        return self.map(lambda e: e.xreplace(values) if values else e)

    def tidy(self) -> "Cost":
        """Each field in its tidiest form (see :func:`tidy`)."""
        return self.map(tidy)

    def as_dict(self) -> dict[str, object]:
        return {
            "params": self.params,
            "activations": self.activations,
            "macs": self.macs,
            "ops": {k: self.op(k) for k in OP_KINDS},
            "flops": self.flops,
            "fma_ops": self.fma_ops,
        }

    def __eq__(self, other) -> bool:
        """Mathematical equality of every field (expanded difference is zero)."""
        if not isinstance(other, Cost):
            return NotImplemented
        pairs = [(getattr(self, f), getattr(other, f)) for f in FIELDS]
        pairs += [(self.op(k), other.op(k)) for k in set(self.ops) | set(other.ops)]
        return all(sympy.expand(a - b) == 0 for a, b in pairs)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        ops_text = ", ".join(f"{k}={v}" for k, v in self.ops.items())
        return (
            f"Cost(params={self.params}, activations={self.activations}, macs={self.macs}, "
            f"flops={self.flops}, fma_ops={self.fma_ops}, ops={{{ops_text}}})"
        )
