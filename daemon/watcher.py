"""Watch folders with watchdog (observing only) and tell the settler what happened."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from dropsight.daemon.candidates import PhotoFilter
from dropsight.daemon.settler import Settler

log = logging.getLogger(__name__)


# Only what settling needs. Without a filter inotify also reports every open and every
# read-only close, so the service would hear its own reads of each photo and sidecar.
EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    DirCreatedEvent,  # a folder moved in: watchdog reports the files inside as created
    DirMovedEvent,
    DirDeletedEvent,
]


def has_close_events(observer: BaseObserver) -> bool:
    """True for Linux inotify, which reports close-after-write."""
    return type(observer).__name__ == "InotifyObserver"


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
                self._settler.complete(dest, self._root)  # renamed into place: complete
            return
        if isinstance(event, DirDeletedEvent) or event.is_directory:
            return
        path = self._accepts(event.src_path)
        if path is None:
            return
        if isinstance(event, FileClosedEvent):
            self._settler.complete(path, self._root)
        elif isinstance(event, FileCreatedEvent):
            # Created alone is also how a file moved in from an unwatched folder shows up.
            self._settler.touch(path, self._root, wait_close=False)
        elif isinstance(event, FileModifiedEvent):
            self._settler.touch(path, self._root, wait_close=self.close_events)
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
        # Every thread watchdog started for this observer (observer, emitters, inotify
        # reader): if any dies, events stop while the rest still looks alive.
        self._threads: list[threading.Thread] = []

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
        before = set(threading.enumerate())
        observer = self._make_observer()
        try:
            observer.schedule(
                self._handler, str(self.root), recursive=self.recursive, event_filter=EVENTS
            )
            observer.start()
        except OSError as exc:
            _stop_quietly(observer)
            if self.mode != "auto":
                self.health.healthy, self.health.error = False, f"cannot watch: {exc}"
                return
            # ENOSPC/EMFILE at the inotify limits: polling still works, just costs more.
            log.warning("native watch of %s failed (%s); polling instead", self.root, exc)
            observer = PollingObserver(timeout=1.0)
            observer.schedule(
                self._handler, str(self.root), recursive=self.recursive, event_filter=EVENTS
            )
            observer.start()
        self._threads = [
            t
            for t in threading.enumerate()
            if t not in before and type(t).__module__.startswith("watchdog")
        ]
        self._observer = observer
        self._handler.close_events = has_close_events(observer)
        self.health.observer_kind = type(observer).__name__
        self.health.healthy, self.health.error = True, None

    def disarm(self, timeout_s: float = 5.0) -> None:
        """Stop the observer, if any."""
        observer, self._observer = self._observer, None
        self._threads = []
        if observer is not None:
            _stop_quietly(observer, timeout_s)

    def _alive(self) -> bool:
        observer = self._observer
        if observer is None or not observer.is_alive():
            return False
        # A polling emitter stops itself when its folder vanishes while the observer lives
        # on, and inotify's reader thread can die alone: every one of them must be alive.
        return all(e.is_alive() for e in observer.emitters) and all(
            t.is_alive() for t in self._threads
        )

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
        if was_armed:
            dead = [t.name for t in self._threads if not t.is_alive()]
            log.warning("the watch of %s stopped (dead threads: %s); re-arming", self.root, dead)
        self.arm()
        if self.health.healthy:
            if was_armed:
                self.health.restarts += 1
            log.info("watching %s again (%s)", self.root, self.health.observer_kind)
            self._on_rearmed(self.root)


def _stop_quietly(observer: BaseObserver, timeout_s: float = 5.0) -> None:
    """Stop and join an observer; a failure to stop one is logged, never raised."""
    try:
        observer.stop()
        if observer.is_alive():
            observer.join(timeout_s)
    except Exception:
        log.exception("stopping an observer failed")
