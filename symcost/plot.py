"""The scaling figure: MACs against T on log-log axes, one line per model, its slope labelled.

matplotlib is optional (``pip install 'symcost[plot]'``; the test extra installs it) and is
imported only here, inside the functions, with the non-interactive Agg backend.

The values are the exact counts of each model's formula (derived once, evaluated over the
range with :func:`symcost.sweep.sweep`), at the sizes given with ``--set``; a size that is
neither set nor swept takes its default from :data:`DEFAULT_SIZES` (documented in
docs/scaling.md), and a size without a default is an error that names it.  The slope printed
beside each line is the least-squares slope of log(MACs) against log(T) over the upper half of
the range (where the leading term dominates); the order Θ(·) beside it is the analysis's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .errors import SymcostError

#: Sizes used by ``--plot`` for names that are not given with ``--set``.
DEFAULT_SIZES: dict[str, int] = {
    "I": 64,      # input channels / features
    "H": 64,      # hidden channels / units
    "E": 64,      # embedding (model) width
    "D": 64,      # model width
    "F": 40,      # frequency bins (2-D CNN)
    "K": 3,       # kernel width
    "Kt": 3,      # kernel extent in time
    "Kf": 3,      # kernel extent in frequency
    "L": 1,       # layers
    "V": 1000,    # vocabulary
    "heads": 1,   # attention heads
}

DEFAULT_RANGE = "16:4096:x2"


class PlotError(SymcostError):
    """matplotlib missing, a bad output file, or sizes missing for the figure."""


@dataclass(frozen=True)
class Line:
    """One plotted model: the T values, the exact MACs, the fitted slope and the order text."""

    label: str
    x: tuple[int, ...]
    y: tuple[int, ...]
    slope: float
    order: str


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log y against log x."""
    lx = [math.log(v) for v in x]
    ly = [math.log(v) for v in y]
    n = len(lx)
    mx, my = sum(lx) / n, sum(ly) / n
    sxx = sum((a - mx) ** 2 for a in lx)
    if sxx == 0:
        raise PlotError("a slope needs at least two different values of the swept size")
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sxx


def scaling_lines(reports: Sequence, time: str, values: Sequence[int], *, field: str = "macs",
                  sizes: Mapping[str, Any] | None = None, labels: Sequence[str] | None = None) -> list[Line]:
    """The lines of the figure: each report's ``field`` over ``time`` = ``values``.

    ``sizes`` are the user's sizes (applied where a model has them); other free sizes take
    :data:`DEFAULT_SIZES`.
    """
    from .analysis import order
    from .sweep import field_expr, sweep

    if len(values) < 2:
        raise PlotError(f"the figure needs at least two values of {time}")
    lines = []
    for i, report in enumerate(reports):
        label = labels[i] if labels else report.name
        known = report.known_names()
        if time not in known:
            raise PlotError(f"{label}: the model has no size {time!r} to plot against")
        expr = field_expr(report, field)
        free = {s.name for s in expr.free_symbols} - {time}
        given = {k: v for k, v in (sizes or {}).items() if k in known and k != time}
        missing = sorted(free - set(given) - set(DEFAULT_SIZES))
        if missing:
            raise PlotError(f"{label}: no value for {', '.join(missing)}; give it with --set NAME=VALUE")
        fill = {k: DEFAULT_SIZES[k] for k in free - set(given)}
        r = report.subs({**fill, **given}) if (fill or given) else report
        res = sweep(r, {time: list(values)}, fields=[field])
        y = res.fields[field]
        if any(v <= 0 for v in y):
            raise PlotError(f"{label}: {field} is not positive over the range; a log-log plot needs positive values")
        half = max(2, len(values) // 2 + 1)
        slope = loglog_slope(values[-half:], y[-half:])
        lines.append(Line(label, tuple(values), tuple(y), slope, order(field_expr(r, field), time).text()))
    return lines


def plot_lines(lines: Sequence[Line], path: str, *, time: str = "T", field: str = "macs",
               title: str | None = None):
    """Draw ``lines`` on log-log axes and save to ``path`` (.png or .svg); return the Figure."""
    import os

    ext = os.path.splitext(str(path))[1].lower()
    if ext not in (".png", ".svg"):
        raise PlotError(f"{path}: the figure must be a .png or .svg file")
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotError("--plot needs matplotlib: pip install 'symcost[plot]'") from None

    fig = Figure(figsize=(8.0, 5.2), dpi=120, layout="constrained")
    ax = fig.add_subplot()
    markers = "osD^v<>ph*"
    for i, ln in enumerate(lines):
        (handle,) = ax.loglog(ln.x, [float(v) for v in ln.y], marker=markers[i % len(markers)], markersize=4,
                              linewidth=1.8, label=f"{ln.label}: slope {ln.slope:.2f}, {ln.order}")
        handle.set_gid(ln.label)
    ax.set_xlabel(f"{time} (time steps)")
    ax.set_ylabel("MACs" if field == "macs" else field)
    ax.set_xscale("log", base=2)
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.grid(True, which="major", linewidth=0.6, alpha=0.5)
    ax.grid(True, which="minor", linewidth=0.3, alpha=0.3)
    what = "MACs" if field == "macs" else field
    start = min((ln.x[-max(2, len(ln.x) // 2 + 1)] for ln in lines), default=None)
    ax.set_title(title or f"{what} against {time}, log-log" + (
        f"\nslope: least-squares fit of log {what} against log {time} over {time} ≥ {start:,}"
        if start is not None else ""), fontsize=11)
    ax.legend(loc="upper left", fontsize=9, frameon=False)
    ax.margins(x=0.04)
    try:
        fig.savefig(path, format=ext[1:])
    except OSError as err:
        raise PlotError(f"{path}: cannot write the figure: {err.strerror or err}") from None
    return fig
