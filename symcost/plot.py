"""The scaling figure: MACs against T on log-log axes, one line per model, its slope labelled.

matplotlib is optional (``pip install 'symcost[plot]'``; the test extra installs it) and is
imported only here, inside the functions, with the non-interactive Agg backend.

The values are the exact counts of each model's formula (derived once, evaluated over the
range with :func:`symcost.sweep.sweep`), at the sizes given with ``--set``; a size that is
neither set nor swept takes its default from :data:`DEFAULT_SIZES` (documented in
docs/scaling.md).  The defaults are chosen by the size's *name*, the same for every model, so
the lines of one figure are comparable; the figure states every size it put in (the legend's
title: ``sizes: E = 16 (set); H = 64, I = 64 (defaults: pass --set to change)``), and the sizes
without a default, of every model, are named in one error.  The slope printed
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
    given: tuple[tuple[str, str], ...] = ()       # sizes of this line set by the user: (name, value)
    defaults: tuple[tuple[str, int], ...] = ()    # sizes filled from DEFAULT_SIZES: (name, value)


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
    :data:`DEFAULT_SIZES`, and each line records which it took (``given``, ``defaults``).  The
    models without ``time`` and the sizes without a default are refused together, in one error.
    """
    from .analysis import order
    from .sweep import field_expr, sweep

    if len(values) < 2:
        raise PlotError(f"the figure needs at least two values of {time}")
    names = [labels[i] if labels else r.name for i, r in enumerate(reports)]
    timeless = [label for label, r in zip(names, reports) if time not in r.known_names()]
    if timeless:
        raise PlotError(f"{', '.join(timeless)}: no size {time!r} to plot against")
    prepared, missing = [], {}
    for label, report in zip(names, reports):
        known = report.known_names()
        given = {k: v for k, v in (sizes or {}).items() if k in known and k != time}
        r = report.subs(given) if given else report
        free = {s.name for s in field_expr(r, field).free_symbols} - {time}
        for name in sorted(free - set(DEFAULT_SIZES)):
            missing.setdefault(name, []).append(label)
        used = {s.name for s in field_expr(report, field).free_symbols}
        prepared.append((label, r, {k: v for k, v in given.items() if k in used},
                         {k: DEFAULT_SIZES[k] for k in sorted(free & set(DEFAULT_SIZES))}))
    if missing:
        need = "; ".join(f"{name} ({', '.join(labels_)})" for name, labels_ in sorted(missing.items()))
        raise PlotError(f"the figure needs a value for every size but {time}, and these have no default: "
                        f"{need}; give each with --set NAME=VALUE")
    lines = []
    for label, r, given, fill in prepared:
        r = r.subs(fill) if fill else r
        res = sweep(r, {time: list(values)}, fields=[field])
        y = res.fields[field]
        if any(v <= 0 for v in y):
            raise PlotError(f"{label}: {field} is not positive over the range; a log-log plot needs positive values")
        half = max(2, len(values) // 2 + 1)
        slope = loglog_slope(values[-half:], y[-half:])
        lines.append(Line(label, tuple(values), tuple(y), slope, order(field_expr(r, field), time).text(),
                          given=tuple((k, _value_text(v)) for k, v in sorted(given.items())),
                          defaults=tuple(fill.items())))
    return lines


def _value_text(value: Any) -> str:
    """A size as the note prints it: 4,096 for a number, the user's text for an expression."""
    from .render import number
    from .sizes import parse_size

    try:
        expr = parse_size(value) if isinstance(value, str) else value
    except SymcostError:
        return str(value)
    return number(expr)


def sizes_note(lines: Sequence[Line]) -> str:
    """What the figure says about its sizes: ``sizes: E = 16 (set); H = 64, I = 64 (defaults: pass
    --set to change)``, or '' when no size was put in."""
    given: dict[str, str] = {}
    defaults: dict[str, int] = {}
    for ln in lines:
        given.update(ln.given)
        defaults.update(ln.defaults)
    parts = []
    if given:
        parts.append(", ".join(f"{k} = {v}" for k, v in sorted(given.items())) + " (set)")
    if defaults:
        parts.append(", ".join(f"{k} = {v:,}" for k, v in sorted(defaults.items()))
                     + " (defaults: pass --set to change)")
    return "sizes: " + "; ".join(parts) if parts else ""


def mpl_text(text: str) -> str:
    """Text that matplotlib draws as written: every ``$`` escaped, so no mathtext is parsed
    (``$\\input{x}$`` in a file name would otherwise be a mathtext error)."""
    return str(text).replace("$", r"\$")


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
                              linewidth=1.8, label=mpl_text(f"{ln.label}: slope {ln.slope:.2f}, {ln.order}"))
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
    ax.set_title(mpl_text(title) if title else f"{what} against {time}, log-log" + (
        f"\nslope: least-squares fit of log {what} against log {time} over {time} ≥ {start:,}"
        if start is not None else ""), fontsize=11)
    import textwrap

    note = sizes_note(lines)  # every size put in is on the figure, next to the lines it made
    ax.legend(loc="upper left", fontsize=9, frameon=False, title_fontsize=9, alignment="left",
              title=mpl_text("\n".join(textwrap.wrap(note, 70, break_on_hyphens=False, break_long_words=False))) if note else None)
    ax.margins(x=0.04)
    try:
        fig.savefig(path, format=ext[1:])
    except OSError as err:
        raise PlotError(f"{path}: cannot write the figure: {err.strerror or err}") from None
    return fig
