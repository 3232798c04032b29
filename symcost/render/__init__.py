"""Printing: sympy printers for symcost's symbols, and jinja2 templates.

LaTeX is produced by :class:`LatexPrinter` (a subclass of sympy's), never by
gluing strings; templates receive expressions and apply the ``tex`` filter.
The jinja2 environment comes from :func:`environment`, which puts a user's
template directory first on the search path.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

import sympy
from sympy.printing.latex import LatexPrinter as _SympyLatexPrinter


class LatexPrinter(_SympyLatexPrinter):
    """sympy's LaTeX printer with symcost's defaults: ``\\cdot`` products, sizes as symbols."""

    def __init__(self, settings=None):
        base = {"mul_symbol": "dot"}
        base.update(settings or {})
        super().__init__(base)

    def _print_Symbol(self, expr, style="plain"):
        # Multi-letter names (n_layer, d_model, hidden) print upright, not as products of italics.
        name = expr.name
        head, _, sub = name.partition("_")
        if len(head) > 1 and head not in self._greek():
            head = r"\mathrm{" + head.replace("_", r"\_") + "}"
            if sub:
                return head + "_{" + (r"\mathrm{" + sub.replace("_", r"\_") + "}" if len(sub) > 1 else sub) + "}"
            return head
        return super()._print_Symbol(expr, style=style)

    @staticmethod
    @lru_cache(maxsize=1)
    def _greek():
        from sympy.printing.latex import greek_letters_set

        return frozenset(greek_letters_set)


def latex(expr: Any) -> str:
    """LaTeX of a size or cost expression."""
    if isinstance(expr, int):
        expr = sympy.Integer(expr)
    return LatexPrinter().doprint(expr)


def number(expr: Any) -> str:
    """A concrete integer with thousands separators; anything else as sympy prints it."""
    if isinstance(expr, int) or getattr(expr, "is_Integer", False):
        return f"{int(expr):,}"
    return _sstr(expr)


def jsonable(expr: Any) -> Any:
    """JSON value of an expression: an int once concrete, else its text."""
    if isinstance(expr, int) or getattr(expr, "is_Integer", False):
        return int(expr)
    return _sstr(expr)


#: Beyond this many distinct symbols an expression prints its sums in sympy's stored order.
ORDER_SYMBOLS = 64


@lru_cache(maxsize=16384)
def _sstr(expr: Any) -> str:
    """sympy's text of an expression, memoised (the rows of a repeated stack repeat).

    sympy orders a sum's terms by their degree in every symbol of the sum: time terms ×
    symbols, quadratic in a wide model whose 5,000 layers each have a width of their own
    (most of a minute for one total).  Past ORDER_SYMBOLS symbols the sums print in the
    order sympy stores them (canonical and deterministic too, only not by degree)."""
    if isinstance(expr, sympy.Basic) and len(expr.free_symbols) > ORDER_SYMBOLS:
        return sympy.sstr(expr, order="none")
    return sympy.sstr(expr)


def shape_text(shape: Sequence) -> str:
    return "×".join(number(d) for d in shape) if shape else "scalar"


@lru_cache(maxsize=8)
def environment(template_dir: str | None = None):
    """A jinja2 environment: the user's directory first, then the package's templates."""
    import jinja2

    loaders = []
    if template_dir:
        loaders.append(jinja2.FileSystemLoader(template_dir))
    loaders.append(jinja2.PackageLoader("symcost", "render/templates"))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["tex"] = latex
    env.filters["num"] = number
    env.filters["shape"] = shape_text
    env.filters["shape_tex"] = lambda s: r" \times ".join(latex(d) for d in s) if s else "1"
    from . import mathprint  # derivations: formulas as written, MathML, mixed text-and-math sentences

    env.filters.update(mathprint.FILTERS)
    return env


def render_template(name: str, template_dir: str | None = None, **context) -> str:
    return environment(template_dir).get_template(name).render(**context)


#: Longest per-layer cell of the text table.
MAX_CELL = 120


def text_table(report) -> str:
    """torchinfo-style plain table: one row per layer, a totals row, then the other totals."""
    header = ("layer", "op", "output shape", "params", "MACs", "FLOPs")
    rows = []
    shown: dict = {}  # a block's breakdown -> the row that showed it
    cut = []

    def cell(text):  # per-layer cells are cut at MAX_CELL: n strided layers would print n² characters
        if len(text) <= MAX_CELL:
            return text
        cut.append(text)
        return text[:MAX_CELL - 1] + "…"

    def add_rows(rep, indent=""):
        for r in rep.rows:
            op = r.op if r.children is None else f"{r.op} ×{number(r.repeat)}"
            rows.append((indent + r.name, op, *(cell(x) for x in (
                shape_text(r.shape), number(r.cost.params), number(r.cost.macs), number(r.cost.flops)))))
            if r.children is not None:
                # A block used again on the same shapes is broken down once: its uses can be
                # exponentially many (each block using the one before twice).
                key = id(r.children.analysis)
                if key in shown:
                    rows.append((f"{indent}  (layers as in {shown[key]!r} above)",))
                else:
                    shown[key] = (indent + r.name).strip()
                    add_rows(r.children, indent + "  ")

    add_rows(report)
    total = ("total", "", shape_text(report.output_shapes[0]) if report.output_shapes else "",
             number(report.params), number(report.macs), number(report.flops))
    # Columns are as wide as their cells up to MAX_CELL: a longer total overflows its line
    # instead of padding every row to its length (quadratic in a wide model).
    widths = [max(min(len(str(x[i])), MAX_CELL) for x in [header, total, *rows] if len(x) > 1)
              for i in range(len(header))]

    def line(cells):
        if len(cells) == 1:  # a note under a block's row
            return cells[0]
        return "  ".join(
            str(c).ljust(w) if i < 3 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    rule = "-" * len(line(header))
    out = [f"{report.name}  (batch {number(report.batch)}, {report.dtype})", rule, line(header), rule]
    out += [line(r) for r in rows]
    out += [rule, line(total), rule]
    mem = report.memory_bytes
    extra = [
        ("input elements", report.input),
        ("activations", report.activations),
        ("fma_ops (pipelined)", report.fma_ops),
        ("steps (critical path)", report.steps),
        (f"memory params ({report.dtype}, bytes)", mem["params"]),
        (f"memory activations ({report.dtype}, bytes)", mem["activations"]),
        (f"memory total ({report.dtype}, bytes)", mem["total"]),
    ]
    ops_text = ", ".join(f"{k} {number(v)}" for k, v in report.ops.items() if v != 0)
    w = max(len(k) for k, _ in extra)
    out += [f"{k.ljust(w)}  {number(v)}" for k, v in extra]
    out.append(f"{'ops by kind'.ljust(w)}  {ops_text or '0'}")
    for expr, what in report.conditions:
        out.append(f"{'condition'.ljust(w)}  {cell(_sstr(expr))} >= 1  ({cell(what)})")
    if cut:
        out.append(f"({len(cut)} cells longer than {MAX_CELL} characters are cut at …; "
                   "--format json gives them in full)")
    return "\n".join(out) + "\n"
