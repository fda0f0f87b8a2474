"""A damaged index is set aside (never deleted: it may be evidence) and rebuilt from the
sidecars, which stay the source of truth."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from dropsight.daemon.outputs.index.library import Index, default_path, is_damage

log = logging.getLogger(__name__)


def set_aside(path: Path) -> Path:
    """Move a damaged index (and its -wal, -shm) to `<name>.damaged-<time>`; the new name."""
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(path) + suffix)
        if p.exists():
            p.replace(Path(str(aside) + suffix))
    return aside


def open_repairing(path: Path | None = None) -> tuple[Index, Path | None]:
    """The index, writable; a damaged one is set aside first: (index, where it went or None).

    The new index is empty: the caller rebuilds it (a walk, `index rebuild`).
    """
    path = path or default_path()
    try:
        return Index(path), None
    except Exception as exc:
        if not is_damage(exc):
            raise
        aside = set_aside(path)
        log.warning("the library index was damaged (%s); set aside as %s", exc, aside)
        return Index(path), aside


def damaged_message(aside: Path) -> str:
    """The one line a command says when it set a damaged index aside."""
    return f"the library index was damaged: set aside as {aside.name}, rebuilt from the sidecars"
