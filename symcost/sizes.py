"""Sizes: integers or sympy expressions over positive-integer symbols.

User text never reaches ``eval``, ``sympify`` or ``parse_expr``: a size such
as ``"2*H"`` or ``"(K-1)//2"`` is read by the small grammar below, which
builds sympy objects directly::

    expr   := term (('+' | '-') term)*
    term   := unary (('*' | '/' | '//') unary)*
    unary  := ('+' | '-') unary | power
    power  := atom ('**' unary)?             # right-associative, as Python
    atom   := INTEGER | NAME | FUNC '(' expr (',' expr)* ')' | '(' expr ')'
    FUNC   := floor | ceil | min | max

``/`` is exact division (a rational until its value is known), ``//`` is
floor division.  Text is bounded in length, nesting depth, literal size,
exponent, the magnitude of every number it builds and the number of terms it
would have once multiplied out, so hostile input (``9**9**9**9``,
``((10**40)**64)**64``, ``(a+b+c+d+1)**64``, 100,000 parentheses) is refused in
microseconds instead of computed.  The limits and their reasons are in
docs/robustness.md.
"""

from __future__ import annotations

import re
from functools import lru_cache
import numbers
from typing import Callable, Mapping, Union

import sympy

from .errors import SizeError, SymbolError, brief

Size = Union[int, sympy.Expr]

MAX_TEXT = 1000        # characters in one size expression
MAX_DEPTH = 40         # nesting of parentheses / unary operators
MAX_DIGITS = 40        # digits of one integer literal
MAX_EXPONENT = 64      # largest integer exponent after '**'
MAX_NAME = 64          # characters of one symbol name
MAX_BITS = 256         # bits of any number a size expression builds (about 77 digits)
MAX_TERMS = 1000       # terms of a size expression once multiplied out
EXPAND_TERMS = 5000    # terms beyond which an expression is not multiplied out (see expanded_terms)

FUNCTIONS = {
    "floor": (1, 1, lambda a: sympy.floor(a[0])),
    "ceil": (1, 1, lambda a: sympy.ceiling(a[0])),
    "min": (1, 8, lambda a: sympy.Min(*a)),
    "max": (1, 8, lambda a: sympy.Max(*a)),
}

NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_TOKEN_RE = re.compile(r"\s*(?:(\d+)|([A-Za-z_][A-Za-z0-9_]*)|(\*\*|//|[-+*/(),]))")


@lru_cache(maxsize=None)
def symbol(name: str) -> sympy.Symbol:
    """The symbol for a size name: a positive integer, the same object for the same name."""
    if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > MAX_NAME:
        raise SymbolError(
            f"{name!r} is not a valid size name: use a letter followed by letters, digits or _ "
            f"(at most {MAX_NAME} characters)"
        )
    if name in FUNCTIONS:
        raise SymbolError(f"{name!r} is a function of the size grammar, not a size name")
    return sympy.Symbol(name, integer=True, positive=True)


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        m = _TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            bad = text[pos:].lstrip()[:1]
            raise SizeError(f"unexpected character {bad!r} in size {text!r}")
        tokens.append(m.group(m.lastindex))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str, lookup: Callable[[str], sympy.Symbol]):
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0
        self.lookup = lookup

    def fail(self, why: str) -> SizeError:
        return SizeError(f"{why} in size {self.text!r}")

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None:
            raise self.fail("unexpected end" + (f", expected {expected!r}" if expected else ""))
        if expected is not None and tok != expected:
            raise self.fail(f"expected {expected!r} but found {tok!r}")
        self.i += 1
        return tok

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"nesting deeper than {MAX_DEPTH} levels")

    def parse(self) -> sympy.Expr:
        if not self.tokens:
            raise SizeError("empty size expression")
        value = self.expr()
        if self.peek() is not None:
            raise self.fail(f"unexpected {self.peek()!r}")
        return value

    def expr(self) -> sympy.Expr:
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            rhs = self.term()
            value = value + rhs if op == "+" else value - rhs
        return value

    def term(self) -> sympy.Expr:
        value = self.unary()
        while self.peek() in ("*", "/", "//"):
            op = self.take()
            rhs = self.unary()
            if op == "*":
                value = value * rhs
                if value.is_Number and number_bits(value) > MAX_BITS:
                    raise self.fail(f"a number larger than 2**{MAX_BITS}")
                continue
            if rhs.is_zero:
                raise self.fail("division by zero")
            value = value / rhs if op == "/" else sympy.floor(value / rhs)
        return value

    def unary(self) -> sympy.Expr:
        if self.peek() in ("+", "-"):
            self.enter()
            op = self.take()
            value = self.unary()
            self.depth -= 1
            return -value if op == "-" else value
        return self.power()

    def power(self) -> sympy.Expr:
        base = self.atom()
        if self.peek() != "**":
            return base
        self.take()
        self.enter()
        exponent = self.unary()
        self.depth -= 1
        if not (exponent.is_Integer and 0 <= int(exponent) <= MAX_EXPONENT):
            raise self.fail(f"exponent must be a whole number from 0 to {MAX_EXPONENT}")
        if number_bits(base) * int(exponent) > MAX_BITS:  # refuse before computing (10**40)**64
            raise self.fail(f"a number larger than 2**{MAX_BITS}")
        if expanded_terms(base, MAX_TERMS) > 1 and expanded_terms(base ** int(exponent), MAX_TERMS) > MAX_TERMS:
            raise self.fail(f"a power with more than {MAX_TERMS} terms once multiplied out")
        return base ** int(exponent)

    def atom(self) -> sympy.Expr:
        tok = self.take()
        if tok.isdigit():
            if len(tok) > MAX_DIGITS:
                raise self.fail(f"integer literal longer than {MAX_DIGITS} digits")
            return sympy.Integer(int(tok))
        if tok == "(":
            self.enter()
            value = self.expr()
            self.take(")")
            self.depth -= 1
            return value
        if tok in FUNCTIONS:
            lo, hi, build = FUNCTIONS[tok]
            self.take("(")
            self.enter()
            args = [self.expr()]
            while self.peek() == ",":
                self.take()
                args.append(self.expr())
            self.take(")")
            self.depth -= 1
            if not lo <= len(args) <= hi:
                raise self.fail(f"{tok}() takes {lo if lo == hi else f'{lo} to {hi}'} argument(s)")
            return build(args)
        if tok[0].isalpha():
            if self.peek() == "(":
                raise self.fail(f"unknown function {tok!r} (known: floor, ceil, min, max)")
            return self.lookup(tok)
        raise self.fail(f"unexpected {tok!r}")


def parse_size(text: str, lookup: Callable[[str], sympy.Symbol] = symbol) -> sympy.Expr:
    """Parse a size expression with the restricted grammar (never ``eval``)."""
    if not isinstance(text, str):
        raise SizeError(f"a size expression must be text, not {type(text).__name__}")
    if len(text) > MAX_TEXT:
        raise SizeError(f"size expression longer than {MAX_TEXT} characters")
    try:
        value = _Parser(text, lookup).parse()
    except SymbolError as err:
        raise SizeError(f"{err.message} in size {text!r}") from None
    if number_bits(value) > MAX_BITS:
        raise SizeError(f"a number in size {text!r} is larger than 2**{MAX_BITS}")
    if expanded_terms(value, MAX_TERMS) > MAX_TERMS:
        raise SizeError(f"size {text!r} has more than {MAX_TERMS} terms once multiplied out")
    return value


def number_bits(expr: sympy.Expr) -> int:
    """Bits of the largest numerator or denominator of a number in ``expr``."""
    if isinstance(expr, int):
        return abs(expr).bit_length()
    if isinstance(expr, sympy.Rational):
        return max(abs(expr.p).bit_length(), abs(expr.q).bit_length())
    nums = expr.atoms(sympy.Rational)
    return max((max(abs(n.p).bit_length(), abs(n.q).bit_length()) for n in nums), default=0)


def expanded_terms(expr: sympy.Expr, cap: int = EXPAND_TERMS) -> int:
    """An upper bound on the number of terms of ``sympy.expand(expr)`` (at most ``cap + 1``).

    A sum has the terms of its parts, a product their product, ``(t terms)**n``
    at most C(t + n − 1, n) (the monomials of degree n in t variables); a
    function call (floor, Min) counts as one term of its own but its
    arguments are bounded too.  Used to refuse or skip an expansion that would
    take seconds or gigabytes, before starting it.
    """
    from math import comb

    memo: dict = {}  # a substituted chain shares subtrees: walk each distinct one once

    def walk(e) -> int:
        if e.is_Atom:
            return 1
        if e in memo:
            return memo[e]
        if e.is_Add:
            n = min(cap + 1, sum(walk(a) for a in e.args))
        elif e.is_Mul:
            n = 1
            for a in e.args:
                n = min(cap + 1, n * walk(a))
        elif e.is_Pow:
            t = walk(e.base)
            exp = e.exp
            if exp.is_Integer and int(exp) > 1 and t > 1:
                n = min(cap + 1, comb(t + int(exp) - 1, int(exp)))
            else:
                n = min(cap + 1, t)
        else:
            n = max([1] + [walk(a) for a in e.args])  # floor(...), Min(...): one term, arguments bounded
        memo[e] = n
        return n

    return walk(expr)


def bits_bound(expr: sympy.Expr, bits: Mapping[sympy.Symbol, int]) -> int:
    """An upper bound on the bits of every number built when ``expr`` is evaluated with each
    symbol ``s`` of ``bits`` replaced by a value whose numbers have at most ``bits[s]`` bits.

    Computed on the expression as written, before substituting: so a chain
    A = B**64, B = C**64, C = 2 is refused without building 2**4096 (sympy evaluates a
    power of a number at once).  Numerators and denominators are bounded apart (a sum of
    fractions multiplies denominators); a product adds bits, a power multiplies them.
    """
    memo: dict = {}

    def walk(e) -> tuple[int, int]:  # (numerator bits, denominator bits)
        if e.is_Rational:
            return abs(e.p).bit_length(), abs(e.q).bit_length()
        if e.is_Symbol:
            b = bits.get(e, 0)
            return b, b
        if e.is_Atom:
            return 0, 0
        if e in memo:
            return memo[e]
        parts = [walk(a) for a in e.args]
        if e.is_Add:
            den = sum(d for _, d in parts)
            out = (max(n for n, _ in parts) + den + len(parts).bit_length(), den)
        elif e.is_Mul:
            out = (sum(n for n, _ in parts), sum(d for _, d in parts))
        elif e.is_Pow and e.exp.is_Integer:
            (n, d), k = parts[0], int(e.exp)
            out = (k * n, k * d) if k >= 0 else (-k * d, -k * n)
        else:  # floor, ceiling, Min, Max: no larger than their arguments (and one more bit)
            out = (max(n for n, _ in parts) + 1, max(d for _, d in parts))
        memo[e] = out
        return out

    return max(walk(expr))


def to_size(value: object, what: str = "size", *, minimum: int = 1,
            lookup: Callable[[str], sympy.Symbol] = symbol) -> sympy.Expr:
    """Turn a user value (int, grammar text or sympy expression) into a size expression.

    Every entry point (YAML, ``--set``, the Python API) goes through here, so a size is
    validated the same way wherever it comes from:

    - a whole number (``int``, a numpy integer) must be at least ``minimum``; ``bool``,
      ``float`` (even ``3.0``) and anything else are refused;
    - text is read by the size grammar (:func:`parse_size`, names resolved by ``lookup``);
    - a sympy expression must be one the grammar could have built (integers, fractions,
      symbols, ``+ - * / **`` with whole exponents, floor, ceiling, Min, Max), and a
      foreign symbol (``sympy.Symbol("D")``, without symcost's positive-integer
      assumptions) becomes symcost's symbol of the same name (:func:`adopt`);
    - a symbolic size that can never be valid (``-D``, ``D + 1/2``) is refused; one that may
      be (``D - 5``, ``D/2``) is checked when sizes are substituted.
    """
    if isinstance(value, bool):
        raise SizeError(f"{what} must be a whole number, not {brief(value)}")
    if isinstance(value, numbers.Integral):  # int, numpy integers
        value = int(value)
        if abs(value).bit_length() > MAX_BITS:
            raise SizeError(f"{what} is larger than 2**{MAX_BITS}")
        expr = sympy.Integer(value)
    elif isinstance(value, str):
        try:
            expr = parse_size(value, lookup)
        except SizeError as err:
            raise SizeError(f"{what}: {err.message}") from None
    elif isinstance(value, sympy.Basic):
        expr = adopt(value, what)
    elif isinstance(value, float) and value.is_integer():
        raise SizeError(f"{what} must be a whole number written without a decimal point, not {brief(value)}")
    else:
        raise SizeError(f"{what} must be a whole number or a size expression, not {brief(value)}")
    check_concrete(expr, what, minimum=minimum)
    check_symbolic(expr, what, minimum=minimum)
    return expr


MAX_NODES = 10_000  # nodes of a sympy expression given through the API (the grammar's text is bounded)
_FUNCS = (sympy.floor, sympy.ceiling, sympy.Min, sympy.Max)


def adopt(value: sympy.Basic, what: str = "size") -> sympy.Expr:
    """A sympy value given through the API, as a size: checked to be what the grammar builds
    (bounded in nodes, numbers and terms), its symbols made symcost's positive-integer ones."""
    if not isinstance(value, sympy.Expr):
        raise SizeError(f"{what} must be a number or expression, not {brief(value)}")
    foreign: dict = {}
    seen: set = set()
    stack = [value]
    while stack:
        e = stack.pop()
        if e in seen:
            continue
        seen.add(e)
        if len(seen) > MAX_NODES:
            raise SizeError(f"{what} is an expression of more than {MAX_NODES:,} parts")
        if e.is_Symbol:
            if isinstance(e, (sympy.Dummy, sympy.Wild)) or not isinstance(e.name, str):
                raise SizeError(f"{what}: {brief(e)} is not a named size")
            try:
                mine = symbol(e.name)
            except SymbolError as err:
                raise SizeError(f"{what}: {err.message}") from None
            if mine is not e:
                foreign[e] = mine
            continue
        if e.is_Rational:
            continue
        if e.is_Atom or not (e.is_Add or e.is_Mul or e.is_Pow or isinstance(e, _FUNCS)):
            raise SizeError(f"{what} must be a whole number or a size expression (integers, size names, "
                            f"+ - * / // **, floor, ceil, min, max), not {brief(e)}")
        if e.is_Pow and not (e.exp.is_Integer and abs(int(e.exp)) <= MAX_EXPONENT):
            raise SizeError(f"{what}: exponent must be a whole number from 0 to {MAX_EXPONENT}, "
                            f"not {brief(e.exp)}")
        stack.extend(e.args)
    if number_bits(value) > MAX_BITS:
        raise SizeError(f"{what} contains a number larger than 2**{MAX_BITS}")
    expr = value.xreplace(foreign) if foreign else value
    if expanded_terms(expr, MAX_TERMS) > MAX_TERMS:
        raise SizeError(f"{what} has more than {MAX_TERMS} terms once multiplied out")
    return expr


def check_symbolic(expr: sympy.Expr, what: str, *, minimum: int = 1) -> None:
    """Refuse a symbolic size that no values of its (positive-integer) symbols make valid:
    never a whole number (``D + 1/2``), or never at least ``minimum`` (``-D``, ``1 - D``)."""
    if not expr.free_symbols or expr.is_Symbol:
        return
    if expr.is_integer is False:
        raise SizeError(f"{what} is {expr}, which is never a whole number")
    if (expr.is_negative if minimum <= 0 else expr.is_nonpositive) is True:
        raise SizeError(f"{what} is {expr}, which is never at least {minimum}")


def check_concrete(expr: sympy.Expr, what: str, *, minimum: int = 1) -> None:
    """If ``expr`` has no symbols, require an integer >= minimum."""
    if expr.free_symbols:
        return
    if not expr.is_Integer:
        raise SizeError(f"{what} must be a whole number, but it is {expr}")
    if int(expr) < minimum:
        if minimum == 0:
            raise SizeError(f"{what} must not be negative, but it is {expr}")
        raise SizeError(f"{what} must be at least {minimum}, but it is {expr}")


def as_expr(value: int | sympy.Basic) -> sympy.Expr:
    """An int or sympy value as a sympy expression.  Text is refused (strict sympify
    never parses strings), so this is safe on any value; user text goes to
    :func:`parse_size`."""
    return sympy.sympify(value, strict=True)  # safe: strict=True refuses str


def is_concrete(expr: Size) -> bool:
    return isinstance(expr, int) or not expr.free_symbols


def as_int(expr: Size) -> int | None:
    """The Python int of a concrete integer size, else None."""
    if isinstance(expr, int):
        return expr
    return int(expr) if getattr(expr, "is_Integer", False) else None
