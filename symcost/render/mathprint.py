"""Printers for derivations: LaTeX and presentation MathML, both through sympy's printer classes.

A derivation shows a formula three ways: the general formula (printed in sympy's
canonical order), the same formula with the sizes put in *as written*
(``6·28·28·2·1·5·5``: an unevaluated sympy expression whose factors must keep
their order and must not be merged), and its value.  Both printers here print a
canonical sub-expression as sympy would, and an unevaluated ``Add``/``Mul`` in
the order its arguments were given, with a visible ``·`` between factors and
``−`` for negative terms.  Integers of five digits or more are grouped by
thousands (``235,200``), as the notes write them.
"""

from __future__ import annotations

import re
from functools import lru_cache

import sympy
from sympy.core.function import AppliedUndef
from sympy.printing.mathml import MathMLPresentationPrinter
from sympy.printing.precedence import PRECEDENCE

from . import LatexPrinter

GROUP_FROM = 1_000  # integers from this size on print with thousands separators (4,704)


def _split_fraction(args):
    """Numerator and denominator factors of an unevaluated product (``Pow(x, −1)`` divides)."""
    num, den = [], []
    for a in args:
        if isinstance(a, sympy.Pow) and a.exp == -1:
            den.append(a.base)
        else:
            num.append(a)
    den.sort(key=lambda d: not d.is_Number)  # 3·y, not y·3
    return num, den


def _flat_factors(factors):
    """Factors with nested plain products opened: a·(b·c) prints a·b·c."""
    out = []
    for f in factors:
        if isinstance(f, sympy.Mul) and not _signed(f)[0] and not _split_fraction(f.args)[1]:
            out.extend(_flat_factors(f.args))
        else:
            out.append(f)
    return out


def _product(factors):
    if not factors:
        return sympy.Integer(1)
    return factors[0] if len(factors) == 1 else sympy.Mul(*factors, evaluate=False)


def _same_terms(expr) -> bool:
    """Whether sympy would build ``expr`` from its arguments (in whatever order it keeps them)."""
    try:
        built = expr.func(*expr.args)
    except Exception:  # noqa: BLE001
        return False
    key = sympy.default_sort_key
    return built.func == expr.func and sorted(built.args, key=key) == sorted(expr.args, key=key)


_KEEP = (sympy.Add, sympy.Mul, sympy.Pow, sympy.floor, sympy.ceiling, sympy.Min, sympy.Max)

RANK = ("K", "C", "G", "T", "M_1", "N_1", "L_1", "M", "N", "L", "I", "W", "H", "R", "n", "k")


def _term_key(term):
    if not term.free_symbols:  # numbers written out: keep their order (the sort is stable), plain numbers last
        return (bool(term.is_Number), 1)
    ranks = [RANK.index(s.name) if s.name in RANK else len(RANK) for s in term.free_symbols
             if isinstance(s, sympy.Symbol)]
    names = sorted(s.name for s in term.free_symbols if isinstance(s, sympy.Symbol))
    degree = sympy.Poly(term).total_degree() if term.is_polynomial() and term.free_symbols else 0
    return (False, 0, isinstance(term, sympy.Add),
            min(ranks) if ranks else len(RANK), -degree, names, sympy.default_sort_key(term))


def arrange(expr):
    """``expr`` unevaluated in the notes' order: K·C·W·H, M − W + 2P, constants last in sums and first in
    products.  Mathematically the same expression (its ``doit()`` is ``expr``)."""
    if not isinstance(expr, sympy.Basic) or expr.is_Atom or not expr.args:
        return expr
    if isinstance(expr, sympy.Add) and _same_terms(expr):
        terms = sorted(expr.args, key=_term_key)
        if len(terms) > 1 and terms[0].could_extract_minus_sign():  # never start a sum with a minus
            first = next((t for t in terms if not t.could_extract_minus_sign()), None)
            if first is not None:
                terms.remove(first)
                terms.insert(0, first)
        return sympy.Add(*(arrange(t) for t in terms), evaluate=False)
    if isinstance(expr, sympy.Mul) and _same_terms(expr):
        coeff, factors = expr.as_coeff_mul()
        factors = [arrange(f) for f in sorted(factors, key=_term_key)]
        if coeff.is_Rational and coeff.q != 1:  # (2/3)·x prints as 2·x/3
            factors.append(sympy.Pow(sympy.Integer(coeff.q), -1, evaluate=False))
            coeff = sympy.Integer(coeff.p)
        lead = [coeff] if coeff != 1 else []
        if len(lead) + len(factors) == 1:
            return (lead + factors)[0]
        return sympy.Mul(*lead, *factors, evaluate=False)
    if isinstance(expr, sympy.UnevaluatedExpr):  # an order chosen on purpose: arrange inside the terms only
        inner = expr.args[0]
        if isinstance(inner, (sympy.Add, sympy.Mul)):
            return sympy.UnevaluatedExpr(inner.func(*(arrange(a) for a in inner.args), evaluate=False))
        return sympy.UnevaluatedExpr(arrange(inner))
    if isinstance(expr, _KEEP):
        return expr.func(*(arrange(a) for a in expr.args), evaluate=False)
    return expr


def group_digits(n: int) -> str:
    return f"{n:,}" if abs(n) >= GROUP_FROM else str(n)


def _signed(expr):
    """(negative, magnitude as written) of a product or number with a negative leading coefficient."""
    if expr.is_Number and expr < 0:
        return True, -expr
    if isinstance(expr, sympy.Mul) and expr.args and expr.args[0].is_Number and expr.args[0] < 0:
        head = -expr.args[0]
        factors = expr.args[1:] if head == 1 else (head, *expr.args[1:])
        return True, _product(list(factors))
    return False, expr


class DerivationLatexPrinter(LatexPrinter):
    """symcost's LaTeX printer; sums and products print in the order of their arguments
    (:func:`arrange` puts them in the notes' order first)."""

    def _print_Integer(self, expr):
        text = group_digits(int(expr))
        return text.replace(",", "{,}")

    def _print_Dims(self, expr):
        return r" \times ".join(self._print(a) for a in expr.args) if expr.args else "1"

    def _print_Add(self, expr, order=None):
        out = []
        for i, term in enumerate(expr.args):
            negative, shown = _signed(term)
            text = self.parenthesize(shown, PRECEDENCE["Add"], strict=False) if isinstance(shown, sympy.Add) \
                else self._print(shown)
            out.append(("- " if negative else ("+ " if i else "")) + text)
        return " ".join(out)

    def _print_Mul(self, expr):
        negative, shown = _signed(expr)
        if negative:
            return "- " + self.parenthesize(shown, PRECEDENCE["Mul"], strict=False) \
                if isinstance(shown, sympy.Add) else "- " + self._print(shown)
        num, den = _split_fraction(expr.args)
        if den:
            return r"\frac{%s}{%s}" % (self._print(_product(num)), self._print(_product(den)))
        return r" \cdot ".join(self.parenthesize(f, PRECEDENCE["Mul"], strict=False) for f in _flat_factors(num))

    def _print_Rational(self, expr):
        if expr.q == 1:
            return self._print(sympy.Integer(expr.p))
        return super()._print_Rational(expr)


class MathMLPrinter(MathMLPresentationPrinter):
    """sympy's presentation-MathML printer with the same conventions as :class:`DerivationLatexPrinter`."""

    _default_settings = dict(MathMLPresentationPrinter._default_settings, mul_symbol="dot")

    def _mo(self, text: str):
        mo = self.dom.createElement("mo")
        mo.appendChild(self.dom.createTextNode(text))
        return mo

    def _print_Dims(self, expr):
        if not expr.args:
            return self._print(sympy.Integer(1))
        row = self.dom.createElement("mrow")
        for i, a in enumerate(expr.args):
            if i:
                row.appendChild(self._mo("\u00d7"))
            row.appendChild(self._print(a))
        return row

    def _print_UnevaluatedExpr(self, expr):
        return self._print(expr.args[0])

    def _print_Function(self, expr):
        """An undefined function as written: Size(w₁, b₁) (sympy's default lower-cases the name)."""
        if not isinstance(expr, AppliedUndef):
            return super()._print_Function(expr)
        row = self.dom.createElement("mrow")
        mi = self.dom.createElement("mi")
        mi.appendChild(self.dom.createTextNode(expr.func.__name__))
        row.appendChild(mi)
        row.appendChild(self._mo("("))
        for i, a in enumerate(expr.args):
            if i:
                row.appendChild(self._mo(","))
            row.appendChild(self._print(a))
        row.appendChild(self._mo(")"))
        return row

    def _print_Integer(self, expr):
        if expr < 0:
            row = self.dom.createElement("mrow")
            row.appendChild(self._mo("\u2212"))
            row.appendChild(self._print_Integer(-expr))
            return row
        mn = self.dom.createElement("mn")
        mn.appendChild(self.dom.createTextNode(group_digits(int(expr))))
        return mn

    def _print_Add(self, expr, order=None):
        row = self.dom.createElement("mrow")
        for i, term in enumerate(expr.args):
            negative, shown = _signed(term)
            if i or negative:
                row.appendChild(self._mo("\u2212" if negative else "+"))
            row.appendChild(self.parenthesize(shown, PRECEDENCE["Add"], strict=False)
                            if isinstance(shown, sympy.Add) else self._print(shown))
        return row

    def _print_Mul(self, expr):
        negative, shown = _signed(expr)
        if negative:
            row = self.dom.createElement("mrow")
            row.appendChild(self._mo("\u2212"))
            row.appendChild(self.parenthesize(shown, PRECEDENCE["Mul"], strict=False)
                            if isinstance(shown, sympy.Add) else self._print(shown))
            return row
        num, den = _split_fraction(expr.args)
        if den:
            frac = self.dom.createElement("mfrac")
            frac.appendChild(self._print(_product(num)))
            frac.appendChild(self._print(_product(den)))
            return frac
        row = self.dom.createElement("mrow")
        for i, f in enumerate(_flat_factors(num)):
            if i:
                row.appendChild(self._mo("\u00b7"))
            row.appendChild(self.parenthesize(f, PRECEDENCE["Mul"], strict=False))
        return row

    def math(self, expr, display: bool = False) -> str:
        """A complete ``<math>`` element (block when ``display``)."""
        return self._math([self._print(expr)], display)

    def _math(self, nodes, display: bool = False) -> str:
        root = self.dom.createElement("math")
        root.setAttribute("xmlns", "http://www.w3.org/1998/Math/MathML")
        if display:
            root.setAttribute("display", "block")
        if len(nodes) == 1:
            root.appendChild(nodes[0])
        else:
            row = self.dom.createElement("mrow")
            for node in nodes:
                row.appendChild(node)
            root.appendChild(row)
        for mi in root.getElementsByTagName("mi"):  # subscripts such as the 1 of M₁ are numbers
            if mi.firstChild is not None and str(mi.firstChild.data).isdigit():
                mi.tagName = mi.nodeName = "mn"
        return root.toxml().encode("ascii", "xmlcharrefreplace").decode()

    # A long formula as pieces a browser may wrap between.  MathML Core (Chromium's MathML) never
    # breaks a <math> across lines, so a long sum is printed as one <math> per term, each with its
    # sign, and a line may break before any + or −, as a long sum is broken in print.  A term that is a
    # group (a + b + …) or a product c·(a + b + …), such as n_layer·(one block's count), is opened
    # into the terms of its sum, between ( and ) that do not stretch (they sit in different <math>s).

    def pieces(self, expr) -> list[list]:
        """``expr`` as a list of pieces (each a list of MathML nodes) that may go on different lines."""
        if isinstance(expr, sympy.UnevaluatedExpr):
            expr = expr.args[0]
        if not isinstance(expr, sympy.Add):
            return self._term_pieces(expr)
        out = []
        for i, term in enumerate(expr.args):
            negative, shown = _signed(term)
            sub = self._term_pieces(shown)
            if i or negative:
                sign = self._mo("\u2212" if negative else "+")
                if i:
                    sign.setAttribute("form", "infix")  # first in its <math>, spaced as between terms
                sub[0].insert(0, sign)
            out.extend(sub)
        return out

    def _term_pieces(self, term) -> list[list]:
        if isinstance(term, sympy.UnevaluatedExpr):
            term = term.args[0]
        if isinstance(term, sympy.Add):
            return self._group(self.pieces(term))
        if isinstance(term, sympy.Mul) and not _signed(term)[0] and not _split_fraction(term.args)[1]:
            factors = _flat_factors(term.args)
            groups = [f for f in factors if isinstance(f, sympy.Add)]
            if len(groups) == 1 and len(factors) > 1:
                rest = [f for f in factors if f is not groups[0]]
                inner = self._group(self.pieces(groups[0]))
                inner[0][:0] = [self._print(_product(rest)), self._mo("\u00b7")]
                return inner
        return [[self._print(term)]]

    def _group(self, pieces: list[list]) -> list[list]:
        for piece, text in ((pieces[0], "("), (pieces[-1], ")")):
            fence = self._mo(text)
            fence.setAttribute("stretchy", "false")  # its partner is in another <math>: same size
            piece.insert(0 if text == "(" else len(piece), fence)
        return pieces


def latex_written(expr) -> str:
    """LaTeX of an expression, unevaluated parts as written, big integers grouped."""
    if isinstance(expr, int):
        expr = sympy.Integer(expr)
    return DerivationLatexPrinter().doprint(arrange(expr))


def mathml(expr, display: bool = False) -> str:
    """A presentation-MathML ``<math>`` element for ``expr``."""
    if isinstance(expr, int):
        expr = sympy.Integer(expr)
    return MathMLPrinter().math(arrange(expr), display=display)


BREAK_FROM = 32  # a formula showing more characters than this may be broken across lines (mathml_lines)


def shown_chars(markup: str) -> int:
    """How many characters a MathML (or HTML) fragment shows: tags dropped, an entity one character."""
    return len(re.sub(r"<[^>]*>", "", re.sub(r"&#?\w+;", "x", markup)))


@lru_cache(maxsize=16384)
def mathml_lines(expr) -> str:
    """HTML for ``expr`` that a browser may break across lines: one ``<math>`` when it is short
    (:data:`BREAK_FROM`) or cannot be broken, else one ``<math>`` per piece of its sum (see
    :meth:`MathMLPrinter.pieces`) with a line-break opportunity (``<wbr>``) before each + and −,
    in a ``<span class="terms">``.  Memoised: a repeated block's formulas repeat."""
    if isinstance(expr, int):
        expr = sympy.Integer(expr)
    expr = arrange(expr)
    printer = MathMLPrinter()
    inner = expr.args[0] if isinstance(expr, sympy.UnevaluatedExpr) else expr
    if isinstance(inner, (sympy.Add, sympy.Mul)):  # nothing else has pieces
        pieces = [printer._math(p) for p in printer.pieces(inner)]
        if len(pieces) > 1 and sum(map(shown_chars, pieces)) > BREAK_FROM:
            return '<span class="terms">' + "<wbr>".join(pieces) + "</span>"
    return printer.math(expr)


def fits_one_line(markup, extra: str = "") -> bool:
    """Whether an equation (its printed sides, and ``extra`` text) is short enough for one line, as
    :attr:`symcost.derivation.Step.one_line` decides for Markdown and LaTeX (counted on the MathML)."""
    from ..derivation import ONE_LINE_CHARS

    return sum(map(shown_chars, markup)) + len(extra) <= ONE_LINE_CHARS


# ---------------------------------------------------------------------------
# Text with math: a derivation's sentences are tuples of text and expressions
# ---------------------------------------------------------------------------

_TEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
    "|": r"\textbar{}", "`": r"\textasciigrave{}",
    "×": r"$\times$", "·": r"$\cdot$", "−": "-", "–": "--", "—": "---", "≈": r"$\approx$", "µ": r"\textmu{}",
    "→": r"$\to$", "’": "'", "ᵀ": r"\textsuperscript{T}", "₁": r"\textsubscript{1}", "₀": r"\textsubscript{0}",
}


def tex_escape(text) -> str:
    """Plain text for a LaTeX document: specials escaped; other non-ASCII characters become '?'
    (pdflatex's default fonts have no glyph for them); '--' stays two hyphens."""
    text = str(text).replace("--", "-\x00-")
    out = []
    for ch in str(text):
        if ch in _TEX_SPECIAL:
            out.append(_TEX_SPECIAL[ch])
        elif ch == "\x00":
            out.append("{}")
        elif ord(ch) < 128:
            out.append(ch)
        else:
            out.append("?")
    return "".join(out)


def _is_math(part) -> bool:
    return isinstance(part, sympy.Basic)


def sentence_markdown(parts) -> str:
    """Text as is, math as ``$…$`` (GitHub and Jupyter)."""
    return "".join(f"${latex_written(p)}$" if _is_math(p) else markdown_text(p) for p in parts)


def sentence_latex(parts) -> str:
    return "".join(f"${latex_written(p)}$" if _is_math(p) else tex_escape(p) for p in parts)


def sentence_html(parts) -> str:
    import html

    return "".join(mathml_lines(p) if _is_math(p) else html.escape(str(p)) for p in parts)


_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def markdown_text(text) -> str:
    """Text safe in a Markdown paragraph, heading or table cell (CommonMark/GFM, as GitHub and
    Jupyter render it): no emphasis, code, links, tables, strikethrough or ``$`` math -- each of
    those characters is backslash-escaped, as is a ``#`` that would open a heading or close one
    (first, or in the text's trailing run) -- and no HTML: ``&``, ``<`` and ``>`` become entities
    (a backslash before ``<`` is not an escape in every renderer)."""
    text = str(text)
    heading = {0} | set(range(len(text.rstrip("#")), len(text)))   # where a # is a heading's

    def escaped(i: int, ch: str) -> str:
        if ch in _MD_ENTITIES:
            return _MD_ENTITIES[ch]
        return "\\" + ch if ch in "\\`*_[]|$~" or (ch == "#" and i in heading) else ch

    return "".join(escaped(i, ch) for i, ch in enumerate(text))


FILTERS = {
    "texw": latex_written,
    "mathml": mathml,
    "mathml_block": lambda e: mathml(e, display=True),
    "mathml_lines": mathml_lines,
    "fits_one_line": fits_one_line,
    "tex_escape": tex_escape,
    "md_text": markdown_text,
    "sentence_md": sentence_markdown,
    "sentence_tex": sentence_latex,
    "sentence_html": sentence_html,
}


_MARKUP = re.compile(r"\\[a-zA-Z]+|[{}]")


def visible_length(tex: str) -> int:
    """Roughly how many characters a LaTeX formula shows (commands and braces dropped)."""
    tex = tex.replace(r"\cdot", "*").replace(r"\left", "").replace(r"\right", "")
    return len(_MARKUP.sub("", tex).replace(" ", ""))


def latex_lines(expr, width: int = 46) -> list[str]:
    r"""LaTeX of ``expr`` broken into lines at the top-level + and − of a long sum, for a
    document's ``align*``; a short formula (or one that is not a sum) is one line.  Each
    line after the first starts with its sign.  A term that alone is too wide, a group
    (a + b + …) or a product c·(a + b + …) such as n_layer·(one block's count), is broken
    inside its sum, between ``\bigl(`` and ``\bigr)`` (which, unlike ``\left``/``\right``,
    may open and close on different lines)."""
    expr = arrange(sympy.Integer(expr) if isinstance(expr, int) else expr)
    printer = DerivationLatexPrinter()
    whole = printer.doprint(expr)
    inner = expr.args[0] if isinstance(expr, sympy.UnevaluatedExpr) else expr
    if visible_length(whole) <= width:
        return [whole]
    if not isinstance(inner, sympy.Add):
        return _broken_group(printer, inner, width) or [whole]
    lines, current = [], ""
    for i, term in enumerate(inner.args):
        negative, shown = _signed(term)
        sign = "- " if negative else ("+ " if i else "")
        text = printer.parenthesize(shown, PRECEDENCE["Add"], strict=False) if isinstance(shown, sympy.Add) \
            else printer._print(shown)
        broken = _broken_group(printer, shown, width) if visible_length(text) > width else None
        if broken:
            if current:
                lines.append(current.rstrip())
            lines.extend([sign + broken[0], *broken[1:-1]])
            current = broken[-1] + " "
            continue
        piece = sign + text
        if current and visible_length(current + piece) > width:
            lines.append(current.rstrip())
            current = ""
        current += piece + " "
    lines.append(current.rstrip())
    return lines


def _broken_group(printer, term, width: int) -> list[str] | None:
    """``term`` = (a + b + …) or c·(a + b + …), its sum broken into lines (see latex_lines);
    None when it is neither or its sum fits on one line."""
    if isinstance(term, sympy.Add):
        prefix, group = "", term
    elif isinstance(term, sympy.Mul):
        groups = [a for a in term.args if isinstance(a, sympy.Add)]
        if len(groups) != 1:
            return None
        group = groups[0]
        rest = [a for a in term.args if a is not group]
        prefix = printer._print(sympy.Mul(*rest, evaluate=False)) + r" \cdot "
    else:
        return None
    inner = latex_lines(group, width)
    if len(inner) < 2:
        return None
    return [prefix + r"\bigl(" + inner[0], *inner[1:-1], inner[-1] + r"\bigr)"]


FILTERS["tex_lines"] = latex_lines
