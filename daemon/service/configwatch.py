"""Following the config file while the service runs: noticing edits, and what needs a restart."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from dropsight.config.settings import Settings


class ConfigStamp:
    """Notices a changed config file (edited by hand, `dropsight watch add`, the viewer)."""

    def __init__(self, path: Path) -> None:
        self._stamp = _stamp(path)

    def changed(self, path: Path) -> bool:
        """True once per change of `path` since the last call (or since creation)."""
        stamp = _stamp(path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        return True


def restart_needed(old: Settings, new: Settings) -> list[str]:
    """Config sections that changed in ways a running service does not apply."""
    out = []
    if replace(old.watch, folders=()) != replace(new.watch, folders=()):
        out.append("watch")
    # XMP settings apply at once (daemon/outputs/xmp/sync.py); where JSON sidecars go does not.
    if replace(old.output, xmp="off", xmp_name="IMG.jpg.xmp", xmp_min_score=0.0) != replace(
        new.output, xmp="off", xmp_name="IMG.jpg.xmp", xmp_min_score=0.0
    ):
        out.append("output")
    if old.service != new.service:
        out.append("service")
    return out


def _stamp(path: Path) -> tuple[int, int] | None:
    """The file's (mtime, size), or None while it does not exist."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)
