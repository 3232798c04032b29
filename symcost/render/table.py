"""The plain-text cost table (``symcost cost``), fitted to a width.

A table that fits its width prints as it always has: one line per layer, a totals row,
then the other totals (``input elements``, ``activations``, ...), one per line.  A wider
one (a symbolic transformer's formulas run to hundreds of characters) is fitted, the way
torchinfo's summary stays on the screen:

* the totals row keeps its output shape and its three totals move under the table,
  beside the other totals (``params``, ``MACs``, ``FLOPs``);
* if every count then fits its column, only the op and shape columns wrap (concrete
  numbers are never broken); otherwise the table is *stacked*: a layer's params, MACs
  and FLOPs one under the other in a ``count | value`` pair of columns, each formula
  wrapping on the width that is left;
* a total too long for its line wraps with a hanging indent.

Text is broken at a space (an operator stays with the term after it: ``+ 4*T``), or inside
a term after ``*`` (never inside ``**``), ``×``, ``/`` or ``(``, and inside a name longer
than its column after ``_``.  Nothing is dropped: joining a cell's lines -- directly after a
line that ends in one of those characters, with one space otherwise -- gives the unwrapped
text back (:func:`unwrap`).  A layer's name is never broken.

The width: :func:`terminal_width` (the ``COLUMNS`` variable, else the terminal's width,
else 100 when the output is not a terminal), at least :data:`MIN_WIDTH`.  ``wide`` prints
the unfitted table whatever the width (``symcost cost --wide``).
"""

from __future__ import annotations

import shutil

from . import _sstr, number, shape_text

#: The width when the output is not a terminal and COLUMNS is unset (a pipe, a file, a notebook).
DEFAULT_WIDTH = 100
#: Narrower widths are taken as this one (a 6-column table cannot be read below it).
MIN_WIDTH = 40

GLUE = "*×/(_·"  # a line broken after one of these continues without a space
HEADER = ("layer", "op", "output shape", "params", "MACs", "FLOPs")
MAX_CELL = 400  # the longest per-layer cell (the zoo's longest is 250): longer ones are cut (--format json has them whole)
_NAME = 0  # the layer names' column, never wrapped
_HANG_MIN = 20  # the least room beside a total's name; with less, the value goes under it


def terminal_width() -> int:
    """``COLUMNS`` if set, else the terminal's width, else :data:`DEFAULT_WIDTH`."""
    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


def text_table(report, width: int | None = None, *, wide: bool = False) -> str:
    """torchinfo-style plain table: one row per layer, a totals row, then the other totals;
    fitted to ``width`` (default :func:`terminal_width`) unless ``wide``."""
    limit = None if wide else max(MIN_WIDTH, terminal_width() if width is None else int(width))
    rows = []
    notes: dict[int, str] = {}  # row index -> a note printed after it (a block used again)
    shown: dict = {}  # a block's breakdown -> the row that showed it
    cut = []

    def cell(text):  # per-layer cells are cut at MAX_CELL: n strided layers would print n² characters
        if len(text) <= MAX_CELL:
            return text
        cut.append(text)
        return text[:MAX_CELL - 1] + "…"

    def add_rows(rep, indent=""):
        for r in rep.rows:
            op = r.op if r.children is None else f"{r.op} ×{number(r.repeat)}"
            rows.append((indent + r.name, op, *(cell(x) for x in (
                shape_text(r.shape), number(r.cost.params), number(r.cost.macs), number(r.cost.flops)))))
            if r.children is not None:
                # A block used again on the same shapes is broken down once: its uses can be
                # exponentially many (each block using the one before twice).
                key = id(r.children.analysis)
                if key in shown:
                    notes[len(rows) - 1] = f"{indent}  (layers as in {shown[key]!r} above)"
                else:
                    shown[key] = (indent + r.name).strip()
                    add_rows(r.children, indent + "  ")

    add_rows(report)
    shape = shape_text(report.output_shapes[0]) if report.output_shapes else ""
    totals = [number(report.params), number(report.macs), number(report.flops)]
    total = ("total", "", shape, *totals)
    extra = []
    header = HEADER
    # Columns are as wide as their cells up to MAX_CELL: a longer total overflows its line (--wide)
    # instead of padding every row to its length (quadratic in a wide model).
    widths = [max(min(len(x[i]), MAX_CELL) for x in [HEADER, total, *rows]) for i in range(len(HEADER))]
    if limit is not None and _span(widths) > limit:  # fitted: the totals go under the table
        total = ("total", "", shape, "", "", "")
        extra = list(zip(("params", "MACs", "FLOPs"), totals))
        widths = _fit([HEADER, total, *rows], limit)
        if any(len(r[i]) > widths[i] for r in rows for i in (3, 4, 5)):  # formulas: one line each
            header, total = STACKED, ("total", "", shape, "", "")
            widths = _fit([header, total, *_stacked(rows)], limit, wide_last=True)
            rows = [(*r[:3], _counts(r[3:], widths[3:])) for r in rows]

    def line(cells):
        lines = [c if isinstance(c, list) else wrap(c, w) if limit is not None else [c] for c, w in zip(cells, widths)]
        if isinstance(cells[-1], list):  # stacked: the labels and values of the counts
            lines = [*lines[:-1], [label for label, _ in cells[-1]], [value for _, value in cells[-1]]]
        right = header is HEADER
        out = []
        for k in range(max(len(x) for x in lines)):
            parts = [x[k] if k < len(x) else "" for x in lines]
            out.append("  ".join(p.ljust(w) if i < 3 or not right or len(x) > 1 else p.rjust(w)
                                 for i, (p, w, x) in enumerate(zip(parts, widths, lines))).rstrip())
        return out

    rule = "-" * _span(widths)
    out = [f"{report.name}  (batch {number(report.batch)}, {report.dtype})", rule, *line(header), rule]
    for i, r in enumerate(rows):
        out += line(r)
        if i in notes:
            out += wrap(notes[i], limit) if limit is not None else [notes[i]]
    out += [rule, *line(total), rule]
    mem = report.memory_bytes
    extra += [
        ("input elements", number(report.input)),
        ("activations", number(report.activations)),
        ("fma_ops (pipelined)", number(report.fma_ops)),
        ("steps (critical path)", number(report.steps)),
        (f"memory params ({report.dtype}, bytes)", number(mem["params"])),
        (f"memory activations ({report.dtype}, bytes)", number(mem["activations"])),
        (f"memory total ({report.dtype}, bytes)", number(mem["total"])),
    ]
    ops_text = ", ".join(f"{k} {number(v)}" for k, v in report.ops.items() if v != 0)
    extra.append(("ops by kind", ops_text or "0"))
    for expr, what in report.conditions:
        extra.append(("condition", f"{cell(_sstr(expr))} >= 1  ({cell(what)})"))
    if cut:
        extra.append(("note", f"{len(cut)} cells longer than {MAX_CELL} characters are cut at …; "
                              "--format json gives them in full"))
    w = max(len(k) for k, _ in extra)
    beside = limit is None or limit - w - 2 >= _HANG_MIN
    for key, value in extra:
        out += _hanging(key.ljust(w) + "  ", value, limit, beside)
    return "\n".join(out) + "\n"


def grid(header, rows, width: int | None = None, *, right: tuple = ()) -> list[str]:
    """A plain table of text cells between rules, fitted to ``width`` (default
    :func:`terminal_width`) as the cost table is: columns take what they need up to a common
    level and their cells wrap (:func:`wrap`); the first column is never broken.  ``right``:
    the indices of right-aligned columns."""
    limit = max(MIN_WIDTH, terminal_width() if width is None else int(width))
    table = [tuple(header), *(tuple(r) for r in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    if _span(widths) > limit:
        widths = _fit(table, limit)

    def line(cells):
        lines = [wrap(c, w) for c, w in zip(cells, widths)]
        return ["  ".join((x[k] if k < len(x) else "").rjust(w) if i in right else
                          (x[k] if k < len(x) else "").ljust(w)
                          for i, (x, w) in enumerate(zip(lines, widths))).rstrip()
                for k in range(max(len(x) for x in lines))]

    rule = "-" * _span(widths)
    return [rule, *line(table[0]), rule, *(text for r in table[1:] for text in line(r)), rule]


#: The stacked view's columns: a layer's three counts one under the other, each on the
#: full remaining width (when a formula would not fit a column of the table).
STACKED = ("layer", "op", "output shape", "count", "value")


def _counts(counts, widths) -> list[tuple[str, str]]:
    """A stacked row's (label, line) pairs: each count's label beside its value's first line."""
    out = []
    for label, value in zip(("params", "MACs", "FLOPs"), counts):
        lines = wrap(value, widths[1])
        out += [(label, lines[0])] + [("", x) for x in lines[1:]]
    return out


def _stacked(rows) -> list[tuple]:
    out = []
    for name, op, shape, *counts in rows:
        for k, (label, value) in enumerate(zip(("params", "MACs", "FLOPs"), counts)):
            out.append((name, op, shape, label, value) if k == 0 else ("", "", "", label, value))
    return out


def _span(widths) -> int:
    return sum(widths) + 2 * (len(widths) - 1)


def _fit(table, limit: int, wide_last: bool = False) -> list[int]:
    """Column widths for ``limit``: every column as wide as it needs up to a common level,
    which is as high as the width allows; no column below its longest unbreakable piece
    (a layer's name is never broken: a name longer than the width widens the table)."""
    count = len(table[0])
    natural = [max(len(r[i]) for r in table) for i in range(count)]
    least = [natural[i] if i == _NAME else max(_longest_piece(r[i]) for r in table) for i in range(count)]
    room = limit - 2 * (count - 1)
    if wide_last:  # the stacked view's formulas: half the width if the rest leaves it, as far as they need it
        least[-1] = min(natural[-1], max(least[-1], min(limit // 2, room - sum(least[:-1]))))
    if sum(least) >= room:
        return least
    lo, hi = 0, max(natural)
    while lo < hi:  # the highest level whose widths still fit
        mid = (lo + hi + 1) // 2
        if sum(min(n, max(m, mid)) for n, m in zip(natural, least)) <= room:
            lo = mid
        else:
            hi = mid - 1
    return [min(n, max(m, lo)) for n, m in zip(natural, least)]


def _longest_piece(text: str) -> int:
    return max((len(a) for word in text.split(" ") for a in _atoms(word, 0)), default=0)


def _hanging(head: str, value: str, limit: int | None, beside: bool) -> list[str]:
    """``head`` then ``value``; a value too long for the line wraps under its first line
    (or, when the heads leave too little room beside them, every value goes under its head, indented)."""
    if limit is None or (beside and len(head) + len(value) <= limit):
        return [(head + value).rstrip()]
    if beside:
        lines = wrap(value, limit - len(head))
        return [head + lines[0]] + [" " * len(head) + x for x in lines[1:]]
    return [head.rstrip()] + ["    " + x for x in wrap(value, limit - 4)]


def _atoms(word: str, width: int | None = None) -> list[str]:
    """``word`` cut after each ``*`` (not inside ``**``), ``×``, ``·``, ``/`` and ``(``; a piece still
    longer than ``width`` (a long name) is cut after its underscores too."""
    out, start = [], 0
    for i, ch in enumerate(word):
        if ch in "*×·/(" and i + 1 < len(word) and not (ch == "*" and "*" in (word[i + 1], word[i - 1:i])):
            out.append(word[start:i + 1])
            start = i + 1
    out.append(word[start:])
    if width is not None:
        out = [p for a in out for p in (_underscores(a) if len(a) > width else [a])]
    return [a for a in out if a]


def _underscores(name: str) -> list[str]:
    parts = name.split("_")
    return [p + "_" for p in parts[:-1]] + parts[-1:]


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken at spaces, and inside a word
    longer than a line after a character of :data:`GLUE` (see :func:`unwrap`).  A piece that
    cannot be broken and is longer than ``width`` stays whole."""
    if len(text) <= width:
        return [text]
    lines: list[str] = []
    current = ""
    for word in _words(text):
        if not word and not current:  # a second space at a line break
            continue
        sep = " " if current else ""
        if len(current) + len(sep) + len(word) <= width:
            current += sep + word
            continue
        if len(word) <= width:  # the word goes whole onto a new line
            lines.append(current)
            current = word
            continue
        for atom in _atoms(word, width):  # a word longer than a line: broken inside, filling this line
            if len(current) + len(sep) + len(atom) <= width or not current:
                current += sep + atom
            else:
                lines.append(current)
                current = atom
            sep = ""
    lines.append(current)
    return [x for x in lines if x] or [""]


def _words(text: str) -> list[str]:
    """``text`` split at its spaces, an operator kept with the term it applies to (``+ 4*T``)."""
    words: list[str] = []
    for word in text.split(" "):
        if words and words[-1] in _OPERATORS:
            words[-1] += " " + word
        else:
            words.append(word)
    return words


_OPERATORS = {"+", "-", ">=", "="}


def unwrap(lines) -> str:
    """The text :func:`wrap` broke into ``lines``."""
    out = ""
    for piece in lines:
        out += piece if not out or out[-1] in GLUE else " " + piece
    return out
