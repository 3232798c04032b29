"""Scaling analysis: leading terms and orders of costs in a size symbol, and the time-scaling verdict.

For a cost expression f and a symbol T (every other size a positive constant),
:func:`order` finds the terms of f that dominate as T grows: f = c·T^d·(log T)^k + o(T^d·(log T)^k),
reported as ``Θ(T^d)`` with its leading term c·T^d.  The rules (docs/scaling.md):

- polynomials in T (rational exponents allowed) and ``log(T)`` factors: the terms are grouped by
  (d, k) and the largest group whose coefficient does not cancel is the leading term;
- ``floor(u)`` and ``ceiling(u)`` whose argument u grows with T: floor(u) = u − θ with θ ∈ [0, 1),
  so floor((T − K)/S) + 1 is T/S + O(1) -- Θ(T); a floor whose argument is constant in T stays a
  constant;
- ``Min``/``Max`` of arguments of different order are, for large T, exactly their smallest/largest
  argument; of the same order, the sign of the leading term of their difference decides;
- when a θ (or an undecidable Min/Max) reaches the leading coefficient, the order is an upper
  bound only: reported as ``O(...)``, ``exact=False``.

Several symbols at once (T_self and T_cross): the leading terms are the terms whose exponent
vector is not dominated by another's (T_self·T_cross dominates T_self and T_cross).

No ``simplify``: one ``expand`` of the expression with its floors replaced, then grouping.

The verdict (:func:`time_scaling`) is the slides' column "Time scaling": ``fixed`` when the
parameters depend on T (the model is tied to one input length, as a DNN on a flattened [T, I]
input), otherwise the order of the MACs in T (CNN: T; RNN: T; attention: T²).  The order of
``steps`` (the critical path) is reported beside it: 1 for feed-forward models, T for an RNN.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import sympy

from .errors import SymcostError, SymbolError
from .sizes import as_expr, symbol as size_symbol


class ScalingError(SymcostError):
    """A cost whose growth in a symbol symcost cannot analyse (e.g. exp(T))."""


ZERO = sympy.Integer(0)


@dataclass(frozen=True)
class Order:
    """The growth of an expression in ``symbols``.

    ``exponents`` lists the dominant exponent vectors, one pair (d, k) per symbol -- the term
    T^d·(log T)^k; ``leading`` is the sum of the dominant terms (their coefficients in the other
    sizes).  An expression that is zero for large sizes has no exponents and ``leading`` 0.
    ``exact`` is False when the order is an upper bound only (``O`` rather than ``Θ``).
    """

    symbols: tuple[sympy.Symbol, ...]
    exponents: tuple[tuple[tuple[sympy.Rational, int], ...], ...]
    leading: sympy.Expr
    exact: bool = True

    @property
    def is_zero(self) -> bool:
        return not self.exponents

    @property
    def degree(self) -> sympy.Rational | None:
        """The power of the (single) symbol; None for zero; for several symbols, the total degree."""
        if not self.exponents:
            return None
        return max(sum((d for d, _ in vec), sympy.Integer(0)) for vec in self.exponents)

    @property
    def growth(self) -> sympy.Expr:
        """The order without its coefficient: T², T_self·T_cross, T·log(T), 1 (constant), 0."""
        if not self.exponents:
            return ZERO
        return sympy.Add(*(_monomial(self.symbols, vec) for vec in self.exponents))

    def text(self, theta: bool = True) -> str:
        """``Θ(T²)``, ``Θ(T·log T)``, ``Θ(1)``, ``0`` (or without ``Θ``: ``T²``)."""
        if not self.exponents:
            return "0"
        body = " + ".join(_mono_text(self.symbols, vec) for vec in self.exponents)
        if not theta:
            return body
        return ("Θ" if self.exact else "O") + f"({body})"

    def __str__(self) -> str:
        return self.text()


def _monomial(symbols, vec) -> sympy.Expr:
    out = sympy.Integer(1)
    for s, (d, k) in zip(symbols, vec):
        out *= s ** d * sympy.log(s) ** k
    return out


_SUPERSCRIPT = str.maketrans("0123456789-/", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻ᐟ")


def _mono_text(symbols, vec) -> str:
    parts = []
    for s, (d, k) in zip(symbols, vec):
        if d != 0:
            parts.append(s.name if d == 1 else s.name + str(d).translate(_SUPERSCRIPT))
        if k:
            parts.append(f"log {s.name}" if k == 1 else f"log{str(k).translate(_SUPERSCRIPT)} {s.name}")
    return "·".join(parts) or "1"


# ---------------------------------------------------------------------------
# Asymptotic replacement of floor / ceiling / Min / Max
# ---------------------------------------------------------------------------


class _Asym:
    """Rewrites an expression into an equivalent one for large values of ``symbols``.

    floor(u) -> u − θ (θ a fresh bounded constant) when u grows; Min/Max -> the argument that is
    eventually smallest/largest.  ``thetas`` collects the bounded constants introduced;
    ``exact`` turns False when a Min/Max could not be decided.
    """

    def __init__(self, symbols: Sequence[sympy.Symbol]):
        self.symbols = tuple(symbols)
        self.thetas: set[sympy.Symbol] = set()
        self.undecided: dict[sympy.Symbol, sympy.Expr] = {}
        self.memo: dict = {}

    def grows(self, expr: sympy.Expr) -> bool:
        return any(s in expr.free_symbols for s in self.symbols)

    def rewrite(self, expr: sympy.Expr) -> sympy.Expr:
        if expr in self.memo:
            return self.memo[expr]
        out = self._rewrite(expr)
        self.memo[expr] = out
        return out

    def _rewrite(self, expr):
        if expr.is_Atom or not self.grows(expr):
            return expr
        if isinstance(expr, (sympy.floor, sympy.ceiling)):
            u = self.rewrite(expr.args[0])
            theta = sympy.Dummy("theta", nonnegative=True)
            self.thetas.add(theta)
            return u - theta if isinstance(expr, sympy.floor) else u + theta
        if isinstance(expr, (sympy.Min, sympy.Max)):
            return self._minmax(expr)
        if isinstance(expr, (sympy.Add, sympy.Mul, sympy.Pow)) or isinstance(expr, sympy.log):
            if isinstance(expr, sympy.log) and expr.args[0] not in self.symbols:
                raise ScalingError(f"cannot analyse the growth of {expr} (only log of a size symbol)")
            return expr.func(*(self.rewrite(a) for a in expr.args))
        raise ScalingError(f"cannot analyse the growth of {sympy.sstr(expr)} in "
                           + ", ".join(s.name for s in self.symbols))

    def _minmax(self, expr):
        args = [self.rewrite(a) for a in expr.args]
        want_max = isinstance(expr, sympy.Max)
        best = args[0]
        for cand in args[1:]:
            diff = _leading_terms(sympy.expand(cand - best), self.symbols)
            if not diff:          # equal for large sizes
                continue
            lead = sympy.Add(*(c for c, _ in diff))
            if lead.free_symbols & (self.thetas | set(self.undecided)):
                sign = None
            else:
                sign = True if lead.is_positive else (False if lead.is_negative else None)
            if sign is None:      # cannot decide: an unknown of that order, Min/Max of the coefficients
                vec = diff[0][1]
                coeffs = [sum((c for c, v in _leading_terms(sympy.expand(x), self.symbols) if v == vec),
                              sympy.Integer(0)) for x in (best, cand)]
                d = sympy.Dummy("m", positive=True)
                self.undecided[d] = expr.func(*coeffs)
                best = d * _monomial(self.symbols, vec)
                continue
            if sign == want_max:
                best = cand
        return best


def _split_term(term: sympy.Expr, symbols) -> tuple[sympy.Expr, tuple]:
    """term = coeff · Π T^d·(log T)^k; return (coeff, ((d, k), ...))."""
    coeff_factors, vec = [], {s: [sympy.Integer(0), 0] for s in symbols}
    for f in sympy.Mul.make_args(term):
        base, exp = f.as_base_exp()
        if base in vec:
            if not exp.is_Rational:
                raise ScalingError(f"cannot analyse the growth of {sympy.sstr(term)}: a symbolic exponent")
            vec[base][0] += exp
        elif isinstance(base, sympy.log) and base.args[0] in vec:
            if not (exp.is_Integer and exp > 0):
                raise ScalingError(f"cannot analyse the growth of {sympy.sstr(term)}")
            vec[base.args[0]][1] += int(exp)
        elif any(s in f.free_symbols for s in symbols):
            raise ScalingError(f"cannot analyse the growth of {sympy.sstr(term)}")
        else:
            coeff_factors.append(f)
    return sympy.Mul(*coeff_factors), tuple((vec[s][0], vec[s][1]) for s in symbols)


def _dominates(a: tuple, b: tuple) -> bool:
    """Whether exponent vector a grows at least as fast as b in every symbol (and differs)."""
    return a != b and all((da, ka) >= (db, kb) for (da, ka), (db, kb) in zip(a, b))


def _leading_terms(expanded: sympy.Expr, symbols) -> list[tuple[sympy.Expr, tuple]]:
    """The non-dominated (coefficient, exponent vector) groups of an expanded expression."""
    groups: dict[tuple, list] = {}
    for term in sympy.Add.make_args(expanded):
        if term == 0:
            continue
        coeff, vec = _split_term(term, symbols)
        groups.setdefault(vec, []).append(coeff)
    live = []
    for vec, coeffs in groups.items():
        c = sympy.expand(sympy.Add(*coeffs))
        if c != 0:
            live.append((c, vec))
    vecs = [v for _, v in live]
    top = [(c, v) for c, v in live if not any(_dominates(w, v) for w in vecs)]
    return sorted(top, key=lambda cv: [x for pair in cv[1] for x in pair], reverse=True)


def _as_symbols(symbols: Any) -> tuple[sympy.Symbol, ...]:
    if isinstance(symbols, (str, sympy.Symbol)):
        symbols = [symbols]
    out = []
    for s in symbols:
        out.append(size_symbol(s) if isinstance(s, str) else s)
    if not out:
        raise SymbolError("no symbol to analyse the growth in")
    return tuple(out)


def order(expr: Any, symbols: Any) -> Order:
    """The leading term and order of ``expr`` as ``symbols`` grow (other sizes: positive constants).

    >>> T, K, S = (size_symbol(n) for n in "TKS")
    >>> order(sympy.floor((T - K) / S) + 1, T).leading
    T/S
    """
    syms = _as_symbols(symbols)
    expr = as_expr(expr) if not isinstance(expr, sympy.Basic) else expr
    if not any(s in expr.free_symbols for s in syms):
        # Constant in the symbols: Θ(1) unless zero (floors of constants stay as they are).
        if expr == 0:
            return Order(syms, (), ZERO)
        zero = tuple((sympy.Integer(0), 0) for _ in syms)
        return Order(syms, (zero,), expr)
    asym = _Asym(syms)
    rewritten = asym.rewrite(expr)
    # Keep function calls that do not grow (floor(K/2), Min(H, 3)) as opaque constants.
    calls = {f: sympy.Dummy() for f in rewritten.atoms(sympy.Function)
             if not isinstance(f, sympy.log) and not asym.grows(f)}
    expanded = sympy.expand(rewritten.xreplace(calls) if calls else rewritten)
    terms = _leading_terms(expanded, syms)
    back = {d: f for f, d in calls.items()}
    back.update(asym.undecided)
    # Θ when every leading coefficient is a positive constant; a bounded θ in it (or a
    # coefficient of unknown sign after an undecided Min/Max) leaves an upper bound only.
    exact = all(not (c.free_symbols & asym.thetas) and c.xreplace(back).is_positive for c, _ in terms)
    leading = sympy.Add(*(c.xreplace(back) * _monomial(syms, v) for c, v in terms))
    if asym.thetas:  # the θ-free part of the bound (the expression itself if nothing is left)
        leading = leading.xreplace({u: 0 for u in asym.thetas}) or expr
    return Order(syms, tuple(v for _, v in terms), leading, exact)


def depends_on(expr: Any, symbols: Any) -> bool:
    """Whether ``expr`` contains any of ``symbols``."""
    syms = _as_symbols(symbols)
    return bool(set(syms) & getattr(expr, "free_symbols", set()))


# ---------------------------------------------------------------------------
# Models: scaling rows and the bias-free view
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Scaling:
    """One model's row of the comparison: costs, their orders in the time symbols, the verdict."""

    name: str
    symbols: tuple[sympy.Symbol, ...]
    params: sympy.Expr
    macs: sympy.Expr
    steps: sympy.Expr
    params_order: Order
    macs_order: Order
    steps_order: Order

    @property
    def fixed(self) -> bool:
        """Whether the parameters depend on the time symbols (the model takes one input length)."""
        return not self.params_order.is_zero and any(
            d != 0 or k != 0 for vec in self.params_order.exponents for d, k in vec)

    @property
    def verdict(self) -> str:
        """The slides' "Time scaling": ``fixed``, or the order of the MACs (``T``, ``T²``, ``T_self·T_cross``)."""
        if self.fixed:
            return "fixed"
        return self.macs_order.text(theta=False) if not self.macs_order.is_zero else "0"

    def as_dict(self) -> dict[str, Any]:
        from .render import jsonable

        return {
            "model": self.name,
            "in": [s.name for s in self.symbols],
            "params": jsonable(self.params),
            "macs": jsonable(self.macs),
            "steps": jsonable(self.steps),
            "params_order": self.params_order.text(),
            "macs_order": self.macs_order.text(),
            "macs_leading": jsonable(self.macs_order.leading),
            "params_leading": jsonable(self.params_order.leading),
            "steps_order": self.steps_order.text(),
            "time_scaling": self.verdict,
        }


def scaling(report, symbols: Any, name: str | None = None) -> Scaling:
    """The scaling row of a cost report in ``symbols`` (names or symbols)."""
    syms = _as_symbols(symbols)
    params, macs, steps = report.params, report.macs, report.steps
    return Scaling(
        name=name or report.name, symbols=syms, params=params, macs=macs, steps=steps,
        params_order=order(params, syms), macs_order=order(macs, syms), steps_order=order(steps, syms),
    )


def without_bias(model):
    """A copy of ``model`` (blocks included) with every ``bias`` argument set to false.

    This is the slides' view of the costs, which leave out bias terms.  The model itself is
    not changed.
    """
    from .layers.base import Args

    new = copy.copy(model)
    new.graph = model.graph.copy()
    new.blocks = {k: without_bias(b) for k, b in model.blocks.items()}
    new._order = list(model._order)
    new._cache = {}
    for node_id in new.node_ids:
        node = new.node(node_id)
        if node.block is not None:
            node = dataclasses.replace(node, block=new.blocks.get(node.op, node.block))
        elif node.args.get("bias") is True:
            node = dataclasses.replace(node, args=Args({**node.args, "bias": False}))
        new.graph.nodes[node_id]["node"] = node
    return new


class Comparison(list):
    """The rows of :func:`compare` (a list of :class:`Scaling`), shown in Jupyter as the table."""

    def _repr_html_(self) -> str:
        from .render.rich import comparison_html

        return comparison_html(self)


def compare(models: Iterable, symbols: Any, *, values: Mapping[str, Any] | None = None,
            bias: bool = True, names: Sequence[str] | None = None) -> Comparison:
    """Scaling rows of several models (``Model`` objects) in the time ``symbols``.

    ``values`` substitutes other sizes (a model without one of them ignores it); ``bias=False``
    analyses the bias-free copies (:func:`without_bias`).
    """
    syms = _as_symbols(symbols)
    models = list(models)
    names = list(names) if names else model_labels([[m.name] for m in models])
    rows = []
    for i, model in enumerate(models):
        m = model if bias else without_bias(model)
        report = m.cost()
        if values:
            known = report.known_names()
            mine = {k: v for k, v in values.items() if k in known}
            if mine:
                report = report.subs(mine)
        rows.append(scaling(report, syms, name=names[i]))
    return Comparison(rows)


def model_labels(candidates: Sequence[Sequence[str]]) -> list[str]:
    """One distinct label per compared model, from each model's candidates, best first.

    Each model takes its first candidate (the spec's ``name:``); the models whose labels
    collide take their next one (``name (file stem)``, then ``name (path as given)``), and those
    still equal after their last are numbered: ``RNN [1]``, ``RNN [2]`` (the same model given twice).
    """
    level = [0] * len(candidates)
    while True:
        labels = [c[min(i, len(c) - 1)] for c, i in zip(candidates, level)]
        clash = [k for k, lab in enumerate(labels) if labels.count(lab) > 1 and level[k] < len(candidates[k]) - 1]
        if not clash:
            break
        for k in clash:
            level[k] += 1
    seen: dict[str, int] = {}
    out = []
    for k, lab in enumerate(labels):
        if labels.count(lab) > 1:   # the same model twice: its first label, numbered
            seen[lab] = seen.get(lab, 0) + 1
            same = all(list(candidates[j]) == list(candidates[k]) for j, x in enumerate(labels) if x == lab)
            lab = f"{candidates[k][0] if same else lab} [{seen[lab]}]"
        out.append(lab)
    return out


# ---------------------------------------------------------------------------
# The comparison table
# ---------------------------------------------------------------------------

COLUMNS = ("model", "MACs", "params", "leading MACs", "MACs order", "params order", "steps", "time scaling")

_SUP = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def expr_text(expr: sympy.Expr) -> str:
    """Plain text of a cost for tables: H·I·T, T²·E, (I·H + H²)·T."""
    from .cost import tidy

    text = sympy.sstr(tidy(expr))
    out, i = [], 0
    while i < len(text):
        if text.startswith("**", i):
            j = i + 2
            while j < len(text) and text[j].isdigit():
                j += 1
            if j > i + 2:
                out.append(text[i + 2:j].translate(_SUP))
                i = j
                continue
            out.append("^")
            i += 2
            continue
        out.append("·" if text[i] == "*" else text[i])
        i += 1
    return "".join(out)


def cell_text(expr: sympy.Expr) -> str:
    """A cost in a plain or Markdown table: a concrete count as the cost table prints it
    (:func:`symcost.render.number`, 124,439,808), a formula as :func:`expr_text`."""
    from .render import number

    if isinstance(expr, int) or getattr(expr, "is_Integer", False):
        return number(expr)
    return expr_text(expr)


def _cells(row: Scaling, tex: bool, label=None) -> list[str]:
    """A row's cells; ``label`` escapes the model's name for the format (its other cells are
    printed from sympy expressions over size names, which hold no markup)."""
    name = label(row.name) if label else row.name
    if tex:
        from .render import latex

        fmt = lambda e: "$" + latex(e) + "$"  # noqa: E731
        order_fmt = lambda o: "$" + ("\\Theta" if o.exact else "O") + "(" + latex(o.growth) + ")$" \
            if not o.is_zero else "$0$"  # noqa: E731
        verdict = "fixed" if row.fixed else "$" + latex(row.macs_order.growth) + "$"
    else:
        fmt = cell_text
        order_fmt = lambda o: o.text()  # noqa: E731
        verdict = row.verdict
    return [name, fmt(row.macs), fmt(row.params), fmt(row.macs_order.leading), order_fmt(row.macs_order),
            order_fmt(row.params_order), fmt(row.steps), verdict]


def comparison_table(rows: Sequence[Scaling], fmt: str = "table", *, title: str = "",
                     width: int | None = None) -> str:
    """The comparison as ``table`` (plain text), ``markdown``, ``latex``, ``json`` or ``html``
    (a self-contained page with MathML; ``title`` is then the command that made it)."""
    if fmt == "html":
        from .render import render_template

        return render_template("compare.html.j2", rows=rows, columns=COLUMNS, command=title,
                               symbols=[s.name for s in rows[0].symbols] if rows else [])
    if fmt == "json":
        import json

        return json.dumps([r.as_dict() for r in rows], indent=2, ensure_ascii=False) + "\n"
    from .render.mathprint import markdown_text, tex_escape

    if fmt == "latex":
        body = [" & ".join(_cells(r, True, tex_escape)) + r" \\" for r in rows]
        head = " & ".join(COLUMNS) + r" \\"
        return "\n".join([r"\begin{tabular}{" + "l" * len(COLUMNS) + "}", r"\hline", head, r"\hline", *body, r"\hline",
                          r"\end{tabular}"]) + "\n"
    cells = [_cells(r, False, markdown_text if fmt == "markdown" else None) for r in rows]
    if fmt == "markdown":
        out = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
        out += ["| " + " | ".join(c) + " |" for c in cells]
        return "\n".join(out) + "\n"
    from .render.table import grid  # fitted to the terminal, as the cost table is

    out = ([title] if title else []) + grid(COLUMNS, cells, width)
    return "\n".join(out) + "\n"
