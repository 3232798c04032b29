"""The cost report: totals, per-layer rows, memory, steps; substitution and export.

A :class:`Report` is what ``model.cost()`` returns.  Its fields are sympy
expressions; :meth:`Report.subs` substitutes sizes (checked: known names,
whole numbers, every shape still at least 1) and returns a new report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import sympy

from .cost import OP_KINDS, Cost, tidy
from .errors import ShapeError, SizeError, SymbolError, nearest
from .graph import Analysis, NodeResult
from .layers.base import fmt_shape, numel
from .sizes import parse_size, symbol, to_size

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


class Report:
    """Closed-form costs of a model (or block) for ``batch`` samples of dtype ``dtype``."""

    def __init__(self, analysis: Analysis, *, batch: Any = 1, dtype: str = "fp32",
                 values: Mapping[sympy.Symbol, sympy.Expr] | None = None):
        if dtype not in DTYPES:
            raise SizeError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}" + nearest(dtype, DTYPES))
        self.analysis = analysis
        self.batch = to_size(batch, "batch") if not isinstance(batch, sympy.Expr) else batch
        self.dtype = dtype
        self.values: dict[sympy.Symbol, sympy.Expr] = dict(values or {})
        self._total: Cost | None = None
        self._rows: list[Row] | None = None

    # -- substitution --------------------------------------------------------
    def _s(self, expr: sympy.Expr) -> sympy.Expr:
        return expr.xreplace(self.values) if self.values else expr

    def _raw_exprs(self) -> list[sympy.Expr]:
        """Every total before substitution: the cost fields, steps and input size."""
        raw = self.analysis.total.batched(self.batch)
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
        arguments, and those already substituted."""
        found = set().union(*(e.free_symbols for e in [*self._raw_exprs(), self.batch]))
        for shape in self.analysis.input_shapes.values():
            for d in shape:
                found |= d.free_symbols
        found |= _quantity_symbols(self.analysis)
        return found | set(self.values)

    def subs(self, values: Mapping[str, Any] | None = None, **kw) -> "Report":
        """A new report with sizes substituted: ``report.subs(T=128, H="2*D")``."""
        given = dict(values or {}, **kw)
        known = self.known_names()
        new = dict(self.values)
        for name, value in given.items():
            if name not in known:
                listing = ", ".join(sorted(known)) or "none"
                raise SymbolError(f"unknown size {name!r}" + nearest(name, known) + f"; this model's sizes: {listing}")
            try:
                expr = parse_size(value) if isinstance(value, str) else to_size(value, name, minimum=0)
            except SizeError as err:
                raise err.at(f"value of {name}") from None
            if not expr.free_symbols and not expr.is_Integer:
                raise SizeError(f"{name} must be a whole number, but {value!r} is {expr}")
            if not expr.free_symbols and expr < 0:
                raise SizeError(f"{name} must not be negative, but it is {expr}")
            new[symbol(name)] = expr
        # Chained substitution (T = 2*H, H = 64) resolves fully.
        for _ in range(len(new)):
            resolved = {k: v.xreplace(new) for k, v in new.items()}
            if resolved == new:
                break
            new = resolved
        report = Report(self.analysis, batch=self.batch, dtype=self.dtype, values=new)
        report.check()
        return report

    def check(self) -> None:
        """Check that every concrete shape and recorded condition is at least 1."""
        a = self.analysis
        for iname, shape in a.input_shapes.items():
            for d in shape:
                v = self._s(d)
                if not v.free_symbols and v < 1:
                    raise ShapeError(f"input {iname!r} dimension {d} is {v}; it must be at least 1")
        self._check_rows(a, set())

    def _check_rows(self, a: Analysis, seen: set) -> None:
        seen.add(id(a))  # a block's analysis is checked once, however many uses it has
        for n in a.nodes:
            for d in n.shape:
                v = self._s(d)
                if not v.free_symbols and (v < 1 or not v.is_Integer):
                    raise ShapeError(
                        f"output dimension {d} is {v} with these sizes; it must be a whole number >= 1"
                    ).at(f"layer {n.id!r} ({n.op})")
            for expr, what in n.conditions:
                v = self._s(expr)
                if not v.free_symbols and v < 1:
                    raise ShapeError(f"{what} is {v} with these sizes; it must be at least 1").at(
                        f"layer {n.id!r} ({n.op})")
            if n.children is not None:
                v = self._s(n.repeat)
                if not v.free_symbols and (v < 1 or not v.is_Integer):
                    raise ShapeError(f"repeat {n.repeat} is {v} with these sizes; it must be a whole number >= 1").at(
                        f"layer {n.id!r} ({n.op})")
                if id(n.children) in seen:
                    continue
                try:
                    self._check_rows(n.children, seen)
                except ShapeError as err:  # name the block use too: 'layer 'blocks' (mlp), layer 'up' (linear)'
                    raise err.at(f"layer {n.id!r} ({n.op})") from None

    # -- totals ---------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.analysis.model.name

    @property
    def total(self) -> Cost:
        if self._total is None:
            self._total = self.analysis.total.batched(self.batch).subs(self.values).tidy()
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
        return tidy(self._s(self.batch * self.analysis.input_elements))

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
            children = Report(n.children, batch=self.batch, dtype=self.dtype, values=self.values)
        return Row(
            name=n.id, op=n.op, shape=tuple(self._s(d) for d in n.shape),
            cost=n.cost.batched(self.batch).subs(self.values).tidy(), repeat=self._s(n.repeat),
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
            "batch": jsonable(self._s(self.batch)),
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

    def table(self) -> str:
        from .render import text_table

        return text_table(self)

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

    def _repr_latex_(self) -> str:
        from .render import latex

        return "$\\text{params} = " + latex(self.params) + ",\\ \\text{MACs} = " + latex(self.macs) + "$"


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
