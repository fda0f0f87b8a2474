"""Watch folders with watchdog and report files once they are complete."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    DirDeletedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from dropsight.daemon.candidates import PhotoFilter

log = logging.getLogger(__name__)

SETTLE_TICK_S = 0.2  # how often pending files are re-checked while any are pending
# With close-after-write events a file being written is only taken at close; this is the
# safety net for writers that never close (mmap, crashed copies).
CLOSE_WAIT_MAX_S = 120.0

OnComplete = Callable[[Path], None]


def has_close_events(observer: BaseObserver) -> bool:
    """True for Linux inotify, which reports close-after-write."""
    return type(observer).__name__ == "InotifyObserver"


@dataclass
class _Pending:
    size: int
    mtime_ns: int
    since: float
    wait_close: bool  # being written, and the OS will report its close


class Settler:
    """Decides when a file is complete: close-after-write, a rename, or size/mtime quiet."""

    def __init__(self, on_complete: OnComplete, settle_time_s: float) -> None:
        self._on_complete = on_complete
        self._settle_s = settle_time_s
        self._pending: dict[Path, _Pending] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="settler", daemon=True)

    def start(self) -> None:
        """Start the checking thread."""
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the checking thread (pending files are found again by the next scan)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def complete(self, path: Path) -> None:
        """The OS says the file is complete (closed after write, or renamed into place)."""
        with self._cond:
            self._pending.pop(path, None)
        self._on_complete(path)

    def touch(self, path: Path, *, wait_close: bool) -> None:
        """A file appeared or changed: wait for its close event, or for it to stay quiet."""
        try:
            st = path.stat()
        except OSError:
            return  # gone already (a temp file renamed away, a deleted file)
        with self._cond:
            old = self._pending.get(path)
            self._pending[path] = _Pending(
                st.st_size,
                st.st_mtime_ns,
                time.monotonic(),
                wait_close or (old is not None and old.wait_close),
            )
            self._cond.notify()

    def forget(self, path: Path) -> None:
        """Stop tracking a deleted or moved-away file."""
        with self._cond:
            self._pending.pop(path, None)

    def is_pending(self, path: Path) -> bool:
        """True while `path` is seen but not yet complete."""
        with self._cond:
            return path in self._pending

    def pending_count(self) -> int:
        """Files seen but not yet complete."""
        with self._cond:
            return len(self._pending)

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

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()  # idle: no ticking, no CPU
                if self._stopping:
                    return
                self._cond.wait(SETTLE_TICK_S)
                if self._stopping:
                    return
                now = time.monotonic()
                due = [path for path, p in list(self._pending.items()) if self._due(path, p, now)]
                for path in due:
                    del self._pending[path]
            for path in due:
                try:
                    self._on_complete(path)
                except Exception:
                    log.exception("handling completed file %s failed", path)


class _Handler(FileSystemEventHandler):
    """Maps watchdog events to the settler; never lets an exception reach the observer."""

    def __init__(self, root: Path, photo_filter: PhotoFilter, settler: Settler) -> None:
        self._root = root
        self._filter = photo_filter
        self._settler = settler
        self.close_events = False  # set when armed: inotify reports close-after-write

    def _accepts(self, raw: str | bytes) -> Path | None:
        path = Path(os.fsdecode(raw))
        try:
            return path if self._filter.accepts(path, self._root) else None
        except ValueError:  # outside the root (a move to elsewhere)
            return None

    def on_any_event(self, event: FileSystemEvent) -> None:
        # watchdog's dispatch has no try/except: an exception here would kill the observer.
        try:
            self._dispatch(event)
        except Exception:
            log.exception("error handling %r", event)

    def _dispatch(self, event: FileSystemEvent) -> None:
        if isinstance(event, FileMovedEvent):
            src = self._accepts(event.src_path)
            if src is not None:
                self._settler.forget(src)
            dest = self._accepts(event.dest_path)
            if dest is not None:
                self._settler.complete(dest)  # renamed into place: already complete
            return
        if isinstance(event, DirDeletedEvent) or event.is_directory:
            return
        path = self._accepts(event.src_path)
        if path is None:
            return
        if isinstance(event, FileClosedEvent):
            self._settler.complete(path)
        elif isinstance(event, FileCreatedEvent):
            # Created alone is also how a file moved in from an unwatched folder shows up.
            self._settler.touch(path, wait_close=False)
        elif isinstance(event, FileModifiedEvent):
            self._settler.touch(path, wait_close=self.close_events)
        elif event.event_type == "deleted":
            self._settler.forget(path)


@dataclass
class FolderHealth:
    """One watched folder's state as status reports it."""

    path: Path
    healthy: bool = False
    error: str | None = None
    observer_kind: str = ""
    restarts: int = 0


class FolderWatch:
    """One watched folder: its observer, re-armed when it dies or the folder comes back."""

    def __init__(
        self,
        root: Path,
        *,
        recursive: bool,
        mode: str,
        photo_filter: PhotoFilter,
        settler: Settler,
        on_rearmed: Callable[[Path], None],
    ) -> None:
        self.root = root
        self.recursive = recursive
        self.mode = mode
        self.health = FolderHealth(root)
        self._handler = _Handler(root, photo_filter, settler)
        self._settler = settler
        self._on_rearmed = on_rearmed
        self._observer: BaseObserver | None = None

    def _make_observer(self) -> BaseObserver:
        if self.mode == "polling":
            return PollingObserver(timeout=1.0)
        return Observer()

    def arm(self) -> None:
        """Start observing, falling back to polling when the OS refuses (watch limits)."""
        self.disarm()
        if not self.root.is_dir():
            self.health.healthy = False
            self.health.error = "folder not found (waiting for it to come back)"
            return
        if not os.access(self.root, os.R_OK | os.X_OK):
            self.health.healthy = False
            self.health.error = "folder not readable (permission denied)"
            return
        observer = self._make_observer()
        try:
            observer.schedule(self._handler, str(self.root), recursive=self.recursive)
            observer.start()
        except OSError as exc:
            if self.mode != "auto":
                self.health.healthy, self.health.error = False, f"cannot watch: {exc}"
                return
            # ENOSPC/EMFILE at the inotify limits: polling still works, just costs more.
            log.warning("native watch of %s failed (%s); polling instead", self.root, exc)
            observer = PollingObserver(timeout=1.0)
            observer.schedule(self._handler, str(self.root), recursive=self.recursive)
            observer.start()
        self._observer = observer
        self._handler.close_events = has_close_events(observer)
        self.health.observer_kind = type(observer).__name__
        self.health.healthy, self.health.error = True, None

    def disarm(self, timeout_s: float = 5.0) -> None:
        """Stop the observer, if any."""
        observer, self._observer = self._observer, None
        if observer is not None:
            try:
                observer.stop()
                if observer.is_alive():
                    observer.join(timeout_s)
            except Exception:
                log.exception("stopping the observer of %s failed", self.root)

    def _alive(self) -> bool:
        observer = self._observer
        if observer is None or not observer.is_alive():
            return False
        # A polling emitter stops itself when its folder vanishes while the observer lives on.
        return all(e.is_alive() for e in observer.emitters)

    def check(self) -> None:
        """Re-arm a dead observer or a folder that came back; report a vanished folder."""
        exists = self.root.is_dir()
        if self._observer is not None and exists and self._alive():
            return
        if not exists:
            if self.health.healthy or self._observer is not None:
                log.warning("watched folder %s disappeared", self.root)
                self.disarm()
            self.health.healthy = False
            self.health.error = "folder not found (waiting for it to come back)"
            return
        was_armed = self._observer is not None
        self.arm()
        if self.health.healthy:
            if was_armed:
                self.health.restarts += 1
            log.info("watching %s again (%s)", self.root, self.health.observer_kind)
            self._on_rearmed(self.root)
