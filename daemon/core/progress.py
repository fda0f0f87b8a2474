"""Progress bars for long commands: rate and ETA on a terminal, nothing at all when piped."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")
# No monitor thread: it outlives the bar and only corrects refresh rates we do not need.
tqdm.monitor_interval = 0


def on_terminal() -> bool:
    """True when stderr is an interactive terminal (frozen windowed builds have none)."""
    stream = sys.stderr
    return stream is not None and stream.isatty()


def bar(
    total: float | None = None,
    *,
    desc: str = "",
    unit: str = "photo",
    unit_scale: bool = False,
    enabled: bool | None = None,
) -> tqdm[Any]:
    """A tqdm bar on stderr; disabled (prints nothing) unless stderr is a terminal."""
    show = on_terminal() if enabled is None else enabled
    return tqdm(
        total=total,
        desc=desc or None,
        unit=unit,
        unit_scale=unit_scale,
        unit_divisor=1024 if unit == "B" else 1000,
        file=sys.stderr,
        disable=not show,
        dynamic_ncols=True,
        leave=True,
        smoothing=0.1,
    )


def track(
    items: Iterable[T], total: float | None = None, *, desc: str = "", unit: str = "photo"
) -> Iterator[T]:
    """Iterate `items` with a bar (see `bar`); the bar is closed when iteration ends."""
    with bar(total, desc=desc, unit=unit) as b:
        for item in items:
            yield item
            b.update(1)
