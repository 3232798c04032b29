"""The cost report: totals, per-layer rows, memory, steps; substitution and export.

A :class:`Report` is what ``model.cost()`` returns.  Its fields are sympy
expressions; :meth:`Report.subs` substitutes sizes (checked: known names,
whole numbers, every shape still at least 1) and returns a new report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import sympy

from .cost import OP_KINDS, Cost, tidy
from .errors import ShapeError, SizeError, SymbolError, nearest
from .graph import Analysis, NodeResult
from .sizes import symbol, to_size
from .substitution import Rename, resolve

#: Bytes per element of each datatype.
DTYPES = {"fp64": 8, "fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1}


@dataclass(frozen=True)
class Row:
    """One line of the per-layer breakdown (all repetitions, whole batch)."""

    name: str
    op: str
    shape: tuple
    cost: Cost
    repeat: sympy.Expr
    steps: sympy.Expr
    children: "Report | None" = None

    def __getattr__(self, field: str):
        if field in ("params", "activations", "macs", "flops", "fma_ops", "ops"):
            return getattr(self.cost, field)
        raise AttributeError(field)


@dataclass(frozen=True)
class Check:
    """One thing substituted sizes must satisfy: ``expr`` is a whole number >= 1 (``kind``
    "whole": a dimension, a repeat count, the batch), >= 1 ("positive": a layer's condition,
    such as an output length), or not zero ("nonzero": a divisor inside a size, such as
    H - 2 in 12//(H - 2)).  ``where`` names the layer (its block uses first), ``what`` the size."""

    expr: sympy.Expr
    where: str
    what: str
    kind: str

    def problem(self, value: sympy.Expr, at: str = "with these sizes") -> str | None:
        """Why ``value`` (the expression at some sizes, described by ``at``) violates the check, or None."""
        if self.kind == "nonzero":
            return f"division by zero: {self.what}, which is 0 {at}" if value == 0 else None
        if value.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
            return f"division by zero: {self.what} is undefined {at}"
        if self.kind == "whole" and not (value.is_Integer and value >= 1):
            return f"{self.what} is {value} {at}; it must be a whole number >= 1"
        if self.kind == "positive" and not value >= 1:
            return f"{self.what} is {value} {at}; it must be at least 1"
        return None

    def error(self, value: sympy.Expr, at: str = "with these sizes") -> ShapeError:
        return ShapeError(self.problem(value, at) or f"{self.what} is {value} {at}", where=self.where or None)


class Report:
    """Closed-form costs of a model (or block) for ``batch`` samples of dtype ``dtype``."""

    def __init__(self, analysis: Analysis, *, batch: Any = 1, dtype: str = "fp32",
                 values: Mapping[sympy.Symbol, sympy.Expr] | None = None,
                 definitions: Mapping[sympy.Symbol, sympy.Expr] | None = None,
                 defaulted: Iterable[str] = ()):
        if dtype not in DTYPES:
            raise SizeError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}" + nearest(dtype, DTYPES))
        self.analysis = analysis
        #: the batch as given (a size expression); :attr:`batch` is its value after substitution
        self.raw_batch = to_size(batch, "batch") if not isinstance(batch, sympy.Expr) else batch
        self.dtype = dtype
        self.values: dict[sympy.Symbol, sympy.Expr] = dict(values or {})
        #: the substitutions as given, unresolved (``T: 2*H, H: 64``); :attr:`values` resolves them
        self.definitions: dict[sympy.Symbol, sympy.Expr] = dict(self.values if definitions is None else definitions)
        #: the names whose value is still a spec's default (a sweep of one of them overrides it)
        self.defaulted: frozenset[str] = frozenset(defaulted)
        self._total: Cost | None = None
        self._rows: list[Row] | None = None

    # -- substitution --------------------------------------------------------
    @property
    def batch(self) -> sympy.Expr:
        """The batch size, with the substituted sizes put in (``--batch B --set B=4``: 4)."""
        return self._s(self.raw_batch)

    def _s(self, expr: sympy.Expr) -> sympy.Expr:
        return expr.xreplace(self.values) if self.values else expr

    def _raw_exprs(self) -> list[sympy.Expr]:
        """Every total before substitution: the cost fields, steps and input size."""
        raw = self.analysis.total.batched(self.raw_batch)
        return [raw.params, raw.activations, raw.macs, raw.fma_ops, *raw.ops.values(),
                self.analysis.steps, self.analysis.input_elements]

    @property
    def symbols(self) -> set[sympy.Symbol]:
        """The free size symbols (after substitution)."""
        return set().union(*(self._s(e).free_symbols for e in self._raw_exprs()))

    def known_names(self) -> set[str]:
        names = {s.name for s in self._all_symbols()}
        names |= set(self.analysis.model.dims)
        return names

    def _all_symbols(self) -> set:
        """Every size name the model mentions: in its totals, batch, input shapes and layer
        arguments, those already substituted and those their values introduced (a rename)."""
        found = set().union(*(e.free_symbols for e in [*self._raw_exprs(), self.raw_batch]))
        for shape in self.analysis.input_shapes.values():
            for d in shape:
                found |= d.free_symbols
        found |= _quantity_symbols(self.analysis)
        found |= set().union(*(v.free_symbols for v in self.values.values()))
        return found | set(self.values)

    def subs(self, values: Mapping[str, Any] | None = None, **kw) -> "Report":
        """A new report with sizes substituted: ``report.subs(T=128, H="2*D")``.

        A value is a whole number (>= 0), or an expression of numbers and the model's own
        sizes: text in the size grammar (``"2*D"``) or a sympy expression.  Text naming a size
        the model does not have is refused (a typo must not become a new size); a new name is
        given explicitly with :meth:`rename` (``Rename("tokens")`` as a value).  The
        substitutions are resolved once, in the order of their dependencies
        (:func:`symcost.substitution.resolve`: a cycle is an error), and every shape,
        condition and repeat count is checked with the result (:meth:`check`)."""
        given = dict(values or {}, **kw)
        known = self.known_names()
        fresh: dict[str, str] = {}  # new names introduced by renames of this call
        for key, value in given.items():
            if isinstance(value, Rename):
                if value.name in known:
                    raise SymbolError(f"cannot rename {_key(key)} to {value.name!r}: {value.name!r} is already a size "
                                      f"of this model (to make {_key(key)} equal to it, set {_key(key)}={value.name})")
                if value.name in fresh:
                    raise SymbolError(f"{fresh[value.name]} and {_key(key)} are both renamed to {value.name!r}")
                fresh[value.name] = _key(key)
        definitions = dict(self.definitions)
        for key, value in given.items():
            name = _key(key)
            if name not in known and name not in fresh:  # a size, or a name a rename of this call gives
                listing = ", ".join(sorted(known)) or "none"
                raise SymbolError(f"unknown size {name!r}" + nearest(name, known) + f"; this model's sizes: {listing}")
            definitions[symbol(name)] = _value(name, value, known | set(fresh))
        report = Report(self.analysis, batch=self.raw_batch, dtype=self.dtype, values=resolve(definitions),
                        definitions=definitions, defaulted=self.defaulted - {_key(k) for k in given})
        report.check()
        return report

    def with_defaults(self, defaults: Mapping[str, Any]) -> "Report":
        """The report with a spec's ``defaults:`` substituted (``d_ff: 4*d_model``); a later
        :meth:`subs` of the same name overrides its default.  A default naming a size the model
        does not have is refused (a typo in a spec must not become a new size)."""
        known = self.known_names()
        mine = {}
        for name, value in defaults.items():
            if name not in known:
                continue  # a dim the analysed part (a block) does not use
            expr = to_size(value, f"the default of {name}", minimum=0)
            for s in sorted(expr.free_symbols, key=lambda s: s.name):
                if s.name not in known:
                    raise SymbolError(f"defaults: {name}: {expr} names {s.name!r}, which is not a size of this model"
                                      + nearest(s.name, known))
            mine[name] = expr
        if not mine:
            return self
        report = self.subs(mine)
        report.defaulted = frozenset(mine)
        return report

    def rename(self, names: Mapping[str, str] | None = None, **kw) -> "Report":
        """A new report with sizes given new names: ``report.rename(T="tokens")`` (``--rename``)."""
        return self.subs({k: Rename(v) for k, v in dict(names or {}, **kw).items()})

    def unset(self, names: Iterable[str]) -> "Report":
        """A new report without the substitutions of ``names`` (their defaults included): the sizes
        are free again, and what was defined in terms of them follows."""
        drop = {symbol(n) for n in names}
        definitions = {k: v for k, v in self.definitions.items() if k not in drop}
        return Report(self.analysis, batch=self.raw_batch, dtype=self.dtype, values=resolve(definitions),
                      definitions=definitions, defaulted=self.defaulted - {s.name for s in drop})

    def checks(self) -> list[Check]:
        """Everything substituted sizes must satisfy, each distinct check once (see :class:`Check`):
        every input and output dimension, layer condition, repeat count, divisor, and the batch."""
        return [*_analysis_checks(self.analysis), *_expr_checks(self.raw_batch, "", "the batch", "whole")]

    def check(self) -> None:
        """Check the substituted sizes: every concrete shape, condition and repeat a whole number
        (or number) >= 1, no divisor zero.  One :class:`ShapeError` naming the layer and the size."""
        for c in self.checks():
            v = self._s(c.expr)
            if v.free_symbols:
                if c.kind != "nonzero" and v.has(sympy.zoo, sympy.nan):  # a divisor already 0 inside
                    raise c.error(v)
                continue
            if c.problem(v) is not None:
                raise c.error(v)

    # -- totals ---------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.analysis.model.name

    @property
    def total(self) -> Cost:
        if self._total is None:
            self._total = self.analysis.total.batched(self.raw_batch).subs(self.values).tidy()
        return self._total

    params = property(lambda self: self.total.params, doc="Learnable parameters.")
    activations = property(lambda self: self.total.activations, doc="Elements of every layer output.")
    macs = property(lambda self: self.total.macs, doc="Multiply-accumulates of linear algebra.")
    flops = property(lambda self: self.total.flops, doc="Sum of ops (non-pipelined).")
    fma_ops = property(lambda self: self.total.fma_ops, doc="Ops with fused multiply-add (pipelined).")

    @property
    def ops(self) -> dict[str, sympy.Expr]:
        return {k: self.total.op(k) for k in OP_KINDS}

    @property
    def input(self) -> sympy.Expr:
        return tidy(self._s(self.raw_batch * self.analysis.input_elements))

    @property
    def steps(self) -> sympy.Expr:
        return self._s(self.analysis.steps)

    @property
    def bytes_per_element(self) -> int:
        return DTYPES[self.dtype]

    @property
    def memory_bytes(self) -> dict[str, sympy.Expr]:
        """Space of one forward pass: (params + activations) × bytes of the dtype."""
        b = self.bytes_per_element
        p, a = b * self.params, b * self.activations
        return {"params": p, "activations": a, "total": p + a}

    @property
    def conditions(self) -> list[tuple[sympy.Expr, str]]:
        """Symbolic sizes that must be >= 1 for the model to make sense."""
        out = []
        for expr, what in self.analysis.conditions:
            v = self._s(expr)
            if v.free_symbols:
                out.append((v, what))
        return out

    @property
    def output_shapes(self) -> list[tuple]:
        return [tuple(self._s(d) for d in s) for s in self.analysis.output_shapes()]

    # -- per layer ------------------------------------------------------------
    @property
    def rows(self) -> list[Row]:
        if self._rows is None:  # computed once: to_dict, table and layer() all read them
            self._rows = [self._row(n) for n in self.analysis.nodes]
        return list(self._rows)

    def _row(self, n: NodeResult) -> Row:
        children = None
        if n.children is not None:
            children = Report(n.children, batch=self.raw_batch, dtype=self.dtype, values=self.values)
        return Row(
            name=n.id, op=n.op, shape=tuple(self._s(d) for d in n.shape),
            cost=n.cost.batched(self.raw_batch).subs(self.values).tidy(), repeat=self._s(n.repeat),
            steps=self._s(n.steps),
            children=children,
        )

    def layer(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def sweep(self, ranges: Mapping[str, Any], fields: Any = None):
        """Fields over ranges of sizes (a grid), exact, from the formulas derived once:
        ``report.subs(I=64).sweep({"T": [16, 32, 64], "H": [128, 256]}, fields=["macs"])``."""
        from .sweep import FIELDS, sweep

        return sweep(self, ranges, fields=FIELDS if fields is None else fields)

    # -- export ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON contract: integers once every symbol is substituted, else strings."""
        from .render import jsonable

        return {
            "model": self.name,
            "batch": jsonable(self.batch),
            "dtype": self.dtype,
            "params": jsonable(self.params),
            "input": jsonable(self.input),
            "activations": jsonable(self.activations),
            "macs": jsonable(self.macs),
            "ops": {k: jsonable(v) for k, v in self.ops.items()},
            "flops": jsonable(self.flops),
            "fma_ops": jsonable(self.fma_ops),
            "steps": jsonable(self.steps),
            "memory_bytes": {k: jsonable(v) for k, v in self.memory_bytes.items()},
            "conditions": [f"{jsonable(e)} >= 1  ({what})" for e, what in self.conditions],
            "layers": _rows_dict(self.rows, {}),
        }

    def to_json(self, indent: int = 2) -> str:
        import json

        return json.dumps(self.to_dict(), indent=indent)

    def table(self, width: int | None = None, *, wide: bool = False) -> str:
        """The plain-text table, fitted to ``width`` characters (default: the terminal's, or
        100 when the output is not a terminal); ``wide``: unfitted, one line per layer."""
        from .render import text_table

        return text_table(self, width, wide=wide)

    def markdown(self) -> str:
        from .render import render_template

        return render_template("cost.md.j2", report=self)

    def latex(self) -> str:
        from .render import render_template

        return render_template("cost.tex.j2", report=self)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return f"<Report {self.name!r}: params={self.params}, macs={self.macs}, flops={self.flops}>"

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def _repr_html_(self) -> str:
        from .render.rich import report_html

        return report_html(self)

    def _repr_latex_(self) -> str:
        from .render.rich import report_latex

        return report_latex(self)


def _key(key: Any) -> str:
    """A substitution's key as a size name: "T" or the symbol T."""
    return key.name if isinstance(key, sympy.Symbol) else key


def _value(name: str, value: Any, known: set) -> sympy.Expr:
    """The expression a substitution ``name = value`` gives (see :meth:`Report.subs`)."""
    if isinstance(value, Rename):
        return symbol(value.name)
    unknown: list[str] = []

    def lookup(word: str) -> sympy.Symbol:  # the grammar's limits first, then the names
        if word not in known and word not in unknown:
            unknown.append(word)
        return symbol(word)

    expr = to_size(value, name, minimum=0, lookup=lookup)
    if unknown:
        word = unknown[0]
        hint = (f"; to give {name} a new name, rename it: --rename {name}={value}"
                if value.strip() == word else "")
        raise SymbolError(f"the value {value!r} of {name} is not a number or an expression of this model's sizes: "
                          f"{word!r} is not one of them" + nearest(word, known) + hint)
    return expr


def _analysis_checks(a: Analysis) -> tuple[Check, ...]:
    """The checks of an analysis (computed once per analysis: sweeps and substitutions reuse them).
    A block's analysis is walked once however many times it is used (its checks do not depend on
    the use), so nested blocks stay linear; identical checks are kept once, naming the first."""
    cached = a.__dict__.get("_symcost_checks")
    if cached is not None:
        return cached
    out: list[Check] = []
    for iname, shape in a.input_shapes.items():
        for d in shape:
            out.extend(_expr_checks(d, f"input {iname!r}", f"dimension {d}", "whole"))
    _node_checks(a, "", out, set())
    seen: set = set()
    unique = []
    for c in out:
        if (c.expr, c.kind) not in seen:
            seen.add((c.expr, c.kind))
            unique.append(c)
    result = tuple(unique)
    object.__setattr__(a, "_symcost_checks", result)  # a frozen dataclass: a cache, not a field
    return result


def _node_checks(a: Analysis, prefix: str, out: list, visited: set) -> None:
    if id(a) in visited:
        return
    visited.add(id(a))
    for n in a.nodes:
        where = f"{prefix}layer {n.id!r} ({n.op})"
        node = a.model.node(n.id)
        for arg, v in node.args.items():  # the user's own sizes first: 'out_features = 12//(H - 2)'
            for e in v if isinstance(v, tuple) else (v,):
                if isinstance(e, sympy.Expr):
                    out.extend(_divisor_checks(e, where, f"{arg} = {e}"))
        for e in (*n.shape, *(c for c, _ in n.conditions), n.repeat):
            out.extend(_divisor_checks(e, where, f"the size {e}"))
        for v in n.quantities.values():
            for e in v if isinstance(v, tuple) else (v,):
                if isinstance(e, sympy.Expr):
                    out.extend(_divisor_checks(e, where, f"the size {e}"))
        for d in n.shape:
            out.extend(_expr_checks(d, where, f"output dimension {d}", "whole"))
        for expr, what in n.conditions:
            out.extend(_expr_checks(expr, where, what, "positive"))
        if n.children is not None:
            out.extend(_expr_checks(n.repeat, where, f"repeat {n.repeat}", "whole"))
            _node_checks(n.children, where + ", ", out, visited)


def _expr_checks(expr: Any, where: str, what: str, kind: str) -> list[Check]:
    """A check of a symbolic size (a concrete one was checked when the model was built)."""
    if not isinstance(expr, sympy.Expr) or not expr.free_symbols:
        return []
    return [*_divisor_checks(expr, where, f"the size {expr}"), Check(expr, where, what, kind)]


def _divisor_checks(expr: sympy.Expr, where: str, what: str) -> list[Check]:
    """A 'nonzero' check for every symbolic divisor in ``expr`` (the base of a negative power:
    H - 2 in floor(12/(H - 2)))."""
    if not expr.free_symbols or not expr.has(sympy.Pow):
        return []
    found = []
    for e in sympy.preorder_traversal(expr):
        if e.is_Pow and e.exp.is_negative and e.base.free_symbols and e.base not in found:
            found.append(e.base)
    return [Check(d, where, f"{what} divides by {d}", "nonzero") for d in found]


def _quantity_symbols(a: Analysis, seen: set | None = None) -> set:
    """Symbols in any layer's arguments, even those its counts do not depend on
    (a dilation under padding='same'): setting them is allowed, not an error."""
    seen = set() if seen is None else seen
    seen.add(id(a))  # each block's analysis once, however many uses it has
    found: set = set()
    for n in a.nodes:
        for v in n.quantities.values():
            for e in v if isinstance(v, tuple) else (v,):
                if isinstance(e, sympy.Basic):
                    found |= e.free_symbols
        if n.children is not None and id(n.children) not in seen:
            found |= _quantity_symbols(n.children, seen)
    return found


def _rows_dict(rows, shown: dict, path: str = "") -> list[dict[str, Any]]:
    """A block used again on the same shapes gives its layers once: later uses name the
    first (``"layers_as": "outer.inner"``), as their uses can be exponentially many."""
    out = []
    for r in rows:
        d = _row_dict(r)
        if r.children is not None:
            key = id(r.children.analysis)
            if key in shown:
                d["layers_as"] = shown[key]
            else:
                shown[key] = path + r.name
                d["layers"] = _rows_dict(r.children.rows, shown, path + r.name + ".")
        out.append(d)
    return out


def _row_dict(r: Row) -> dict[str, Any]:
    from .render import jsonable

    d = {
        "name": r.name,
        "op": r.op,
        "shape": [jsonable(x) for x in r.shape],
        "params": jsonable(r.cost.params),
        "activations": jsonable(r.cost.activations),
        "macs": jsonable(r.cost.macs),
        "ops": {k: jsonable(r.cost.op(k)) for k in OP_KINDS},
        "flops": jsonable(r.cost.flops),
        "fma_ops": jsonable(r.cost.fma_ops),
        "steps": jsonable(r.steps),
    }
    if r.children is not None:
        d["repeat"] = jsonable(r.repeat)
    return d
