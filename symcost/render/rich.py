"""Rich displays for Jupyter: HTML with presentation MathML, and LaTeX for MathJax.

IPython shows an object through its ``_repr_html_`` (and ``_repr_latex_``, ...).  A
:class:`~symcost.report.Report`, a :class:`~symcost.graph.Model` (its report), a
:class:`~symcost.derivation.Derivation` and the rows :func:`symcost.analysis.compare`
returns display with the functions here; :func:`show` wraps any expression so that it
displays as symcost prints it (``795·Nh + 10``; sympy's own display drops the dot and
prints multi-letter names in italics).  The HTML is a fragment -- no page styles, which
would restyle the notebook around it -- and the formulas come from symcost's MathML
printer (:mod:`symcost.render.mathprint`).
"""

from __future__ import annotations

import html
from typing import Any

import sympy

from . import latex, render_template


class Math:
    """An expression that displays as symcost prints it: MathML in HTML, symcost's LaTeX."""

    def __init__(self, expr: Any):
        self.expr = sympy.Integer(expr) if isinstance(expr, int) else expr

    def _repr_html_(self) -> str:
        from .mathprint import mathml

        return mathml(self.expr)

    def _repr_latex_(self) -> str:
        return "$" + latex(self.expr) + "$"

    def __repr__(self) -> str:
        return sympy.sstr(self.expr)


def show(obj: Any):
    """``obj`` ready for Jupyter's display: an expression as symcost prints it (:class:`Math`);
    an object that has its own rich display (a report, a model, a derivation, a comparison)
    as it is."""
    if hasattr(obj, "_repr_html_"):
        return obj
    if isinstance(obj, (int, sympy.Basic)) and not isinstance(obj, bool):
        return Math(obj)
    raise TypeError(f"symcost.show displays an expression, a report, a model, a derivation or a comparison, "
                    f"not {type(obj).__name__}")


#: A sum whose text is longer than this displays as one <math> per term, so that it can wrap
#: (browsers do not break a line inside a <math> element).
BREAK_SUMS_FROM = 40


def math_html(expr: Any) -> str:
    """MathML of ``expr``; a long sum as one ``<math>`` per term (each after the first opening
    with its sign), separated by spaces so that a narrow cell wraps it between terms."""
    from .mathprint import _signed, arrange, mathml

    expr = sympy.Integer(expr) if isinstance(expr, int) else expr
    shown = arrange(expr)
    if not isinstance(shown, sympy.Add) or len(sympy.sstr(expr)) <= BREAK_SUMS_FROM:
        return mathml(expr)
    pieces = []
    for i, term in enumerate(shown.args):
        negative, magnitude = _signed(term)
        piece = mathml(magnitude)
        if i or negative:  # the sign goes first inside the term's own <math> element
            head = piece.index(">") + 1
            sign = "\u2212" if negative else "+"  # infix: spaced as between two terms
            piece = piece[:head] + f'<mo form="infix">{sign}</mo>' + piece[head:]
        pieces.append(piece)
    return "<span class=\"symcost-sum\">" + " ".join(pieces) + "</span>"


def totals(report) -> list[tuple[str, sympy.Expr]]:
    """Every total of a report, labelled, in the order of the text table."""
    mem = report.memory_bytes
    rows = [("params", report.params), ("input elements", report.input), ("activations", report.activations),
            ("MACs", report.macs), ("FLOPs", report.flops), ("FMA ops (pipelined)", report.fma_ops),
            ("steps (critical path)", report.steps)]
    rows += [(f"ops: {k}", v) for k, v in report.ops.items() if v != 0]
    rows += [(f"memory {k} ({report.dtype}, bytes)", v) for k, v in mem.items()]
    return rows


def _flat(report, depth: int = 0) -> list:
    out = []
    for r in report.rows:
        out.append((depth, r))
        if r.children is not None:
            out += _flat(r.children, depth + 1)
    return out


def report_html(report, heading: str = "") -> str:
    from ..derivation import Dims

    return render_template("report.html.j2", report=report, rows=_flat(report), totals=totals(report),
                           heading=heading, dims=lambda shape: Dims(*shape), m=math_html)


def _mathjax_text(value: Any) -> str:
    """Text safe inside MathJax's ``\\text{...}`` (which reads no escapes): specials become spaces."""
    return "".join(" " if ch in "\\{}$&#^_%~" else ch for ch in str(value))


def report_latex(report) -> str:
    return render_template("report.repr.tex.j2", report=report, totals=totals(report), mj=_mathjax_text)


def model_html(model) -> str:
    """A model's layers, shapes and costs (its report); an error in it as one line."""
    from ..errors import SymcostError

    inputs = ", ".join(f"{name}: {'×'.join(sympy.sstr(d) for d in shape) if shape else '?'}"
                       for name, shape in model.inputs.items())
    heading = f"Model {model.name!r}: {len(model.node_ids)} nodes, inputs {inputs or 'none'}"
    try:
        report = model.cost()
    except SymcostError as err:
        return f"<div class=\"symcost-model\"><p>{html.escape(heading)}</p>" \
               f"<p>symcost: error: {html.escape(str(err))}</p></div>"
    return report_html(report, heading=heading)


def derivation_html(derivation) -> str:
    """The derivation page's content (``symcost derive --format html``) without the page around it."""
    from ..derivation import render

    page = render(derivation, "html")
    start, end = page.find("<main>"), page.rfind("</main>")
    body = page[start + len("<main>"):end] if start >= 0 and end > start else page
    return f"<div class=\"symcost-derivation\">{body}</div>"


def comparison_html(rows) -> str:
    from ..analysis import COLUMNS

    return render_template("compare.fragment.html.j2", rows=list(rows), columns=COLUMNS, m=math_html,
                           symbols=[s.name for s in rows[0].symbols] if rows else [])
