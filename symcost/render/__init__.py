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
    return sympy.sstr(expr)


def jsonable(expr: Any) -> Any:
    """JSON value of an expression: an int once concrete, else its text."""
    if isinstance(expr, int) or getattr(expr, "is_Integer", False):
        return int(expr)
    return _sstr(expr)


@lru_cache(maxsize=16384)
def _sstr(expr: Any) -> str:
    """sympy's text of an expression, memoised (the rows of a repeated stack repeat)."""
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


def text_table(report, width: int | None = None, *, wide: bool = False) -> str:
    """The plain-text table, fitted to ``width`` (default: the terminal's) unless ``wide``
    (see :mod:`symcost.render.table`)."""
    from .table import text_table as table

    return table(report, width, wide=wide)
