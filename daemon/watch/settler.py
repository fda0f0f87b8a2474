"""Settling: decide when a seen file is complete, then hand it on with its watched folder."""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dropsight.daemon.core.threads import Loop

log = logging.getLogger(__name__)

SETTLE_TICK_S = 0.2  # how often pending files are re-checked while any are pending
IDLE_WAIT_S = 5.0  # with nothing pending: how often the loop wakes (stop() wakes it at once)
# With close-after-write events a file being written is only taken at close; this is the
# safety net for writers that never close (mmap, crashed copies).
CLOSE_WAIT_MAX_S = 120.0

OnComplete = Callable[[Path, Path], object]  # (photo, watched root)


@dataclass
class _Pending:
    root: Path
    size: int
    mtime_ns: int
    since: float
    wait_close: bool  # being written, and the OS will report its close


class Settler:
    """Decides when a file is complete: close-after-write, a rename, or size/mtime quiet.

    `clock` measures the quiet times (injectable, so tests of settling need not sleep);
    `checks` counts the passes over pending files, so a test can wait for one to have run.
    """

    def __init__(
        self,
        on_complete: OnComplete,
        settle_time_s: float,
        on_gone: OnComplete = lambda _photo, _root: None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_complete = on_complete
        self._on_gone = on_gone
        self._settle_s = settle_time_s
        self._clock = clock
        self.checks = 0
        # Photos taken off the books and not yet handed on (queued, or cleaned up after):
        # while any are, the settler is not settled though nothing is pending.
        self._handing = 0
        self._pending: dict[Path, _Pending] = {}
        # Deleted or moved away: cleaned up after if still gone once settled (editors that
        # delete and write anew, and `mv IMG.jpg IMG.jpg.json elsewhere/`, come back or
        # take the sidecar along within that time).
        self._gone: dict[Path, tuple[Path, float]] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.loop = Loop("settler", self._step, self._stop)

    def start(self) -> None:
        """Start the checking thread."""
        self.loop.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the checking thread (pending files are found again by the next scan)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self.loop.join(timeout_s)

    def complete(self, path: Path, root: Path) -> None:
        """The OS says the file is complete (closed after write, or renamed into place)."""
        with self._cond:
            self._pending.pop(path, None)
            self._handing += 1
        try:
            if _regular(path):
                self._on_complete(path, root)
        finally:
            self._handed(1)

    def touch(self, path: Path, root: Path, *, wait_close: bool) -> None:
        """A file appeared or changed: wait for its close event, or for it to stay quiet."""
        try:
            st = path.stat()
        except OSError:
            return  # gone already (a temp file renamed away, a deleted file)
        if not _regular(path, st):
            return
        with self._cond:
            old = self._pending.get(path)
            self._pending[path] = _Pending(
                root,
                st.st_size,
                st.st_mtime_ns,
                self._clock(),
                wait_close or (old is not None and old.wait_close),
            )
            self._cond.notify()

    def gone(self, path: Path, root: Path) -> None:
        """A photo was deleted or moved away: stop tracking it, clean up after it if it stays so."""
        with self._cond:
            self._pending.pop(path, None)
            self._gone[path] = (root, self._clock())
            self._cond.notify()

    def events_lost(self, root: Path) -> None:
        """Events under `root` were lost: a close awaited there may never be reported.

        Such files settle when quiet instead, or they would wait CLOSE_WAIT_MAX_S while
        the rescan that follows a loss skips them as pending.
        """
        with self._cond:
            for p in self._pending.values():
                if p.root == root:
                    p.wait_close = False
            self._cond.notify()

    def is_pending(self, path: Path) -> bool:
        """True while `path` is seen but not yet complete."""
        with self._cond:
            return path in self._pending

    def pending_count(self) -> int:
        """Files seen but not yet complete."""
        with self._cond:
            return len(self._pending)

    def settled(self) -> bool:
        """True when nothing is pending, awaiting clean-up after a deletion, or being handed on."""
        with self._cond:
            return not (self._pending or self._gone or self._handing)

    def _handed(self, count: int, *, checked: bool = False) -> None:
        with self._cond:
            self._handing -= count
            self.checks += checked

    def _due(self, path: Path, p: _Pending, now: float) -> bool:
        try:
            st = path.stat()
        except OSError:
            self._pending.pop(path, None)
            return False
        if (st.st_size, st.st_mtime_ns) != (p.size, p.mtime_ns):
            p.size, p.mtime_ns, p.since = st.st_size, st.st_mtime_ns, now
            return False
        quiet = now - p.since
        if p.wait_close:
            return quiet >= max(CLOSE_WAIT_MAX_S, self._settle_s)
        # An empty file is almost always one still being created; its close event or a
        # later scan takes it if it really stays empty.
        return quiet >= self._settle_s and (st.st_size > 0 or quiet >= CLOSE_WAIT_MAX_S)

    def _step(self) -> None:
        with self._cond:
            if not self._pending and not self._gone:
                self._cond.wait(IDLE_WAIT_S)  # idle: no ticking, no CPU
                return
            self._cond.wait(SETTLE_TICK_S)
            now = self._clock()
            due = [
                (path, p.root) for path, p in list(self._pending.items()) if self._due(path, p, now)
            ]
            for path, _root in due:
                del self._pending[path]
            gone = [(p, r) for p, (r, t) in self._gone.items() if now - t >= self._settle_s]
            for path, _root in gone:
                del self._gone[path]
            self._handing += len(due) + len(gone)
        try:
            self._hand_on(due, gone)
        finally:
            self._handed(len(due) + len(gone), checked=True)

    def _hand_on(self, due: list[tuple[Path, Path]], gone: list[tuple[Path, Path]]) -> None:
        for path, root in due:
            try:
                self._on_complete(path, root)
            except Exception:
                log.exception("handling completed file %s failed", path)
        for path, root in gone:
            try:
                self._on_gone(path, root)
            except Exception:
                log.exception("cleaning up after %s failed", path)


def _regular(path: Path, st: os.stat_result | None = None) -> bool:
    """A FIFO, device or link to /dev/zero named like a photo is no photo (and would hang)."""
    try:
        st = st or path.stat()
    except OSError:
        return True  # gone: the decoder reports it as such
    if stat.S_ISREG(st.st_mode):
        return True
    log.info("%s is not a regular file; ignored", path)
    return False
