"""Substitution of sizes: definitions (``T = 2*H``, ``H = 64``) resolved once, in dependency order.

A report holds the definitions it was given -- a spec's ``defaults:``, then the user's
``--set`` and ``--rename`` -- as ``name -> expression``, unresolved.  :func:`resolve` orders
them by their dependencies (a topological sort: ``T = 2*H`` after ``H = 64``) and substitutes
each resolved value into the definitions that use it, exactly once, so that every value is
free of the names that are defined.  A later definition of a name replaces the earlier one
(``--set d_ff=3072`` over the default ``4*d_model``) and ``X = X`` removes X's definition
(``--set d_ff=d_ff`` keeps the default's size symbolic).

- A cycle (``A = A + 1``; ``A = B, B = A``; ``defaults: {A: 2*B, B: 2*A}``) has no value:
  it is an error naming it (``A -> B -> A``).
- The size limits of :mod:`symcost.sizes` apply to every result: a number of more than
  ``2**MAX_BITS`` bits is refused before it is built (``A = B**64, B = C**64, ..., G = 2``
  would need gigabytes), and so is a value of more than ``MAX_TERMS`` terms once multiplied
  out.
"""

from __future__ import annotations

import graphlib
from dataclasses import dataclass
from typing import Mapping

import sympy

from .errors import SizeError, SymbolError
from .sizes import MAX_BITS, MAX_TERMS, bits_bound, expanded_terms, number_bits, symbol


@dataclass(frozen=True)
class Rename:
    """A substitution value giving a size a new name: ``report.subs(T=Rename("tokens"))``,
    ``report.rename(T="tokens")``, ``--rename T=tokens``.  The new name must be a valid size
    name that the model does not have yet (to make T equal to an existing size H, set T=H)."""

    name: str

    def __post_init__(self):
        symbol(self.name)  # a SymbolError for an invalid name


def _show(definitions: Mapping, names) -> str:
    return ", ".join(f"{s.name} = {definitions[s]}" for s in names)


def resolve(definitions: Mapping[sympy.Symbol, sympy.Expr]) -> dict[sympy.Symbol, sympy.Expr]:
    """Each defined symbol's value with every defined symbol substituted (see the module)."""
    defs = {k: v for k, v in definitions.items() if v != k}  # X = X: X stays a free size
    deps = {k: sorted(v.free_symbols & defs.keys(), key=lambda s: s.name) for k, v in defs.items()}
    try:
        order = list(graphlib.TopologicalSorter(deps).static_order())
    except graphlib.CycleError as err:
        cycle = list(reversed(err.args[1]))  # graphlib lists predecessors first: A uses B reads A -> B
        path = " -> ".join(s.name for s in cycle)
        raise SymbolError(f"the sizes refer to each other in a cycle, {path} ({_show(defs, cycle[:-1])}), "
                          f"so they have no value") from None
    resolved: dict[sympy.Symbol, sympy.Expr] = {}
    bits: dict[sympy.Symbol, int] = {}
    for k in order:
        v = defs[k]
        used = deps[k]
        if used:
            if bits_bound(v, bits) > MAX_BITS:  # before sympy builds the number
                raise SizeError(f"{k.name} = {v} would be larger than 2**{MAX_BITS} with "
                                f"{_show(defs, used)} substituted")
            v = v.xreplace({s: resolved[s] for s in used})
            if expanded_terms(v, MAX_TERMS) > MAX_TERMS:
                raise SizeError(f"{k.name} = {defs[k]} would have more than {MAX_TERMS} terms once multiplied out, "
                                f"with {_show(defs, used)} substituted")
        resolved[k] = v
        bits[k] = number_bits(v)
    return resolved
