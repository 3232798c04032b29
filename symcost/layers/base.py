"""The registry of layer kinds, and what every kind is made of.

A kind is registered once under the name users write (``conv2d``).  It
declares its arguments (PyTorch's names and defaults) and three pure
functions, side by side in its module:

- ``quantities(args, inputs)`` -> the named sizes of one application, in the
  seeds' notation (``C``, ``M``, ``K``, ``W``, ``M1`` ...), output sizes
  included -- this is where the shape formulas and the shape checks live;
- ``shape(q)``  -> the output shape, from those quantities;
- ``cost(q)``   -> the :class:`~symcost.cost.Cost`, from those quantities.

Because ``shape`` and ``cost`` see only the quantities, the same code gives
the concrete count (quantities of a real layer) and the general formula
(quantities replaced by their symbols) -- the derivation's "K·C·W·H + K".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Sequence

import sympy

from ..cost import Cost
from ..errors import ShapeError, SizeError, SpecError, brief, nearest
from ..sizes import check_concrete, to_size

Shape = tuple  # a tuple of sympy expressions, one per dimension (no batch)

REQUIRED = object()


def axis(dim: int, rank: int, what: str) -> int:
    """``dim`` (negative counts from the end) as a position 0 .. rank − 1, or a ShapeError."""
    if not -rank <= dim < rank:
        raise ShapeError(f"{what}: dim {dim} is out of range for rank {rank}")
    return dim % rank


def numel(shape: Sequence) -> sympy.Expr:
    """Number of elements of a shape: the product of its dimensions."""
    return sympy.Mul(*shape) if shape else sympy.Integer(1)


def fmt_shape(shape: Sequence) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def same(a: sympy.Expr, b: sympy.Expr) -> bool:
    """Whether two sizes are equal for every value of their symbols."""
    if a == b:
        return True
    from ..sizes import EXPAND_TERMS, expanded_terms

    diff = a - b
    if expanded_terms(diff) > EXPAND_TERMS:  # refuse before a multi-second expansion
        raise SizeError(f"the sizes {str(a)[:80]} and {str(b)[:80]} are too large to compare "
                        f"(more than {EXPAND_TERMS} terms once multiplied out)")
    return sympy.expand(diff) == 0


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Arg:
    """One argument of a kind.  ``type`` is one of:

    ``size`` (>= 1), ``size0`` (>= 0), ``sizes`` / ``sizes0`` (one size or one
    per spatial axis), ``padding`` (``sizes0`` or ``'same'``/``'valid'``),
    ``bool``, ``int`` (any integer, e.g. a dim), ``dims`` (one integer dim or a list of distinct
    ones, kept as a tuple), ``prob`` (a number in [0, 1]), ``choice`` (one of
    ``choices``), ``name`` (a node or block name), ``shape`` (list of sizes,
    -1 allowed once).
    """

    name: str
    type: str
    default: Any = REQUIRED
    choices: tuple = ()
    doc: str = ""


def _per_axis(value, ndim: int, what: str, minimum: int) -> tuple:
    if isinstance(value, (list, tuple)):
        if len(value) != ndim:
            raise SpecError(f"{what} needs {ndim} value(s), one per spatial axis, but got {len(value)}")
        return tuple(to_size(v, what, minimum=minimum) for v in value)
    return (to_size(value, what, minimum=minimum),) * ndim


def normalize_arg(arg: Arg, value: Any, ndim: int) -> Any:
    """Check and convert one user value for ``arg``."""
    t = arg.type
    if t == "size":
        return to_size(value, arg.name)
    if t == "size0":
        return to_size(value, arg.name, minimum=0)
    if t in ("sizes", "sizes0"):
        return _per_axis(value, ndim, arg.name, 1 if t == "sizes" else 0)
    if t == "padding":
        if isinstance(value, str) and value in ("same", "valid"):
            return value
        return _per_axis(value, ndim, arg.name, 0)
    if t == "bool":
        if not isinstance(value, bool):
            raise SpecError(f"{arg.name} must be true or false, not {brief(value)}")
        return value
    if t == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{arg.name} must be a whole number, not {brief(value)}")
        return value
    if t == "dims":
        items = value if isinstance(value, (list, tuple)) else [value]
        if not items or any(isinstance(v, bool) or not isinstance(v, int) for v in items):
            raise SpecError(f"{arg.name} must be a whole number or a list of them, not {brief(value)}")
        if len(set(items)) != len(items):
            raise SpecError(f"{arg.name} lists a dim twice: {brief(value)}")
        return tuple(items)
    if t == "choice":
        if value not in arg.choices:
            raise SpecError(
                f"{arg.name} must be one of {', '.join(map(repr, arg.choices))}, not {brief(value)}"
                + nearest(brief(value), map(str, arg.choices))
            )
        return value
    if t == "prob":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise SpecError(f"{arg.name} must be a probability between 0 and 1, not {brief(value)}")
        return value
    if t == "name":
        if not isinstance(value, str):
            raise SpecError(f"{arg.name} must be a name, not {brief(value)}")
        return value
    if t == "shape":
        if not isinstance(value, (list, tuple)) or not value:
            raise SpecError(f"{arg.name} must be a list of sizes, not {brief(value)}")
        dims = tuple(-1 if v == -1 else to_size(v, arg.name) for v in value)
        if sum(1 for d in dims if d == -1) > 1:
            raise SpecError(f"{arg.name} may contain -1 only once")
        return dims
    raise AssertionError(f"unknown argument type {t!r}")


class Args(Mapping):
    """Normalised arguments of a layer: a read-only mapping with attribute access."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]):
        object.__setattr__(self, "_data", dict(data))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        raise AttributeError("layer arguments are read-only")

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)

    def key(self) -> tuple:
        """A hashable key of the arguments (for caching)."""
        return tuple(sorted(self._data.items(), key=lambda kv: kv[0]))

    def __repr__(self) -> str:
        return "Args(" + ", ".join(f"{k}={v!r}" for k, v in self._data.items()) + ")"


# ---------------------------------------------------------------------------
# Kinds
# ---------------------------------------------------------------------------


class LayerKind:
    """A kind of layer; subclasses set the class attributes and the three rules."""

    name: ClassVar[str]
    family: ClassVar[str] = ""
    #: the input(s) of one application, in the docstring's notation, ending with its rank:
    #: "(rank 3)", "(rank 1 or 2)", "(rank ≥ 1)" or "(any rank)" (docs/spec.md; tests/test_spec_doc.py
    #: checks the rank against what the kind accepts)
    takes: ClassVar[str] = ""
    args: ClassVar[tuple[Arg, ...]] = ()
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int | None] = 1
    spatial: ClassVar[int] = 0  # number of spatial axes (per-axis arguments)
    recurrent: ClassVar[bool] = False
    view: ClassVar[bool] = False  # computes nothing (a view or the identity): takes no step

    # -- arguments -----------------------------------------------------------
    def normalize(self, raw: Mapping[str, Any]) -> Args:
        known = {a.name: a for a in self.args}
        for key in raw:
            if key not in known:
                raise SpecError(
                    f"{self.name} has no argument {key!r}" + nearest(key, known)
                    + (f"; its arguments are: {', '.join(known)}" if known else "; it takes no arguments")
                )
        out = {}
        for a in self.args:
            if a.name in raw and raw[a.name] is not None:
                out[a.name] = normalize_arg(a, raw[a.name], self.spatial)
            elif a.default is REQUIRED:
                raise SpecError(f"{self.name} needs the argument {a.name!r}")
            else:
                out[a.name] = self.default(a, out)
        return Args(out)

    def default(self, a: Arg, so_far: dict) -> Any:
        """Default value of an argument (may depend on earlier ones)."""
        d = a.default
        if a.type in ("sizes", "sizes0", "padding") and not isinstance(d, str):
            return (sympy.Integer(d),) * self.spatial
        if a.type in ("size", "size0") and isinstance(d, int):
            return sympy.Integer(d)
        return d

    def check_arity(self, n: int) -> None:
        lo, hi = self.min_inputs, self.max_inputs
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
            raise SpecError(f"{self.name} takes {want} input(s), but got {n}")

    # -- rules -------------------------------------------------------------------
    def quantities(self, a: Args, inputs: Sequence[Shape]) -> Quantities:
        raise NotImplementedError

    def shape(self, q: Mapping[str, Any]) -> Shape:
        raise NotImplementedError

    def cost(self, q: Mapping[str, Any]) -> Cost:
        raise NotImplementedError

    def weight_shape(self, q: Mapping[str, Any]) -> tuple | None:
        """Shape of the weight matrix another layer may share (``tied_to``), or None."""
        return None

    def timing(self, q: Mapping[str, Any], start_in: sympy.Expr, end_in: sympy.Expr) -> tuple:
        """(first, last) step at which this layer's output is ready, given its input's.

        A parallel layer waits for its whole input and takes one step:
        both are ``end_in + 1``.  Recurrent kinds override this to stream.
        """
        if self.view:
            return start_in, end_in
        end = end_in + 1
        return end, end

    def __repr__(self) -> str:
        return f"<layer kind {self.name}>"


REGISTRY: dict[str, LayerKind] = {}


def register(cls: type[LayerKind]) -> type[LayerKind]:
    """Class decorator: register one instance of the kind under ``cls.name``."""
    if cls.name in REGISTRY:
        raise ValueError(f"layer kind {cls.name!r} is registered twice")
    REGISTRY[cls.name] = cls()
    return cls


def get_kind(name: str) -> LayerKind:
    from . import load_all

    load_all()
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise SpecError(f"unknown op {name!r}" + nearest(str(name), REGISTRY)) from None


# ---------------------------------------------------------------------------
# Shape helpers shared by the families
# ---------------------------------------------------------------------------


def require_rank(shape: Shape, rank: int | tuple[int, ...], what: str) -> None:
    ranks = (rank,) if isinstance(rank, int) else rank
    if len(shape) not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise ShapeError(f"{what} expects an input of rank {want}, but got {fmt_shape(shape)}")


class Quantities(dict):
    """The named sizes of one layer application, and the conditions they need.

    ``conditions`` lists ``(expr, description)`` pairs: symbolic sizes that
    must be >= 1 for the layer to make sense (an output length
    floor((M - W + 2P)/S) + 1, say); they are checked on substitution.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.conditions: list[tuple[sympy.Expr, str]] = []


def require_positive(q: Quantities, expr: sympy.Expr, what: str) -> None:
    """A concrete size must be >= 1; a symbolic one becomes a condition of ``q``."""
    if expr.free_symbols:
        if expr.is_positive is not True:
            q.conditions.append((expr, what))
    elif expr < 1:
        raise ShapeError(f"{what} would be {expr}; it must be at least 1")


def require_divisible(n: sympy.Expr, d: sympy.Expr, what: str) -> None:
    if not (n / d).free_symbols and not (n / d).is_Integer:
        raise ShapeError(f"{what}: {n} is not divisible by {d}")


def broadcast(shapes: Sequence[Shape], what: str) -> Shape:
    """NumPy/PyTorch broadcasting of symbolic shapes: dims must be equal or 1."""
    rank = max(len(s) for s in shapes)
    padded = [(sympy.Integer(1),) * (rank - len(s)) + tuple(s) for s in shapes]
    out = []
    for axis in range(rank):
        dims = [s[axis] for s in padded]
        result = sympy.Integer(1)
        for d in dims:
            if d == 1:
                continue
            if result == 1:
                result = d
            elif not same(result, d):
                raise ShapeError(
                    f"{what} cannot broadcast shapes " + " and ".join(fmt_shape(s) for s in shapes)
                    + f" (dim {axis - rank}: {result} vs {d})"
                )
        out.append(result)
    return tuple(out)


def check_size_condition(expr: sympy.Expr, what: str) -> None:
    """Raise if a concrete size is not a positive integer."""
    try:
        check_concrete(expr, what)
    except SizeError as err:
        raise ShapeError(err.message) from None


CostRule = Callable[[Mapping[str, Any]], Cost]
