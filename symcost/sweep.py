"""Sweeps: a cost formula evaluated over ranges of sizes, exactly, without re-deriving it.

The model is derived once (symbolically); each field's expression is compiled once with
``sympy.lambdify`` and evaluated on whole columns of values.  Integer-exact:

- ``floor(n/d)`` and ``ceiling(n/d)`` become integer floor divisions of integer expressions,
  ``Min``/``Max`` become elementwise minimum/maximum, and a field with rational coefficients is
  evaluated as an integer numerator divided (exactly, checked) by its integer denominator;
- the columns are numpy ``int64`` when a bound on every intermediate value proves they fit (the
  expression tree with every value replaced by its largest magnitude over the sweep: sums and
  products of magnitudes bound every partial sum and product), otherwise numpy ``object`` arrays
  of Python integers.

Ranges (:func:`parse_range`, our own small grammar, never ``eval``): ``16:4096:x2`` (geometric,
stop included if reached), ``0:100:+10`` (arithmetic), ``8,16,64`` (a list), ``128`` (one value).
Several swept sizes form a grid (their cartesian product), the first varying slowest.
"""

from __future__ import annotations

import functools
import numbers
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import sympy

from .errors import SymbolError, SymcostError, nearest
from .progress import progress
from .sizes import symbol

MAX_POINTS = 1_000_000          # points in one sweep (grid)
INT64_SAFE = 2 ** 62            # the int64 fast path needs every intermediate below this

FIELDS = ("params", "activations", "macs", "flops", "fma_ops", "steps")
ALL_FIELDS = FIELDS + ("input",) + tuple(f"ops.{k}" for k in ("mul", "add", "div", "cmp", "exp", "tanh", "erf", "sqrt")) \
    + ("memory_bytes.params", "memory_bytes.activations", "memory_bytes.total")

_INT_RE = re.compile(r"\s*(\d{1,18})\s*\Z")


class SweepError(SymcostError):
    """A malformed range or a sweep that cannot be evaluated."""


# ---------------------------------------------------------------------------
# Ranges
# ---------------------------------------------------------------------------


def _int(text: str, what: str) -> int:
    m = _INT_RE.match(text)
    if not m:
        raise SweepError(f"{what} must be a whole number, not {text.strip()!r}")
    return int(m.group(1))


def parse_range(text: str, name: str = "range") -> list[int]:
    """Values of a range: ``start:stop:xF``, ``start:stop:+D``, ``a,b,c`` or ``a``."""
    where = f"--sweep {name}={text}"
    if not isinstance(text, str) or not text.strip():
        raise SweepError(f"{where}: empty range")
    if len(text) > 200:
        raise SweepError(f"{where[:60]}...: range text longer than 200 characters")
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise SweepError(f"{where}: expected START:STOP:xFACTOR or START:STOP:+STEP")
        start, stop = _int(parts[0], f"{where}: start"), _int(parts[1], f"{where}: stop")
        step = parts[2].strip()
        if stop < start:
            raise SweepError(f"{where}: stop {stop} is smaller than start {start}")
        if step[:1] in ("x", "*"):
            factor = _int(step[1:], f"{where}: factor")
            if factor < 2:
                raise SweepError(f"{where}: a geometric factor must be at least 2")
            if start < 1:
                raise SweepError(f"{where}: a geometric range must start at 1 or more")
            values, v = [], start
            while v <= stop:
                values.append(v)
                v *= factor
        elif step[:1] == "+":
            inc = _int(step[1:], f"{where}: step")
            if inc < 1:
                raise SweepError(f"{where}: an arithmetic step must be at least 1")
            if (stop - start) // inc + 1 > MAX_POINTS:
                raise SweepError(f"{where}: more than {MAX_POINTS:,} values")
            values = list(range(start, stop + 1, inc))
        else:
            raise SweepError(f"{where}: the step must be xFACTOR (geometric) or +STEP (arithmetic), not {step!r}")
    else:
        values = [_int(v, f"{where}: value") for v in text.split(",")]
    if len(values) > MAX_POINTS:
        raise SweepError(f"{where}: more than {MAX_POINTS:,} values")
    return values


def parse_sweeps(pairs: Sequence[str]) -> dict[str, list[int]]:
    """``["T=16:4096:x2", "H=64,128"]`` -> ``{"T": [...], "H": [64, 128]}``."""
    out: dict[str, list[int]] = {}
    for pair in pairs:
        name, sep, rng = pair.partition("=")
        name = name.strip()
        if not sep or not name or not rng.strip():
            raise SweepError(f"--sweep expects NAME=RANGE, got {pair!r}")
        if name in out:
            raise SweepError(f"--sweep gives {name!r} twice")
        symbol(name)  # a valid size name
        out[name] = parse_range(rng, name)
    return out


# ---------------------------------------------------------------------------
# Exact compilation
# ---------------------------------------------------------------------------

_floordiv = sympy.Function("floordiv")
_smin = sympy.Function("smin")
_smax = sympy.Function("smax")


def _integerize(expr: sympy.Expr) -> tuple[sympy.Expr, sympy.Expr]:
    """(numerator, denominator): integer-valued expressions over integers, floors as floordiv."""

    @functools.lru_cache(maxsize=None)
    def walk(e):
        if e.is_Atom:
            return e
        args = [walk(a) for a in e.args]
        if isinstance(e, (sympy.floor, sympy.ceiling)):
            n, d = sympy.fraction(sympy.together(args[0]))
            n, d = _clear(n), _clear(d)
            if isinstance(e, sympy.floor):
                return _floordiv(n, d)
            return -_floordiv(-n, d)
        if isinstance(e, sympy.Min):
            return _smin(*args)
        if isinstance(e, sympy.Max):
            return _smax(*args)
        return e.func(*args)

    top = walk(expr)
    n, d = sympy.fraction(sympy.together(top))
    return _clear(n), _clear(d)


def _clear(e: sympy.Expr) -> sympy.Expr:
    """An integer-coefficient form of a polynomial expression n (times the lcm of its denominators
    only when it has none: ``fraction(together(...))`` already moved them to the denominator)."""
    return sympy.expand(e) if e.is_Add or e.is_Mul else e


def _bound(e: sympy.Expr, mag: Mapping[sympy.Symbol, int]) -> int:
    """An upper bound of |value| of every node of ``e`` (and of partial sums and products)."""
    if e.is_Integer:
        return abs(int(e))
    if e.is_Symbol:
        return mag[e]
    if e.is_Rational:  # should not occur after _integerize
        return abs(int(e.p)) + 1
    parts = [_bound(a, mag) for a in e.args]
    if e.is_Add:
        return sum(parts)
    if e.is_Mul:
        out = 1
        for p in parts:
            out *= max(p, 1)
        return out
    if e.is_Pow:
        base, exp = e.args
        if exp.is_Integer and exp >= 0:
            return max(parts[0], 1) ** int(exp)
        return INT64_SAFE  # not an integer power: refuse the fast path
    if e.func in (_floordiv, _smin, _smax):
        return max(max(parts), 1)
    return INT64_SAFE


def _np_reduce(ufunc):
    def call(*xs):
        return functools.reduce(ufunc, xs)
    return call


CHUNK = 100_000  # points evaluated at once on exact (object) columns


class _Zero:
    """Where a floor division met a zero divisor (``12//(H - 2)`` at H=2): the safe floordiv
    divides by 1 there instead (numpy would warn and give 0, Python ints would raise) and
    records the points, so that the caller refuses them instead of printing a number."""

    def __init__(self):
        self.masks: list = []

    def floordiv(self, n, d):
        import numpy as np

        zero = np.equal(d, 0)
        if np.any(zero):
            self.masks.append(zero)
            d = np.where(zero, 1, d)
        return np.floor_divide(n, d)

    def take(self, size: int):
        import numpy as np

        mask = np.zeros(size, dtype=bool)
        for m in self.masks:
            mask |= np.broadcast_to(m, (size,))
        self.masks = []
        return mask


@dataclass
class Compiled:
    """One expression, compiled once: :meth:`fraction` evaluates it on whole columns, exactly,
    as a numerator and a denominator; :meth:`values` as whole numbers (a field)."""

    name: str
    expr: sympy.Expr
    symbols: tuple[sympy.Symbol, ...]

    def __post_init__(self):
        import numpy as np

        self.num, self.den = _integerize(self.expr)
        self._zero = _Zero()
        modules = [{"floordiv": self._zero.floordiv, "smin": _np_reduce(np.minimum),
                    "smax": _np_reduce(np.maximum)}, "numpy"]
        self._num = sympy.lambdify(self.symbols, self.num, modules=modules)
        self._den = sympy.lambdify(self.symbols, self.den, modules=modules)

    def fits_int64(self, mag: Mapping[sympy.Symbol, int]) -> bool:
        return _bound(self.num, mag) < INT64_SAFE and _bound(self.den, mag) < INT64_SAFE

    def fraction(self, columns: Sequence, size: int):
        """(numerator, denominator, undefined): arrays of ``size`` values; ``undefined`` marks the
        points where a divisor is zero (the denominator, or one inside a floor)."""
        import numpy as np

        if size > CHUNK and any(getattr(c, "dtype", None) == object for c in columns):
            # Exact Python-int columns are slow: evaluate in chunks, with a bar on a terminal.
            starts = range(0, size, CHUNK)
            parts = [self.fraction([c[i:i + CHUNK] for c in columns], min(CHUNK, size - i))
                     for i in progress(starts, total=len(starts), desc=self.name, unit="chunk")]
            return tuple(np.concatenate(p) for p in zip(*parts))
        num = np.array(np.broadcast_to(self._num(*columns), (size,)))
        den = np.array(np.broadcast_to(self._den(*columns), (size,)))
        undefined = self._zero.take(size) | (den == 0)
        return num, np.where(undefined, 1, den), undefined

    def values(self, columns: Sequence, size: int):
        """The whole-number values of a field (a SweepError where it is undefined or fractional)."""
        import numpy as np

        num, den, undefined = self.fraction(columns, size)
        if np.any(undefined):
            i = int(np.flatnonzero(undefined)[0])
            raise SweepError(f"{self.name}: division by zero at point {i + 1} of the sweep")
        if self.den == 1:
            return num
        q, r = np.divmod(num, den)
        if np.any(r != 0):
            i = int(np.flatnonzero(r != 0)[0])
            raise SweepError(f"{self.name} is not a whole number at point {i + 1} of the sweep")
        return q


def violations(check, c: Compiled, columns: Sequence, size: int):
    """The points of the sweep where ``check`` (a :class:`symcost.report.Check`) fails, as a mask,
    the exact values (numerator, denominator) and where they are undefined (a zero divisor)."""
    import numpy as np

    num, den, undefined = c.fraction(columns, size)
    if check.kind == "nonzero":
        return undefined | (num == 0), num, den, undefined
    # num/den >= 1, exactly: num - den has the sign of den (or is 0)
    diff = num - den
    below = np.where(den > 0, diff < 0, diff > 0)
    if check.kind == "whole":
        below = below | (np.remainder(num, den) != 0)
    return undefined | below, num, den, undefined


@dataclass
class SweepResult:
    """The swept sizes and the fields' values, one row per point (first size varying slowest)."""

    model: str
    sizes: dict[str, list[int]]      # the swept columns, one value per point
    fields: dict[str, list[int]]     # each field's values (Python ints)
    fixed: dict[str, Any]            # the other substituted sizes

    @property
    def columns(self) -> list[str]:
        return list(self.sizes) + list(self.fields)

    @property
    def rows(self) -> list[tuple[int, ...]]:
        cols = [*self.sizes.values(), *self.fields.values()]
        return list(zip(*cols))

    def __len__(self) -> int:
        return len(next(iter(self.sizes.values()), []))

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "set": self.fixed,
                "points": [dict(zip(self.columns, r)) for r in self.rows]}

    def to_json(self, indent: int = 2) -> str:
        import json

        return json.dumps(self.to_dict(), indent=indent) + "\n"

    def csv(self) -> str:
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.columns)
        w.writerows(self.rows)
        return buf.getvalue()

    def table(self) -> str:
        head = self.columns
        body = [[f"{v:,}" for v in r] for r in self.rows]
        widths = [max(len(x) for x in col) for col in zip(head, *body)]
        line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
        rule = "-" * len(line(head))
        fixed = ", ".join(f"{k}={v}" for k, v in self.fixed.items())
        title = self.model + (f"  ({fixed})" if fixed else "")
        return "\n".join([title, rule, line(head), rule, *map(line, body), rule]) + "\n"

    def markdown(self) -> str:
        head = self.columns
        out = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" for _ in head) + "|"]
        out += ["| " + " | ".join(f"{v:,}" for v in r) + " |" for r in self.rows]
        return "\n".join(out) + "\n"


def field_expr(report, field: str) -> sympy.Expr:
    """The expression of a report field: ``macs``, ``ops.exp``, ``memory_bytes.total``, ... (the names
    of the JSON contract, ``Report.to_dict``)."""
    if field in ("params", "activations", "macs", "flops", "fma_ops", "steps", "input"):
        return getattr(report, field)
    head, _, tail = field.partition(".")
    if head == "ops" and tail in report.ops:
        return report.ops[tail]
    if head == "memory_bytes" and tail in report.memory_bytes:
        return report.memory_bytes[tail]
    raise SweepError(f"unknown field {field!r}" + nearest(field, ALL_FIELDS) + f"; fields: {', '.join(ALL_FIELDS)}")


def sweep(report, ranges: Mapping[str, Sequence[int]], fields: Sequence[str] = FIELDS) -> SweepResult:
    """Evaluate ``fields`` of ``report`` on the grid of ``ranges`` (``{"T": [16, 32, ...]}``).

    Every free size of the fields must be swept (substitute the others with ``report.subs``
    first).  Each field is compiled once and evaluated on whole columns, exactly.
    """
    import numpy as np

    if not ranges:
        raise SweepError("nothing to sweep: give at least one NAME=RANGE")
    known = report.known_names()
    names = list(ranges)
    defaulted = getattr(report, "defaulted", frozenset())
    for n in names:
        if n not in known:
            raise SymbolError(f"unknown size {n!r} to sweep" + nearest(n, known)
                              + f"; this model's sizes: {', '.join(sorted(known)) or 'none'}")
        if n in {s.name for s in report.values} and n not in defaulted:
            raise SweepError(f"{n} is both set and swept")
        for v in ranges[n]:
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
                raise SweepError(f"{n}: the values of a sweep are whole numbers >= 0, not {v!r}")
    if any(n in defaulted for n in names):  # sweeping a size that has a default: the sweep wins
        report = report.unset([n for n in names if n in defaulted])
    syms = tuple(symbol(n) for n in names)
    exprs = {f: field_expr(report, f) for f in fields}
    free = set().union(*(e.free_symbols for e in exprs.values())) - set(syms)
    if free:
        missing = ", ".join(sorted(s.name for s in free))
        raise SymbolError(f"{report.name}: sizes {missing} are neither set nor swept; "
                          f"give them with --set NAME=VALUE (or sweep them)")
    count = 1
    for n in names:
        count *= len(ranges[n])
    if count > MAX_POINTS:
        raise SweepError(f"the grid has {count:,} points, more than {MAX_POINTS:,}")
    # The grid's columns, built by numpy (first size varying slowest, as itertools.product):
    # a million points in milliseconds, where Python tuples take seconds.
    values = [list(ranges[n]) for n in names]
    mag = {s: max((abs(v) for v in vals), default=0) for s, vals in zip(syms, values)}
    size = count if all(values) else 0

    def grid_columns(dtype) -> list:
        out, before = [], 1
        for vals in values:
            after = size // (before * len(vals)) if size else 0
            out.append(np.repeat(np.tile(np.array(vals, dtype=dtype), before), after) if size
                       else np.array([], dtype=dtype))
            before *= len(vals)
        return out

    as_int64 = grid_columns(np.int64) if max(mag.values(), default=0) < INT64_SAFE else None
    as_obj = None

    def columns_for(c: Compiled):
        nonlocal as_obj
        if as_int64 is not None and c.fits_int64(mag):
            return as_int64
        if as_obj is None:
            as_obj = grid_columns(object)
        return as_obj

    def point_text(i: int) -> str:
        return ", ".join(f"{n}={col[i]}" for n, col in zip(names, as_int64 or as_obj or grid_columns(object)))

    # Every check --set makes (each output dimension, condition, repeat count and divisor, the
    # batch) holds at every point: each distinct one compiled once, evaluated on the whole grid.
    first = None  # (point, check, value): the first point that fails, and its first check
    for order, chk in enumerate(report.checks()):
        expr = report._s(chk.expr)
        if not expr.free_symbols or not expr.free_symbols <= set(syms):
            continue  # concrete: checked by subs; other free sizes: a condition that stays symbolic
        c = Compiled(chk.what, expr, syms)
        bad, num, den, undefined = violations(chk, c, columns_for(c), size)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            if first is None or i < first[0]:
                value = (sympy.zoo if undefined[i] else
                         sympy.Integer(int(num[i])) if chk.kind == "nonzero" else sympy.Rational(int(num[i]), int(den[i])))
                first = (i, chk, value)
    if first is not None:
        i, chk, value = first
        raise chk.error(value, at=f"at the sweep's point {point_text(i)}")
    out = {}
    for f, expr in exprs.items():
        c = Compiled(f, expr, syms)
        vals = c.values(columns_for(c), size)
        out[f] = vals.tolist() if vals.dtype == np.int64 else [int(v) for v in vals]
    from .render import jsonable

    fixed = {s.name: jsonable(v) for s, v in report.values.items()}
    columns = as_int64 if as_int64 is not None else (as_obj if as_obj is not None else grid_columns(object))
    return SweepResult(report.name, {n: col.tolist() for n, col in zip(names, columns)}, out, fixed)


def per_layer_csv(report) -> str:
    """``cost --format csv`` without a sweep: one row per layer (blocks: their total), then the total."""
    import csv
    import io

    from .render import jsonable

    cols = ("layer", "op", "params", "activations", "macs", "flops", "fma_ops", "steps")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in report.rows:
        w.writerow([r.name, r.op, *(jsonable(x) for x in (r.cost.params, r.cost.activations, r.cost.macs,
                                                            r.cost.flops, r.cost.fma_ops, r.steps))])
    w.writerow(["total", "", *(jsonable(x) for x in (report.params, report.activations, report.macs,
                                                   report.flops, report.fma_ops, report.steps))])
    return buf.getvalue()
