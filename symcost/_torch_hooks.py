"""The fallback when torch.fx cannot trace a module (placeholder until the hook walk lands)."""

from __future__ import annotations

from .errors import SymcostError


def hook_graph(builder, err):
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    raise SymcostError(f"torch.fx cannot trace {builder.title} ({type(err).__name__}: {first})")
