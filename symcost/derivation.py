"""The step-by-step derivation of a model's costs: the record that the derivation templates lay out.

It follows the seed notes' walkthrough of LeNet-5: the input size, then for
every layer the output-size formula, the activations, "where is it coming
from?" for the weights, the parameters, the operations per output node and
for the layer, pipelined (FMA) and not; then the totals -- parameters,
activations, memory = (activations + parameters) × bytes of the datatype,
operations, MACs, and for a speed, latency = operations / speed and
throughput = speed / operations.

Every step is a sentence, a general formula in the notes' notation, the same
formula with the sizes put in (unevaluated, so it prints 6·28·28·2·1·5·5) and
the value.  The general formula is **not a second copy** of the counting rules:
each layer kind computes named quantities ``q`` (C, M, N, K, W, H, S_W, M1 ...)
and its ``shape(q)``/``cost(q)`` are pure functions of them, so calling the
same ``cost`` with every quantity replaced by its symbol gives the formula
(K·M₁·N₁·2CHW), and the value is the kind's own count.  Output sizes
(M₁ = ⌊(M − W + 2P)/S⌋ + 1) come from the kind's ``quantities`` applied to
symbolic inputs and arguments.  Quantities that are 1 (or 0) and only clutter
the formula -- dilation D, groups G, bias b, a single position R -- are put in
before display, and the layer says so.

Latency and throughput are the one place a non-integer appears: the speed is
an exact :class:`sympy.Rational` (``2.5 TFLOPS`` is 5/2·10¹²), read by
:func:`parse_speed` (no ``eval``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from fractions import Fraction
from typing import Any, Mapping, Sequence

import sympy

from .cost import OP_KINDS, Cost, tidy
from .errors import SymcostError
from .progress import progress
from .sizes import symbol
from .layers.base import Args, numel
from .render.mathprint import _same_terms, arrange

__all__ = ["Derivation", "LayerDerivation", "Step", "SpeedError", "derive", "parse_speed", "render"]

Part = Any  # a sentence part: text (str) or a sympy expression shown as math


class SpeedError(SymcostError):
    """A ``--speed`` that is not a positive number of FLOP/s."""


# ---------------------------------------------------------------------------
# Speed: '1e9', '1000000000', '1GFLOPS', '2.5 TFLOPS', '500 MFLOP/s'
# ---------------------------------------------------------------------------

ONE_LINE_CHARS = 60  # a step whose formulas are shorter than this (without markup) takes one line

PREFIXES = {"": 0, "k": 3, "m": 6, "g": 9, "t": 12, "p": 15, "e": 18}
_SPEED_RE = re.compile(
    r"\s*(?P<int>\d{1,30})(?:\.(?P<frac>\d{1,30}))?(?:[eE](?P<exp>[+-]?\d{1,3}))?"
    r"\s*(?P<prefix>[kKmMgGtTpPeE]?)\s*(?P<unit>flops|flop/s|flop|/s)?\s*\Z",
    re.IGNORECASE,
)


def parse_speed(text: str) -> sympy.Rational:
    """FLOP/s from text, exactly: ``1e9``, ``1000000000``, ``1GFLOPS``, ``2.5 TFLOPS``, ``500 MFLOP/s``.

    Prefixes k, M, G, T, P, E (case-insensitive; ``m`` is mega -- there are no
    milli-FLOP/s).  The number is read digit by digit into a Rational, never evaluated.
    """
    if not isinstance(text, str) or len(text) > 64:
        raise SpeedError(f"--speed must be a short text such as 1GFLOPS, not {text!r}")
    m = _SPEED_RE.match(text)
    if not m:
        raise SpeedError(f"--speed {text!r} is not a speed; write e.g. 1e9, 1000000000, 1GFLOPS or 2.5 TFLOPS")
    digits = m["int"] + (m["frac"] or "")
    exponent = int(m["exp"] or 0) - len(m["frac"] or "") + PREFIXES[m["prefix"].lower()]
    if abs(exponent) > 60:
        raise SpeedError(f"--speed {text!r} is out of range")
    value = sympy.Rational(int(digits)) * sympy.Rational(10) ** exponent
    if value <= 0:
        raise SpeedError(f"--speed must be positive, not {text!r}")
    return value


# ---------------------------------------------------------------------------
# The record
# ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _latex_written():
    """mathprint's ``latex_written``, remembering what it printed (identical layers share expressions)."""
    from .render import memo
    from .render.mathprint import latex_written

    return memo(latex_written)


@dataclass(frozen=True)
class Step:
    """One line of a derivation: ``lhs = general = substituted = value``.

    ``substituted`` is unevaluated (its ``doit()`` is the value); ``general`` with the
    quantities' values put in (evaluated) equals ``value`` too.  Any of the three may be
    None (a sentence-only step, or formulas only).  ``shown`` is a readable value with
    its unit when the value is not a plain count (``844.276 µs``).
    """

    key: str
    sentence: tuple
    lhs: sympy.Expr | None = None
    general: sympy.Expr | None = None
    substituted: sympy.Expr | None = None
    value: sympy.Expr | None = None
    unit: str = ""
    shown: str = ""     # replaces the value when it is not a whole number: '844.276 µs'
    approx: str = ""    # follows the value: '69.8k', '279.2 kB'
    #: quantity symbol -> value, as put into ``general`` to give ``substituted``
    values: Mapping = field(default_factory=dict)

    @property
    def shown_relation(self) -> str:
        """'≈' when ``shown`` is rounded, else '='."""
        return "≈" if self.shown.startswith("≈") else "="

    @property
    def shown_value(self) -> str:
        return self.shown.removeprefix("≈").strip()

    @property
    def unit_after_value(self) -> bool:
        """Whether the unit follows the last part (the value is printed, not replaced by ``shown``)."""
        return bool(self.unit) and not self.shown and self.value is not None

    @cached_property
    def one_line(self) -> bool:
        """Whether ``lhs = general = substituted = value`` is short enough for one line."""
        latex_written = _latex_written()
        if self.lhs is None:
            return True
        text = "".join(latex_written(e) for e in [self.lhs, *self.parts])
        plain = re.sub(r"\\[a-zA-Z]+|[{}]|\\left|\\right", "", text)
        return len(plain) + len(self.shown) + len(self.approx) <= ONE_LINE_CHARS

    @cached_property
    def parts(self) -> list[sympy.Expr]:
        """What follows ``lhs =``: the general formula, the substitution, the value, without repeats."""
        latex_written = _latex_written()
        out: list[sympy.Expr] = []
        seen: set[str] = set()
        for expr in (self.general, self.substituted, None if self.shown else self.value):
            if expr is None:
                continue
            text = latex_written(expr)
            if text not in seen:
                seen.add(text)
                out.append(expr)
        return out


@dataclass(frozen=True)
class LayerDerivation:
    """The steps of one layer (or block use)."""

    id: str
    op: str
    family: str
    input_shapes: tuple
    shape: tuple
    cost: Cost                    # the layer's own count (sizes given)
    steps: tuple[Step, ...]
    z: int | None = None          # index of its output among the activations (z₁, z₂ ...)
    w: int | None = None          # index among the layers with parameters (w₁, b₁ ...)
    note: tuple = ()              # which trivial quantities were put in, as sentence parts
    legend: tuple = ()            # (symbol, meaning) of the quantities its formulas use
    view: bool = False
    repeat: sympy.Expr = sympy.Integer(1)
    children: tuple["LayerDerivation", ...] = ()
    same_as: str = ""             # a run of layers identical to this earlier one (long derivations only)

    def step(self, key: str) -> Step:
        for s in self.steps:
            if s.key == key:
                return s
        raise KeyError(key)

    def has(self, key: str) -> bool:
        return any(s.key == key for s in self.steps)

    @property
    def summary(self) -> list[tuple[str, sympy.Expr]]:
        """(label, value) of its headline counts -- what a block lists for each of its layers, in words
        (a step's key is the record's, never shown)."""
        out = []
        for key, label in SUMMARY_STEPS:
            if self.has(key) and self.step(key).value is not None:
                out.append((label, self.step(key).value))
        return out


#: The counts :attr:`LayerDerivation.summary` gives, by step key, with their label.
SUMMARY_STEPS = (("activations", "activations"), ("params", "parameters"), ("ops", "operations"),
                 ("fma", "operations with FMA"), ("macs", "MACs"))


@dataclass(frozen=True)
class Derivation:
    """A model's derivation: input steps, per-layer steps, totals."""

    model: str
    description: str
    dtype: str
    bytes_per_element: int
    symbolic: bool                      # formulas only (``--symbolic``)
    speed: sympy.Expr | None
    speed_text: str
    sizes: tuple                        # (name, description, value or None) of the model's sizes
    inputs: tuple[Step, ...]
    layers: tuple[LayerDerivation, ...]
    totals: tuple[Step, ...]
    conditions: tuple = ()              # (expr, what): symbolic sizes that must be >= 1

    def layer(self, layer_id: str) -> LayerDerivation:
        for layer in self.all_layers():
            if layer.id == layer_id:
                return layer
        raise KeyError(layer_id)

    def all_layers(self):
        def walk(layers):
            for layer in layers:
                yield layer
                yield from walk(layer.children)
        return list(walk(self.layers))

    @property
    def summary(self) -> list[Step]:
        """The totals whose value is a number (the at-a-glance figures of a page)."""
        return [s for s in self.totals if s.value is not None and not s.value.free_symbols]

    def total(self, key: str) -> Step:
        for s in self.totals:
            if s.key == key:
                return s
        raise KeyError(key)

    def _repr_html_(self) -> str:  # Jupyter: the HTML page's content, formulas as MathML
        from .render.rich import derivation_html

        return derivation_html(self)


# ---------------------------------------------------------------------------
# Notation
# ---------------------------------------------------------------------------

Size = sympy.Function("Size")


class Dims(sympy.Function):
    """A shape, printed 6 × 28 × 28 (see :mod:`symcost.render.mathprint`); ``doit()`` is its size."""

    nargs = None

    def doit(self, **hints):
        return numel(self.args)
_AXIS_SUFFIX = re.compile(r"(?P<head>[A-Za-z]+)_(?P<axis>[A-Z])\Z")
_DIGITS = re.compile(r"(?P<head>[A-Za-z]+)(?P<digits>\d+)\Z")


def notation(key: str) -> sympy.Symbol:
    """The symbol of a quantity in the notes' notation: M1 → M₁, S_W → S_w, C → C."""
    name = key
    m = _DIGITS.match(key)
    if m:
        name = f"{m['head']}_{m['digits']}"
    m = _AXIS_SUFFIX.match(key)
    if m:
        name = f"{m['head']}_{m['axis'].lower()}"
    if 2 <= len(key) <= 3 and key.isalpha() and key[1:].islower() and key[0] in "TdEB":
        name = f"{key[0]}_{key[1:]}"  # Tq → T_q, Tkv → T_kv, dv → d_v
    return _sym(name)


def primed(sym: sympy.Symbol) -> sympy.Symbol:
    """V → V', T_q → T'_q: the same letter, marked as the layer's own (a size name never has a prime)."""
    head, sep, sub = sym.name.partition("_")
    return _sym(head + "'" + sep + sub)


def _sym(name: str) -> sympy.Symbol:
    """A size symbol: the same object as the model's size of that name (sizes are positive integers;
    no simplification relies on it, so a padding P of 0 is harmless)."""
    try:
        return symbol(name)
    except SymcostError:
        return sympy.Symbol(name, integer=True, positive=True)


TOTAL_ACT, TOTAL_PARAMS = _sym("Total_act"), _sym("Total_params")
TOTAL_OPS, TOTAL_FMA, TOTAL_MACS = _sym("Total_ops"), _sym("Total_FMA"), _sym("Total_MACs")
SPEED, BYTES = sympy.Symbol("speed", positive=True), _sym("bytes")

#: Quantities put in before display when they are 1 (0 for output padding).
TRIVIAL_ONE = ("G", "D", "L", "R", "B")
TRIVIAL_PREFIX_ONE = ("D_",)
TRIVIAL_PREFIX_ZERO = ("OP_",)

NOUNS = {
    "mul": "multiplication", "add": "addition", "div": "division", "cmp": "comparison",
    "exp": "exponential", "tanh": "tanh evaluation", "erf": "erf evaluation", "sqrt": "square root",
}


def _noun(kind: str, count) -> str:
    noun = NOUNS.get(kind, kind)
    return noun if count == 1 else noun + "s"


#: What the quantities mean, by layer family (then for any family), for a layer's notation line.
MEANINGS = {
    "conv": {"C": "input channels", "K": "kernels (output channels)", "M": "input rows", "N": "input columns",
             "L": "input depth", "W": "kernel rows", "H": "kernel columns", "R": "kernel depth",
             "M1": "output rows", "N1": "output columns", "L1": "output depth"},
    "pool": {"C": "channels", "M": "input rows", "N": "input columns", "W": "window rows", "H": "window columns",
             "M1": "output rows", "N1": "output columns"},
    "linear": {"n": "inputs of each node", "k": "nodes (outputs)", "R": "positions the layer is applied to",
               "Bt": "batch entries", "m": "columns of the right operand"},
    "recurrent": {"T": "time steps", "I": "input features", "H": "hidden units", "L": "layers",
                  "D": "directions"},
    "attention": {"Tq": "query positions", "Tkv": "key/value positions", "E": "embedding size",
                  "Ek": "key features", "Ev": "value features", "h": "heads", "d": "features per head",
                  "dv": "value features", "S": "(query, key) pairs scored", "B": "batch entries"},
    "reduction": {"E": "input elements", "V": "outputs", "n": "elements reduced into each output"},
    "tensor": {"L": "indices looked up", "V": "rows of the table", "E": "features per row"},
    "transformer": {"T": "positions processed", "n_ctx": "positions in the table", "E": "embedding size",
                    "P": "positions already cached", "h": "heads", "d": "features per head",
                    "Tkv": "key/value positions", "S": "(query, key) pairs scored"},
    "traced": {"E": "elements", "p": "parameters"},
    "": {"E": "elements", "V": "vectors", "n": "elements per vector", "C": "channels"},
}
_AXIS_MEANING = {"S": "stride", "P": "padding", "D": "dilation", "OP": "output padding"}


def quantity_meaning(family: str, key: str) -> str:
    """What quantity ``key`` of a ``family`` layer is ('' when unknown)."""
    if key in MEANINGS.get(family, {}):
        return MEANINGS[family][key]
    m = _AXIS_SUFFIX.match(key)
    if m and m["head"] in _AXIS_MEANING:
        axis = {"W": "rows", "H": "columns", "R": "depth"}.get(m["axis"], m["axis"])
        return f"{_AXIS_MEANING[m['head']]} along the {axis}"
    return MEANINGS[""].get(key, "") if family not in ("conv", "pool", "linear", "recurrent", "attention",
                                                       "reduction", "tensor", "transformer") else ""


#: The meaning of a quantity no table names: still defined, so a notation line never uses a letter it
#: does not explain (tests/test_derivation.py checks that no built-in model needs it).
UNNAMED_QUANTITY = "a size from the layer's shape rule"


def _trivial(key: str, value) -> bool:
    if not isinstance(value, sympy.Integer):
        return False
    if key in TRIVIAL_ONE or key.startswith(TRIVIAL_PREFIX_ONE):
        return value == 1
    if key.startswith(TRIVIAL_PREFIX_ZERO):
        return value == 0
    return False


# ---------------------------------------------------------------------------
# Substitution that keeps the written form
# ---------------------------------------------------------------------------

_KEEP = (sympy.Add, sympy.Mul, sympy.Pow, sympy.floor, sympy.ceiling, sympy.Min, sympy.Max)


def plug(expr: sympy.Expr, values: Mapping) -> sympy.Expr:
    """``expr`` with ``values`` put in, unevaluated: K·M₁ with K=6, M₁=28 stays 6·28."""
    if expr in values:
        return values[expr]
    if expr.is_Atom or not expr.args:
        return expr
    args = [plug(a, values) for a in expr.args]
    if isinstance(expr, _KEEP):
        return expr.func(*args, evaluate=False)
    return expr.func(*args)


def _times(*factors) -> sympy.Expr:
    """An unevaluated product of groups kept in order: K·M₁·N₁ × 2CHW stays (K·M₁·N₁)·(2·C·W·H),
    printed without the brackets; :func:`arrange` orders inside each group only."""
    factors = [arrange(f) for f in factors]
    return factors[0] if len(factors) == 1 else sympy.Mul(*factors, evaluate=False)


def _is_canonical(expr) -> bool:
    try:
        built = expr.func(*expr.args)
        return built == expr and built.args == expr.args  # same terms in the same order
    except Exception:  # noqa: BLE001
        return True


def _sum(terms) -> sympy.Expr:
    """An unevaluated sum kept in the given order (layer by layer; n + (n − 1) + 1)."""
    terms = list(terms)
    if not terms:
        return sympy.Integer(0)
    if len(terms) == 1:
        return terms[0]
    return sympy.UnevaluatedExpr(sympy.Add(*(arrange(t) for t in terms), evaluate=False))


def _value(expr) -> sympy.Expr:
    return tidy(expr) if isinstance(expr, sympy.Basic) else tidy(sympy.Integer(expr))


def _is_zero(expr) -> bool:
    return expr is None or (isinstance(expr, sympy.Basic) and expr.is_zero is True) or expr == 0


# ---------------------------------------------------------------------------
# Readable values
# ---------------------------------------------------------------------------


def _decimal(value: Fraction, digits: int = 4) -> tuple[str, bool]:
    """``value`` with at most ``digits`` significant digits: (text, exact)."""
    if value == 0:
        return "0", True
    sign = "-" if value < 0 else ""
    value = abs(value)
    magnitude = len(str(int(value))) if value >= 1 else -len(str(int(1 / value)))
    places = max(digits - magnitude, 0) if value >= 1 else digits - magnitude - 1
    scaled = value * 10 ** places
    rounded = (scaled.numerator * 2 + scaled.denominator) // (2 * scaled.denominator)
    exact = Fraction(rounded, 10 ** places) == value
    if places == 0:
        text = f"{rounded:,}"
    else:
        padded = str(rounded).rjust(places + 1, "0")
        whole, frac = padded[:-places], padded[-places:].rstrip("0")
        text = f"{int(whole):,}" + ("." + frac if frac else "")
    return sign + text, exact


def approx(n: sympy.Expr) -> str:
    """69,800 → '69.8k' (the notes' '≈ 69.8k'); '' for a symbolic value or a small one."""
    if not getattr(n, "is_Integer", False) or abs(int(n)) < 1000:
        return ""
    value = Fraction(int(n))
    for power, suffix in ((12, "T"), (9, "G"), (6, "M"), (3, "k")):
        if abs(value) >= 10 ** power:
            text, _ = _decimal(value / 10 ** power, 3)
            return text + suffix
    return ""


def _with_unit(value: sympy.Expr, units: Sequence[tuple[int, str]], unit: str) -> str:
    """A readable value in the largest unit that keeps it >= 1: '844.276 µs', '≈ 1,184 samples/s'."""
    if not getattr(value, "is_Rational", False):
        return ""
    v = Fraction(int(value.p), int(value.q))
    for power, name in units:
        scaled = v / Fraction(10) ** power if power >= 0 else v * 10 ** (-power)
        if abs(scaled) >= 1 or power == units[-1][0]:
            text, exact = _decimal(scaled, 6)
            return ("" if exact else "≈ ") + f"{text} {name}".rstrip()
    return f"{value} {unit}"


#: Steps that combine other totals (their formulas with symbolic values put in are only longer).
WHOLE_TOTALS = ("elements", "memory", "latency", "latency_fma", "throughput", "throughput_fma")

MAX_NAMED_TERMS = 8  # a total of more layers is written with their values only
MAX_LISTED_TERMS = 40  # ... and of more than this, equal values together (n·v), or only the total


def _grouped_sum(values) -> sympy.Expr | None:
    """``values`` added up with equal ones together (5000·3 + 2·7, in order of first appearance);
    None when even that has more than :data:`MAX_LISTED_TERMS` terms (only the total is worth printing)."""
    counts: dict = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    if len(counts) > MAX_LISTED_TERMS:
        return None
    return _sum(v if c == 1 else sympy.Mul(sympy.Integer(c), v, evaluate=False) for v, c in counts.items())

TIME_UNITS = ((0, "s"), (-3, "ms"), (-6, "µs"), (-9, "ns"), (-12, "ps"))
BYTE_UNITS = ((12, "TB"), (9, "GB"), (6, "MB"), (3, "kB"), (0, "bytes"))
RATE_UNITS = ((0, "samples/s"),)


# ---------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------


def derive(model, *, values: Mapping[str, Any] | None = None, dtype: str = "fp32", speed=None,
           symbolic: bool = False) -> Derivation:
    """The derivation of ``model`` (a :class:`~symcost.graph.Model`) for one sample.

    ``values`` substitutes sizes (as ``--set``); ``speed`` is FLOP/s (text for
    :func:`parse_speed`, or a number); ``symbolic`` keeps formulas only.
    """
    from .report import DTYPES

    report = model.cost(batch=1, dtype=dtype)
    if values:
        report = report.subs(dict(values))
    subs = report.values
    speed_value = None
    speed_text = ""
    if speed is not None:
        if isinstance(speed, str):
            speed_text = speed.strip()
            speed_value = parse_speed(speed)
        elif isinstance(speed, (int, sympy.Rational)) and not isinstance(speed, bool) and speed > 0:
            speed_value = sympy.Rational(speed)
            speed_text = str(speed)
        else:
            raise SpeedError(f"speed must be a positive whole number or text such as 1GFLOPS, not {speed!r}")
    builder = _Builder(subs, symbolic, _size_names(model, report, subs))
    analysis = report.analysis
    inputs = tuple(builder.input_step(i, name, shape) for i, (name, shape) in
                   enumerate(analysis.input_shapes.items()))
    layers = tuple(builder.layers(analysis))
    totals = tuple(builder.totals(layers, DTYPES[dtype], dtype, speed_value))
    sizes = []
    for name, what in model.dims.items():
        given = subs.get(sympy.Symbol(name, integer=True, positive=True))
        sizes.append((name, what, given))
    return Derivation(
        model=model.name, description=getattr(model, "description", "") or "", dtype=dtype,
        bytes_per_element=DTYPES[dtype], symbolic=symbolic, speed=speed_value, speed_text=speed_text,
        sizes=tuple(sizes), inputs=inputs, layers=layers, totals=totals,
        conditions=tuple(report.conditions),
    )


#: A derivation of more layers than this (at one level) writes a run of identical layers once.
LONG_DERIVATION = 100
MIN_RUN = 2  # ... a run of more than this many identical layers after the one written in full


def _signature(n, node, in_shapes):
    """What a layer's derivation depends on, but for its id and its z/w numbers (None: unhashable)."""
    try:
        key = (node.kind.name, n.op, tuple(sorted(n.quantities.items())), tuple(sorted(dict(node.args).items())),
               tuple(map(tuple, in_shapes)), tuple(n.shape))
        hash(key)
        return key
    except TypeError:
        return None


def _rebind(layer: LayerDerivation, new_id: str, z: tuple, w: tuple) -> LayerDerivation:
    """``layer``'s derivation for another layer of the same signature: its id and z/w numbers replaced."""
    names = {}
    if z[0] is not None:
        names[_sym(f"z_{z[0]}")] = _sym(f"z_{z[1]}")
    if w[0] is not None:
        names[_sym(f"w_{w[0]}")] = _sym(f"w_{w[1]}")
        names[_sym(f"b_{w[0]}")] = _sym(f"b_{w[1]}")
    old_id = f"'{layer.id}'"

    def part(p):
        if isinstance(p, str):
            return f"'{new_id}'" if p == old_id else p
        if names and isinstance(p, sympy.Basic):
            return p.xreplace(names)
        return p

    if not names and not any(p == old_id for s in layer.steps for p in s.sentence):
        return replace(layer, id=new_id, z=z[1], w=w[1])  # nothing in its steps names it (a ReLU)
    steps = tuple(replace(s, sentence=tuple(part(p) for p in s.sentence),
                          lhs=s.lhs.xreplace(names) if names and s.lhs is not None else s.lhs)
                  for s in layer.steps)
    return replace(layer, id=new_id, steps=steps, z=z[1], w=w[1])


def _size_names(model, report, subs) -> frozenset:
    """The names of the sizes a model's user wrote: its ``dims``, every symbol its counts and inputs
    contain, and every symbol a ``--set`` value brings in."""
    names = set(getattr(model, "dims", {}) or {})
    exprs = [report.params, report.activations, report.flops, report.macs, report.fma_ops, report.input,
             *subs.values(), *(d for shape in report.analysis.input_shapes.values() for d in shape)]
    for e in exprs:
        if isinstance(e, sympy.Basic):
            names |= {s.name for s in e.free_symbols}
    return frozenset(names)


class _Builder:
    def __init__(self, subs: Mapping, symbolic: bool, user_names: frozenset = frozenset(), seen=None):
        self.subs = dict(subs)
        self.symbolic = symbolic
        self.user_names = user_names  # the model's own size names: the notation must not read as one of them
        self.seen: dict = {} if seen is None else seen  # signature -> (layer, z, w): derived once per distinct layer
        self.z = 0
        self.w = 0

    def notation(self, key: str, raw=None) -> sympy.Symbol:
        """The notes' symbol of quantity ``key`` (:func:`notation`), primed (V') when the model has a size
        of that name and the quantity is not that very size here: a softmax's V (vectors) in a model
        whose V is the vocabulary is V', while a recurrent layer's T over the model's own T stays T."""
        sym = notation(key)
        if sym.name in self.user_names and raw != sym:
            return primed(sym)
        return sym

    def _s(self, expr):
        if isinstance(expr, sympy.Basic):
            return expr.xreplace(self.subs) if self.subs else expr
        if isinstance(expr, tuple):
            return tuple(self._s(e) for e in expr)
        return expr

    def step(self, key, sentence, lhs, general, values: Mapping | None, value, **kw) -> Step:
        """A step from its general formula and the values of its symbols."""
        general = arrange(general) if general is not None else None
        sentence = tuple(arrange(p) if isinstance(p, sympy.Basic) else p for p in sentence)
        if key in WHOLE_TOTALS and any(getattr(v, "free_symbols", None) for v in (values or {}).values()):
            values = {}  # totals of totals: with symbolic sizes, writing the sums out again helps nobody
        if self.symbolic:
            return Step(key, tuple(sentence), lhs, general, None, None, **{k: v for k, v in kw.items()
                                                                          if k == "unit"})
        substituted = plug(general, values) if (general is not None and values) else None
        return Step(key, tuple(sentence), lhs, general, substituted, value, values=dict(values or {}), **kw)

    # -- inputs ----------------------------------------------------------------
    def input_step(self, i: int, name: str, shape) -> Step:
        x = _sym(f"x_{i}")
        given = self._s(tuple(shape))
        general = _times(*shape) if shape else sympy.Integer(1)
        sentence = ("The input ", x, f" ('{name}') holds one sample (batch size 1) of shape ", Dims(*given),
                    "; its size is the product of its dimensions:")
        values = {s: v for s, v in self.subs.items() if s in general.free_symbols}
        return self.step("input", sentence, Size(x), general, values, _value(numel(given)))

    # -- layers ----------------------------------------------------------------
    def layers(self, analysis):
        shapes = {name: tuple(s) for name, s in analysis.input_shapes.items()}
        out, signatures = [], []
        nodes = analysis.nodes
        for n in progress(nodes, total=len(nodes), desc="deriving", unit="layer"):
            node = analysis.model.node(n.id)
            in_shapes = [shapes[s] for s in node.inputs]
            shapes[n.id] = tuple(n.shape)
            if node.kind is None:
                out.append(self.block(n, node, in_shapes))
                signatures.append(None)
            else:
                signature = _signature(n, node, in_shapes)
                out.append(self.layer(n, node, in_shapes, signature))
                signatures.append(signature)
        if len(out) > LONG_DERIVATION:
            out = self.runs(out, signatures)
        return out

    def runs(self, layers, signatures) -> list:
        """A long derivation writes a layer in full once; the identical layers right after it (a run of
        at least :data:`MIN_RUN`) become one entry that refers to it, with the run's counts."""
        out, i = [], 0
        while i < len(layers):
            j = i + 1
            while j < len(layers) and signatures[i] is not None and signatures[j] == signatures[i]:
                j += 1
            out.append(layers[i])
            if j - i > MIN_RUN:
                out.append(self.run(layers[i], layers[i + 1:j]))
            else:
                out.extend(layers[i + 1:j])
            i = j
        return out

    def run(self, ref: LayerDerivation, same: Sequence[LayerDerivation]) -> LayerDerivation:
        count = sympy.Integer(len(same))
        run_id = f"{same[0].id}..{same[-1].id}"
        cost = Cost.total(layer.cost for layer in same)
        steps = [Step("same", (f"The {len(same):,} layers from '{same[0].id}' to '{same[-1].id}' are each the "
                               f"same as '{ref.id}' (the same kind with the same sizes): each costs what is "
                               f"derived there, so together they cost ", count, " times that."),)]
        steps += self.scaled_steps(ref.cost, cost, count, run_id, "of these layers")
        return LayerDerivation(run_id, ref.op, ref.family, ref.input_shapes, ref.shape, cost, tuple(steps),
                               view=ref.view, repeat=count, same_as=ref.id)

    def scaled_steps(self, one: Cost, cost: Cost, repeat, name_id: str, what_of: str) -> list[Step]:
        """params/act/ops/FMA of ``repeat`` uses of ``one``; the left-hand sides are the names the
        totals add up (params_h, act_h, ops_h, FMA_h)."""
        steps = []
        for key, what, field_, name in (("params", "Parameters", "params", "params"),
                                        ("activations", "Activations", "activations", "act"),
                                        ("ops", "Operations (non-pipelined)", "flops", "ops"),
                                        ("fma", "Operations (pipelined, FMA)", "fma_ops", "FMA")):
            v1 = _value(getattr(one, field_))
            if _is_zero(v1):
                continue
            general = _times(repeat, v1)
            steps.append(Step(key, (f"{what} {what_of}:",), _sym(f"{name}_{name_id}"), general,
                              None, None if self.symbolic else _value(getattr(cost, field_))))
        return steps

    def block(self, n, node, in_shapes) -> LayerDerivation:
        inner = _Builder(self.subs, self.symbolic, self.user_names, self.seen)  # z and w numbered inside
        children = tuple(inner.layers(n.children))
        one = Cost.total(c.cost for c in children)
        repeat = self._s(n.repeat)
        cost = one * repeat
        steps = [Step("block", (f"The block '{node.op}' is used ", repeat,
                                " time(s); each use costs the sum of its layers below, so the block costs ",
                                repeat, " times that."),)]
        steps += self.scaled_steps(one, cost, repeat, n.id, "of the block")
        return LayerDerivation(n.id, node.op, "block", tuple(tuple(s) for s in in_shapes), self._s(tuple(n.shape)),
                               cost, tuple(steps), repeat=repeat, children=children)

    def layer(self, n, node, in_shapes, signature=None) -> LayerDerivation:
        if signature is not None and signature in self.seen:  # derived before: the same steps, renamed
            first, z0, w0 = self.seen[signature]
            z = w = None
            if z0 is not None:
                self.z += 1
                z = self.z
            if w0 is not None:
                self.w += 1
                w = self.w
            return _rebind(first, n.id, (z0, z), (w0, w))
        layer = self._layer(n, node, in_shapes)
        if signature is not None:
            self.seen[signature] = (layer, layer.z, layer.w)
        return layer

    def _layer(self, n, node, in_shapes) -> LayerDerivation:
        kind = node.kind
        q_raw = n.quantities
        q = {k: self._s(v) for k, v in q_raw.items()}
        cost = kind.cost(_quantities(q)).tidy()
        shape = tuple(self._s(tuple(n.shape)))
        trivial = {k: v for k, v in q.items() if _trivial(k, v)}
        flags = {k: v for k, v in q.items() if isinstance(v, int) and not isinstance(v, bool)}
        scalar = [k for k, v in q.items() if isinstance(v, sympy.Expr) and k not in trivial]
        symbols = {k: self.notation(k, q_raw.get(k)) for k in scalar}
        qgen = dict(q)
        qgen.update({k: symbols[k] for k in scalar})
        values = {symbols[k]: q[k] for k in scalar}
        try:
            cgen = kind.cost(_quantities(qgen))
            sgen = tuple(kind.shape(_quantities(qgen)))
        except Exception:  # noqa: BLE001 - a kind whose rules need concrete sizes: values only
            cgen, sgen, values = cost, shape, {}
        has_act = not _is_zero(cost.activations) or (self.symbolic and not _is_zero(cgen.activations))
        has_params = not _is_zero(cost.params) or (self.symbolic and not _is_zero(cgen.params))
        z = w = None
        if has_act:
            self.z += 1
            z = self.z
        if has_params:
            self.w += 1
            w = self.w
        ctx = _Ctx(self, kind, node, q, qgen, values, cost, cgen, shape, sgen, z, w, flags, q_raw)
        steps = ctx.steps(self._derived(kind, node, in_shapes, q, q_raw, trivial))
        note = ()
        shown_trivial = {k: v for k, v in trivial.items()}
        if "b" in flags:
            shown_trivial["b"] = sympy.Integer(flags["b"])
        if shown_trivial and not kind.view and steps:
            groups: dict[str, list] = {}
            for k, v in shown_trivial.items():
                meaning = _MEANING.get(k[:2] if k.startswith(("D_", "OP")) else k, "")
                if k == "b":
                    meaning = "with a bias" if v == 1 else "no bias"
                groups.setdefault(meaning, []).append(sympy.Eq(self.notation(k, q_raw.get(k)), v, evaluate=False))
            parts: list = ["Here "]
            for i, (meaning, eqs) in enumerate(groups.items()):
                if i:
                    parts.append(" and " if i == len(groups) - 1 else ", ")
                for j, eq in enumerate(eqs):
                    parts += [", "] * bool(j) + [eq]
                if meaning:
                    parts.append(f" ({meaning})")
            parts.append("; the formulas below are written with these values.")
            note = tuple(parts)
        used = set()
        for st in steps:
            if st.general is not None:
                used |= st.general.free_symbols
        legend = tuple((symbols[k], quantity_meaning(kind.family, k) or UNNAMED_QUANTITY) for k in scalar
                       if symbols[k] in used)
        return LayerDerivation(n.id, n.op, kind.family, tuple(self._s(tuple(s)) for s in in_shapes), shape,
                               cost, tuple(steps), z=z, w=w, note=note, legend=legend, view=kind.view)

    def _derived(self, kind, node, in_shapes, q, q_raw, trivial) -> list[tuple[str, sympy.Expr]]:
        """Quantities the kind derives from the others (output sizes): (key, formula in notation)."""
        dummies = []

        def dummy(nonneg=False):
            d = sympy.Dummy(integer=True, nonnegative=True) if nonneg else sympy.Dummy(integer=True, positive=True)
            dummies.append(d)
            return d

        try:
            sym_inputs = [tuple(dummy() for _ in s) for s in in_shapes]
            args = {}
            for a in kind.args:
                v = node.args[a.name]
                if a.type in ("size", "size0") and isinstance(v, sympy.Expr):
                    args[a.name] = dummy(a.type == "size0")
                elif a.type in ("sizes", "sizes0", "padding") and isinstance(v, tuple):
                    args[a.name] = tuple(dummy(a.type != "sizes") for _ in v)
                else:
                    args[a.name] = v
            qs = kind.quantities(Args(args), sym_inputs)
        except Exception:  # noqa: BLE001 - rules that need concrete sizes: no formula to show
            return []
        names = {}
        for k, v in qs.items():
            if isinstance(v, sympy.Dummy) and v not in names:
                names[v] = self.notation(k, q_raw.get(k))
        put = {self.notation(k, q_raw.get(k)): v for k, v in trivial.items()}
        found = []
        for k, v in qs.items():
            if k in trivial or not isinstance(v, sympy.Expr) or isinstance(v, sympy.Dummy):
                continue
            if not isinstance(q.get(k), sympy.Expr) or not v.free_symbols or not v.free_symbols <= set(names):
                continue
            found.append((k, v.xreplace(names).xreplace(put)))
        return found

    # -- totals ----------------------------------------------------------------
    def totals(self, layers, nbytes: int, dtype: str, speed) -> list[Step]:
        flat = []

        def walk(ls):
            for layer in ls:
                flat.append(layer)

        walk(layers)
        steps = []
        acts = [(layer, _sym(f"z_{layer.z}")) for layer in flat if layer.z is not None]
        pars = [(layer, layer.w) for layer in flat if layer.w is not None]
        blocks = [layer for layer in flat if layer.children or layer.same_as]  # blocks and runs of layers
        total = Cost.total(layer.cost for layer in flat)

        def add(key, sentence, lhs, terms, value, unit="", shown=""):
            if len(terms) > MAX_NAMED_TERMS:  # too many names to read: the values, layer by layer
                sent = list(sentence)
                many = len(terms) > MAX_LISTED_TERMS
                if self.symbolic:  # the names added up, unless there are too many to read
                    steps.append(Step(key, tuple(sentence), lhs, None if many else _sum(t for t, _ in terms)))
                    return
                listed = _grouped_sum([v for _, v in terms]) if many else _sum(v for _, v in terms)
                if isinstance(sent[-1], str) and sent[-1].endswith(":"):
                    sent[-1] = sent[-1][:-1] + (", layer by layer:" if not many else
                                                f", over the {len(terms):,} layers (each given above)" +
                                                (", equal counts together:" if listed is not None else ":"))
                steps.append(Step(key, tuple(sent), lhs, None, listed, value, unit=unit, shown=shown))
                return
            general = _sum(t for t, _ in terms)
            vals = {t: v for t, v in terms}
            steps.append(self.step(key, sentence, lhs, general, vals, value, unit=unit, shown=shown))

        act_terms = [(Size(z), layer.cost.activations) for layer, z in acts]
        act_terms += [(_sym(f"act_{b.id}"), b.cost.activations) for b in blocks
                      if b.children or not _is_zero(b.cost.activations)]
        add("activations", ("Activations of one forward pass: the sizes of the layer outputs ",
                            _sym("z_1"), ", ", _sym("z_2"), ", ... added up (the input ", _sym("x_0"),
                            " and in-place layers such as ReLU add nothing):"),
            TOTAL_ACT, act_terms, _value(total.activations))
        par_terms = [(Size(_sym(f"w_{i}"), _sym(f"b_{i}")), layer.cost.params) for layer, i in pars]
        par_terms += [(_sym(f"params_{b.id}"), b.cost.params) for b in blocks
                      if b.children or not _is_zero(b.cost.params)]
        add("params", ("Parameters: the weights and biases of every layer added up:",),
            TOTAL_PARAMS, par_terms, _value(total.params))
        elements = _value(total.activations + total.params)
        steps.append(self.step(
            "elements", ("Space in elements, parameters and activations together:",),
            _sym("Total"), sympy.Add(TOTAL_ACT, TOTAL_PARAMS, evaluate=False),
            {TOTAL_ACT: _value(total.activations), TOTAL_PARAMS: _value(total.params)}, elements,
            approx=approx(elements)))
        memory = _value(nbytes * (total.activations + total.params))
        steps.append(self.step(
            "memory", (f"Memory of one forward pass: (activations + parameters) × bytes of the datatype "
                       f"({dtype}: {nbytes} bytes per element):",),
            _sym("Memory"), sympy.Mul(sympy.Add(TOTAL_ACT, TOTAL_PARAMS, evaluate=False), BYTES, evaluate=False),
            {TOTAL_ACT: _value(total.activations), TOTAL_PARAMS: _value(total.params), BYTES: sympy.Integer(nbytes)},
            memory, unit="bytes", approx=_bytes_approx(memory)))
        ops_terms = [(_sym(f"ops_{layer.id}"), _value(layer.cost.flops)) for layer in flat
                     if not _is_zero(layer.cost.flops)]
        add("ops", ("Operations, non-pipelined (every multiplication and addition one after the other), "
                    "all layers:",), TOTAL_OPS, ops_terms, _value(total.flops))
        fma_terms = [(_sym(f"FMA_{layer.id}"), layer.cost.fma_ops) for layer in flat
                     if not _is_zero(layer.cost.fma_ops)]
        add("fma", ("Operations, pipelined (a fused multiply-add unit does a multiplication and an addition "
                    "in one operation), all layers:",), TOTAL_FMA, fma_terms, _value(total.fma_ops))
        mac_terms = [(_sym(f"MACs_{layer.id}"), layer.cost.macs) for layer in flat if not _is_zero(layer.cost.macs)]
        if mac_terms:
            add("macs", ("Multiply-accumulates (MACs) of the linear algebra, biases excluded:",),
                TOTAL_MACS, mac_terms, _value(total.macs))
        if speed is not None:
            # latency = ops / speed (s), throughput = speed / ops (samples/s), each for the
            # non-pipelined and the pipelined (FMA) count.
            counts = (("", TOTAL_OPS, _value(total.flops), "non-pipelined"),
                      ("_fma", TOTAL_FMA, _value(total.fma_ops), "pipelined"))
            measures = (
                ("latency", "Latency", "the time to process one input at this speed, "
                 "# total operations / speed, in seconds", lambda n, d: (n, d), "s", TIME_UNITS),
                ("throughput", "Throughput", "inputs processed per second, one after the other, "
                 "speed / # total operations", lambda n, d: (d, n), "samples/s", RATE_UNITS),
            )
            for key, name, what, order, unit, units in measures:
                for suffix, ops_sym, ops_value, how in counts:
                    (num_sym, den_sym), (num, den) = order(ops_sym, SPEED), order(ops_value, speed)
                    value = num / den
                    steps.append(self.step(
                        key + suffix, (f"{name} ({how}): {what}:",),
                        _sym(name + ("_FMA" if suffix else "")),
                        sympy.Mul(num_sym, sympy.Pow(den_sym, -1, evaluate=False), evaluate=False),
                        {ops_sym: ops_value, SPEED: speed}, value, unit=unit,
                        shown=_with_unit(value, units, unit)))
        return steps


_MEANING = {"G": "no groups", "D": "one direction", "L": "one layer", "R": "one input vector",
            "B": "a single batch entry", "D_": "no dilation", "OP": "no output padding"}


def _bytes_approx(n) -> str:
    if not getattr(n, "is_Integer", False) or n < 1000:
        return ""
    return _with_unit(n, BYTE_UNITS, "bytes").lstrip("≈ ")


def _quantities(q: Mapping):
    from .layers.base import Quantities

    return Quantities(q)


class _Ctx:
    """The steps of one layer kind application."""

    def __init__(self, b: _Builder, kind, node, q, qgen, values, cost, cgen, shape, sgen, z, w, flags, q_raw):
        self.b, self.kind, self.node, self.q, self.qgen, self.values = b, kind, node, q, qgen, values
        self.cost, self.cgen, self.shape, self.sgen, self.z, self.w, self.flags = cost, cgen, shape, sgen, z, w, flags
        self.family = kind.family
        self.raw = q_raw

    def n(self, key: str) -> sympy.Symbol:
        """The symbol of quantity ``key`` in this layer's notation (primed if it would read as a user's size)."""
        return self.b.notation(key, self.raw.get(key))

    def step(self, key, sentence, lhs, general, value, **kw):
        if general is not None:
            used = {s: v for s, v in self.values.items() if s in general.free_symbols}
        else:
            used = {}
        return self.b.step(key, sentence, lhs, general, used, value, **kw)

    def cost_with(self, **over) -> Cost:
        q = dict(self.qgen)
        q.update(over)
        return self.kind.cost(_quantities(q))

    def real_with(self, **over) -> Cost:
        q = dict(self.q)
        q.update(over)
        return self.kind.cost(_quantities(q))

    def steps(self, derived) -> list[Step]:
        out: list[Step] = []
        kind, node = self.kind, self.node
        if kind.view:
            out.append(Step("view", (f"{node.op} computes nothing: ",
                                     "a view of its input as shape ", Dims(*self.shape),
                                     "; no parameters, no operations, no new activations."),))
            return out
        for key, formula in derived:
            out.append(self.step("size_" + key, self.size_sentence(key), self.n(key), formula, self.q[key]))
        out += self.activation_steps()
        out += self.param_steps()
        out += self.op_steps()
        return out

    def size_sentence(self, key) -> tuple:
        m = re.match(r"([MNL])1\Z", key)
        if m and self.family in ("conv", "pool"):
            axis = m.group(1)
            w = {"M": "W", "N": "H", "L": "R"}[axis]
            if "OP_" + w in self.q:
                return ("Output size along ", self.n(axis), ": the transposed convolution spreads each of the ",
                        self.n(axis), " input positions ", self.n("S_" + w), " apart and adds the kernel extent ",
                        self.n(w), ":")
            return ("Output size along ", self.n(axis), ": how many positions a window of extent ", self.n(w),
                    " takes on the input of length ", self.n(axis), " padded by ", self.n("P_" + w),
                    " on each side, moving ", self.n("S_" + w), " at a time (PyTorch's ",
                    "formula; with no dilation it is the notes' one):")
        return ("The quantity ", self.n(key), " follows from the layer's shape rule:")

    # -- activations -------------------------------------------------------------
    def activation_steps(self) -> list[Step]:
        act = self.cost.activations
        if _is_zero(act) and not (self.b.symbolic and not _is_zero(self.cgen.activations)):
            if self.shape and not _is_zero(self.cost.flops):
                return [Step("activations", (f"{self.node.op} works in place on its input: "
                                             "its output takes no new memory (no activations).",),)]
            return []
        z = _sym(f"z_{self.z}")
        sentence = ["The output ", z, " of ", f"'{self.node.id}'", " has shape ",
                    Dims(*self.shape)]
        if self.family == "conv" and "K" in self.q:
            sentence += ["; one channel per kernel (", self.n("K"), " kernels)"]
        if sympy.expand(act - numel(self.shape)) != 0:
            sentence += ["; the layer keeps more than its output (its states and intermediate results), "
                         "and all of it counts"]
        sentence.append(":")
        return [self.step("activations", sentence, Size(z), self.cgen.activations, _value(act))]

    # -- parameters --------------------------------------------------------------
    def param_steps(self) -> list[Step]:
        if _is_zero(self.cost.params) and not (self.b.symbolic and not _is_zero(self.cgen.params)):
            return []
        i = self.w
        wsym, bsym = _sym(f"w_{i}"), _sym(f"b_{i}")
        out = []
        bias = self.flags.get("b") == 1
        if bias:
            weights_gen = self.cost_with(b=0).params
            weights = _value(self.real_with(b=0).params)
            bias_gen = tidy(sympy.expand(self.cgen.params - weights_gen))
            bias_val = _value(self.cost.params - weights)
            out.append(self.step("weights", self.weight_sentence(), Size(wsym), weights_gen, weights))
            out.append(self.step("bias", self.bias_sentence(), Size(bsym), bias_gen, bias_val))
            out.append(self.step("params", ("Parameters of the layer, weights and biases:",),
                                 Size(wsym, bsym), self.cgen.params, _value(self.cost.params)))
        else:
            out.append(self.step("params", self.weight_sentence() + (" (no bias)",) if "b" in self.flags
                                 else ("Parameters of the layer:",), Size(wsym), self.cgen.params,
                                 _value(self.cost.params)))
        return out

    def weight_sentence(self) -> tuple:
        f = self.family
        if f == "conv" and "C" in self.q:
            n = sympy.Mul(*(self.n(w) for w in ("W", "H", "R") if w in self.q), evaluate=False)
            each = _times(self.n("C"), n) if "G" not in self.qgen or self.qgen["G"] == 1 else \
                _times(self.n("C") / self.n("G"), n)
            return ("Where is it coming from? # output channels = # independent kernels: ", self.n("K"),
                    " kernels, each of size (# input channels) × (kernel extent) = ", each, ":")
        if f == "linear":
            return ("Where is it coming from? Each of the ", self.n("k"), " nodes has one weight per input: a ",
                    self.n("k"), " × ", self.n("n"), " weight matrix:")
        if f == "recurrent":
            return ("Where is it coming from? Each gate unit has a weight per input feature (",
                    self.n("I"), ") and per hidden unit (", self.n("H"),
                    "): input-to-hidden and hidden-to-hidden matrices:")
        if f == "attention":
            return ("Where is it coming from? The query, key, value and output projections are ",
                    "weight matrices of the embedding size:",)
        return ("Weights of the layer:",)

    def bias_sentence(self) -> tuple:
        if self.family == "conv":
            return ("One bias per output channel (one per kernel):",)
        if self.family == "linear":
            return ("One bias per node:",)
        return ("Biases of the layer:",)

    # -- operations --------------------------------------------------------------
    def _nodes(self):
        """(general, value) number of output nodes such that ops / nodes is a clean per-node count."""
        gen, val = numel(self.sgen), numel(self.shape)
        flops = self.cgen.flops
        if gen.free_symbols and _clean(sympy.cancel(flops / gen)):
            return gen, val
        act = self.cgen.activations
        if act.free_symbols and sympy.expand(numel(self.shape) - self.cost.activations) == 0 \
                and _clean(sympy.cancel(flops / act)):
            return act, val
        for k, v in self.q.items():
            s = self.n(k)
            if isinstance(v, sympy.Expr) and v == val and s in flops.free_symbols \
                    and _clean(sympy.cancel(flops / s)):
                return s, val
        return None, val

    def op_steps(self) -> list[Step]:
        cost, cgen = self.cost, self.cgen
        if _is_zero(cost.flops) and _is_zero(cgen.flops):
            return []
        out = []
        nodes, nodes_val = self._nodes()
        bias = self.flags.get("b") == 1
        ops_sym, fma_sym = _sym("ops"), _sym("ops_FMA")
        if nodes is not None:
            per_kind = {k: sympy.cancel(cgen.op(k) / nodes) for k in OP_KINDS if not _is_zero(cgen.op(k))}
            bias_part = sympy.Integer(0)
            if bias:
                no_bias = self.cost_with(b=0)
                per_kind = {k: sympy.cancel(no_bias.op(k) / nodes) for k in OP_KINDS if not _is_zero(no_bias.op(k))}
                bias_part = sympy.cancel(sympy.expand(cgen.flops - no_bias.flops) / nodes)
            terms = [tidy(v) for v in per_kind.values()]
            words = [(per_kind[k], _noun(k, per_kind[k])) for k in per_kind]
            if not _is_zero(bias_part):
                terms.append(tidy(bias_part))
                words.append((tidy(bias_part), "bias addition" if bias_part == 1 else "bias additions"))
            per_gen = _sum(terms)
            per_val = _value(cost.flops / nodes_val)
            per_total = tidy(sympy.cancel(cgen.flops / nodes))
            if per_total == 1 and len(words) == 1:
                out.append(self.step("ops", ("Each of the ", nodes, " output elements takes one ",
                                             words[0][1], "; that is all the layer computes:"),
                                     ops_sym, nodes, _value(cost.flops)))
                out.append(Step("fma", ("There are no multiply-adds to fuse: the pipelined count is the same.",),))
                return out
            sentence = ["Each output node takes "]
            for i, (count, noun) in enumerate(words):
                if i:
                    sentence.append(" and " if i == len(words) - 1 else ", ")
                sentence += [tidy(count), f" {noun}"]
            sentence.append(":" if len(words) == 1 else ", in all:")
            out.append(self.step("ops_node", sentence, _sym("ops_node"), per_gen, per_val))
            out.append(self.step(
                "ops", ("Operations of the layer, non-pipelined: # output nodes × operations per node:",),
                ops_sym, _times(nodes, per_total), _value(cost.flops)))
            if sympy.expand(cgen.fma_ops - cgen.flops) != 0:
                fma_node = tidy(sympy.cancel(cgen.fma_ops / nodes))
                out.append(self.step(
                    "fma_node", ("Pipelined: with a fused multiply-add (FMA) unit, each product is accumulated "
                                 "in the same operation, so a node takes",) + self._fma_words(bias),
                    _sym("FMA_node"), fma_node, _value(cost.fma_ops / nodes_val)))
                out.append(self.step("fma", ("Operations of the layer, pipelined: # output nodes × FMA "
                                             "operations per node:",),
                                     fma_sym, _times(nodes, fma_node), _value(cost.fma_ops)))
            else:
                out.append(Step("fma", ("There are no multiply-adds to fuse: the pipelined count is the same.",),))
        else:
            out.append(self.step("ops", ("Operations of the layer, non-pipelined (all kinds added up):",),
                                 ops_sym, cgen.flops, _value(cost.flops)))
            if sympy.expand(cgen.fma_ops - cgen.flops) != 0:
                out.append(self.step("fma", ("Operations of the layer, pipelined (with fused multiply-adds):",),
                                     fma_sym, cgen.fma_ops, _value(cost.fma_ops)))
        if not _is_zero(cost.macs) or (self.b.symbolic and not _is_zero(cgen.macs)):
            general = self.macs_general(nodes)
            out.append(self.step("macs", self.mac_sentence(factored=isinstance(general, sympy.Mul)
                                                          and not _same_terms(general)),
                                 _sym("MACs"), general, _value(cost.macs)))
        return out

    def _fma_words(self, bias) -> tuple:
        return (" one FMA per product" + (" plus the bias addition:" if bias else ":"),)

    def macs_general(self, nodes):
        macs = self.cgen.macs
        if nodes is not None and _clean(sympy.cancel(macs / nodes)):
            return _times(nodes, tidy(sympy.cancel(macs / nodes)))
        return macs

    def mac_sentence(self, factored: bool) -> tuple:
        if self.family == "recurrent":
            return ("Multiply-accumulates: at each of the ", self.n("T"), " steps, every gate unit takes a dot "
                    "product with the input (", self.n("I"), " terms) and with the previous hidden state (",
                    self.n("H"), " terms) -- the slides' (I×H + H×H)×T per gate:")
        if self.family == "attention":
            return ("Multiply-accumulates: the projections, then for every (query, key) pair a dot product of the "
                    "features for the scores and again for the weighted sum of the values -- the slides' D×N×M:",)
        if factored:
            return ("Multiply-accumulates (one per product, biases excluded): # output nodes × products per node:",)
        return ("Multiply-accumulates (one per product, biases excluded):",)


def _clean(expr) -> bool:
    """A per-node count without a denominator (so the factoring is meaningful)."""
    num, den = sympy.fraction(sympy.together(expr))
    return den == 1


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------

FORMATS = {"markdown": "derive.md.j2", "latex": "derive.tex.j2", "html": "derive.html.j2"}


def render(derivation: Derivation, fmt: str = "markdown", template_dir: str | None = None,
           command: str = "", stream=None) -> str:
    """The derivation as Markdown, a standalone LaTeX document or a self-contained HTML page.

    ``command`` (the command line that made it) is quoted in the output; ``template_dir``
    goes first on the template search path (a ``derive.md.j2`` there replaces the package's).
    On a terminal (standard error, or ``stream``) a long rendering has its own progress bar.
    """
    from .progress import stage
    from .render import render_template

    if fmt not in FORMATS:
        raise SymcostError(f"unknown derivation format {fmt!r}; choose one of {', '.join(FORMATS)}")
    # Rendering is a stage of its own: a long derivation's bar ends when the layers are derived, and
    # writing them out must not then run for long with nothing on the screen.
    bar = stage(len(derivation.layers), desc="rendering", unit="layer", stream=stream)
    d = derivation if bar is None else replace(derivation, layers=_Ticking(derivation.layers, bar))
    try:
        return render_template(FORMATS[fmt], template_dir, d=d, command=command, sym=_symbol_of, dims=_dims_of)
    finally:
        if bar is not None:
            bar.close()


class _Ticking(tuple):
    """The layers, advancing a bar as a template walks them (each walk starts it again: the page's
    table of contents is quick, the layers' sections are the work)."""

    def __new__(cls, items, bar):
        self = super().__new__(cls, items)
        self.bar = bar
        return self

    def __iter__(self):
        self.bar.reset(total=len(self))
        for item in super().__iter__():
            yield item
            self.bar.update(1)


def _symbol_of(name) -> sympy.Symbol:
    """The templates' ``sym(name)``: a symbol to print (a name is never parsed)."""
    if not isinstance(name, str) or len(name) > 200:
        raise SymcostError(f"sym() takes a size name, not {type(name).__name__}")
    return sympy.Symbol(name)


def _dims_of(shape) -> Dims:
    """The templates' ``dims(shape)``: a shape to print.  Only sizes (sympy expressions, integers):
    sympy would *sympify*, that is evaluate, a string."""
    dims = []
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, (int, sympy.Basic)):
            raise SymcostError(f"dims() takes a shape of sizes, not {type(d).__name__} values")
        dims.append(sympy.Integer(d) if isinstance(d, int) else d)
    return Dims(*dims)
