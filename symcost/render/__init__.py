"""Printing: sympy printers for symcost's symbols, and jinja2 templates.

LaTeX is produced by :class:`LatexPrinter` (a subclass of sympy's), never by
gluing strings; templates receive expressions and apply the ``tex`` filter.
The jinja2 environment comes from :func:`environment`, which puts a user's
template directory first on the search path.
"""

from __future__ import annotations

from functools import lru_cache, wraps
from typing import Any, Sequence

import sympy
from sympy.printing.latex import LatexPrinter as _SympyLatexPrinter

from ..errors import SymcostError, TemplateError


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
        primes = len(head) - len(head.rstrip("'"))
        if primes and head[:-primes]:  # V', T'_q: the letter (and its subscript), then the primes
            return self._print_Symbol(sympy.Symbol(head[:-primes] + ("_" + sub if sub else "")), style) + "'" * primes
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


def _is_sympy(obj) -> bool:
    """Whether ``obj`` is sympy's: an expression, a sympy class, or a function or method defined in sympy."""
    if isinstance(obj, sympy.Basic) or (isinstance(obj, type) and issubclass(obj, sympy.Basic)):
        return True
    owner = getattr(obj, "__self__", None)
    if owner is not None and owner is not obj and _is_sympy(owner):
        return True
    return str(getattr(obj, "__module__", None) or "").startswith("sympy")


#: The methods of symcost's records a template may call: look-ups that return parts of the record.
TEMPLATE_METHODS = frozenset({
    "Derivation.layer", "Derivation.all_layers", "Derivation.total",
    "LayerDerivation.step", "LayerDerivation.has", "Cost.op",
})


def _sandbox_class():
    """jinja2's immutable sandbox, closed further around sympy.

    The sandbox already refuses private attributes (``__class__``, ``__globals__``,
    ``_TemplateReference__context``), unsafe callables and format-string tricks.  sympy adds a
    door of its own: many of its methods (``match``, ``subs``, constructors) *sympify* a string
    argument, i.e. ``eval`` it.  So a template may read an expression's data (``is_zero``,
    ``free_symbols``) but never take a method or a class from it, and never call anything of sympy's;
    expressions are for the filters (``tex``, ``texw``, ``mathml`` ...), which print and evaluate nothing.
    Of symcost's own records it may call only the look-ups in :data:`TEMPLATE_METHODS`.
    """
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    records: dict = {}

    def is_record(t) -> bool:
        """symcost's frozen records (Derivation, Step, Cost ...): plain data, read on every line."""
        if t not in records:
            import dataclasses

            params = getattr(t, "__dataclass_params__", None)
            records[t] = bool(dataclasses.is_dataclass(t) and t.__module__.startswith("symcost.")
                              and params is not None and params.frozen)
        return records[t]

    class Sandbox(ImmutableSandboxedEnvironment):
        def is_safe_attribute(self, obj, attr, value):
            if attr[:1] != "_" and is_record(type(obj)):  # the fast path of a long derivation
                return True
            if _is_sympy(obj) and (callable(value) or isinstance(value, type)):
                return False
            return super().is_safe_attribute(obj, attr, value)

        def is_safe_callable(self, obj):
            if _is_sympy(obj):
                return False
            owner = getattr(obj, "__self__", None)
            owner_type = owner if isinstance(owner, type) else type(owner)
            if owner is not None and owner_type.__module__.startswith("symcost"):
                # symcost's records: their look-ups only (Cost.subs would hand a string to sympy)
                if f"{owner_type.__qualname__}.{getattr(obj, '__name__', '')}" not in TEMPLATE_METHODS:
                    return False
            return super().is_safe_callable(obj)

    return Sandbox


@lru_cache(maxsize=8)
def environment(template_dir: str | None = None):
    """A jinja2 environment: the user's directory first, then the package's templates.

    Every template renders in jinja2's sandbox (see :func:`_sandbox_class`): a user's
    ``--templates`` directory is data, not code (docs/robustness.md), and the package's
    templates need nothing the sandbox forbids, so there is one environment for both.
    """
    import jinja2

    loaders = []
    if template_dir:
        loaders.append(jinja2.FileSystemLoader(template_dir))
    loaders.append(jinja2.PackageLoader("symcost", "render/templates"))
    env = _sandbox_class()(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["tex"] = memo(latex)
    env.filters["num"] = number
    env.filters["shape"] = shape_text
    env.filters["shape_tex"] = lambda s: r" \times ".join(latex(d) for d in s) if s else "1"
    from . import mathprint  # derivations: formulas as written, MathML, mixed text-and-math sentences

    # A long derivation prints the same formulas again and again (identical layers share their
    # expressions): each filter prints a given expression or sentence once.
    env.filters.update({name: memo(fn) for name, fn in mathprint.FILTERS.items()})
    return env


def memo(fn, size: int = 1 << 15):
    """``fn`` remembering its last ``size`` results (printing is a pure function of the expression;
    sympy's equality is structural, so equal arguments print alike); unhashable arguments pass through."""
    cached = lru_cache(maxsize=size)(fn)

    @wraps(fn)
    def call(*args):
        try:
            hash(args)
        except TypeError:
            return fn(*args)
        return cached(*args)

    return call


def render_template(name: str, template_dir: str | None = None, **context) -> str:
    """Template ``name`` rendered with ``context``.

    With a user's ``template_dir``, any failure -- a syntax error, an undefined variable, a missing
    include or extends, a :class:`jinja2.exceptions.SecurityError` from the sandbox, an exception
    raised by what the template called -- is the user's mistake: a :class:`TemplateError` naming the
    template's file and line and jinja's message.  Without one, the templates are the package's and a
    failure is a bug, raised as it is.
    """
    if not template_dir:
        return environment(None).get_template(name).render(**context)
    try:
        return environment(template_dir).get_template(name).render(**context)
    except Exception as err:  # noqa: BLE001 - everything a user's template can raise
        raise _template_error(err, name, template_dir) from None


def _template_error(err: Exception, name: str, template_dir: str) -> TemplateError:
    """One line: where in which template file (the innermost template frame), then jinja's message."""
    import jinja2

    where, line = None, None
    tb = err.__traceback__
    while tb is not None:  # jinja rewrites the traceback: a template's frames carry its file and line
        if "__jinja_exception__" in tb.tb_frame.f_globals:
            where, line = tb.tb_frame.f_code.co_filename, tb.tb_lineno
        tb = tb.tb_next
    if isinstance(err, jinja2.TemplateSyntaxError):
        where, line = err.filename or err.name or where, err.lineno
    message = (str(getattr(err, "message", None) or err).splitlines() or [""])[0]
    if isinstance(err, jinja2.TemplateNotFound):
        what = f"template {err.name!r} not found (searched {template_dir} and the package's templates)"
    elif isinstance(err, jinja2.TemplateSyntaxError):
        what = f"syntax error: {message}"
    elif isinstance(err, jinja2.TemplateError):  # UndefinedError, SecurityError, ...
        what = f"{type(err).__name__}: {message}"
    elif isinstance(err, SymcostError):  # a symcost look-up the template called refused its arguments
        what = str(err)
    else:  # raised by something the template called
        what = f"{type(err).__name__} while rendering" + (f": {message}" if message else "")
    if where is None:
        where = f"{template_dir}/{name}" if name else template_dir
    place = f"template {where}" + (f", line {line}" if line else "")
    return TemplateError(_brief(what), where=place)


def _brief(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def text_table(report, width: int | None = None, *, wide: bool = False) -> str:
    """The plain-text table, fitted to ``width`` (default: the terminal's) unless ``wide``
    (see :mod:`symcost.render.table`)."""
    from .table import text_table as table

    return table(report, width, wide=wide)
