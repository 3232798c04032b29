"""Progress bars for long work, on a terminal only.

:func:`progress` wraps an iterable in a tqdm bar that appears only when
standard error is a terminal and the work has already taken about a second
(tqdm's ``delay``); otherwise, or without tqdm, it returns the iterable
unchanged.  :func:`stage` is a bar advanced by hand, for a stage of work that
is not one loop of ours (rendering a derivation through its template).  tqdm
is imported lazily, so short commands never pay for it.
"""

from __future__ import annotations

import sys
from typing import Iterable, TypeVar

T = TypeVar("T")

DELAY_SECONDS = 1.0


def enabled(stream=None) -> bool:
    """Whether a bar may be drawn: standard error (or ``stream``) is a terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "",
             unit: str = "it", stream=None) -> Iterable[T]:
    """``iterable`` with a progress bar when the work is long and stderr is a terminal."""
    if not enabled(stream):
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is a dependency, but a missing bar is no reason to fail
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit=unit, delay=DELAY_SECONDS, leave=False,
                file=stream if stream is not None else sys.stderr, dynamic_ncols=True)


def stage(total: int, *, desc: str, unit: str = "it", stream=None):
    """A bar for ``total`` units advanced by hand (``update``, ``reset``, ``close``), or None when no
    bar may be drawn (not a terminal, or no tqdm)."""
    if not enabled(stream):
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit=unit, delay=DELAY_SECONDS, leave=False,
                file=stream if stream is not None else sys.stderr, dynamic_ncols=True)
