"""Watch folders with watchdog (observing only) and tell the settler what happened."""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
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

from dropsight.daemon.photos.filter import PhotoFilter
from dropsight.daemon.watch.inotifytap import tap
from dropsight.daemon.watch.settler import Settler

log = logging.getLogger(__name__)


# Only what settling needs. Without a filter inotify also reports every open and every
# read-only close, so the service would hear its own reads of each photo and sidecar.
EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    FileAttribEvent,  # chmod/chown (and touch): may make a photo we could not read readable
    DirCreatedEvent,  # a folder moved in: watchdog reports the files inside as created
    DirMovedEvent,
    DirDeletedEvent,
]


def has_close_events(observer: BaseObserver) -> bool:
    """True for Linux inotify, which reports close-after-write."""
    return type(observer).__name__ == "InotifyObserver"


Identity = tuple[int, int]  # (st_dev, st_ino) of a watched folder


class _Handler(FileSystemEventHandler):
    """Maps watchdog events to the settler; never lets an exception reach the observer."""

    def __init__(
        self,
        root: Path,
        photo_filter: PhotoFilter,
        settler: Settler,
        *,
        retry: Callable[[Path], bool],
        on_lost: Callable[[str], None],
    ) -> None:
        self._root = root
        self._filter = photo_filter
        self._settler = settler
        self._retry = retry
        self._on_lost = on_lost
        self.close_events = False  # set when armed: inotify reports close-after-write
        # What the observer watches: the root with symlinks resolved (set when armed).
        self.target = root

    def _accepts(self, raw: str | bytes) -> Path | None:
        path = Path(os.fsdecode(raw))
        try:
            if self.target != self._root:  # reported under the link's target: map it back
                path = self._root / path.relative_to(self.target)
            return path if self._filter.accepts(path, self._root) else None
        except ValueError:  # outside the root (a move to elsewhere)
            return None

    def on_any_event(self, event: FileSystemEvent) -> None:
        # watchdog's dispatch has no try/except: an exception here would kill the observer.
        try:
            self._dispatch(event)
        except Exception:
            log.exception("error handling %r", event)
            try:
                self._on_lost("an event could not be handled")  # a rescan finds its photo
            except Exception:
                log.exception("reporting a lost event failed")

    def _dispatch(self, event: FileSystemEvent) -> None:
        if isinstance(event, FileMovedEvent):
            src = self._accepts(event.src_path)
            if src is not None:
                self._settler.gone(src, self._root)
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
        elif isinstance(event, FileAttribEvent):
            # Only a photo that failed as unreadable and opens now: not every touch, and
            # never our own reads (reading changes no attribute that inotify reports).
            if self._retry(path):
                log.info("%s is readable now; labelling it", path)
                self._settler.touch(path, self._root, wait_close=False)
        elif isinstance(event, FileCreatedEvent):
            # Created alone is also how a file moved in from an unwatched folder shows up.
            self._settler.touch(path, self._root, wait_close=False)
        elif isinstance(event, FileModifiedEvent):
            self._settler.touch(path, self._root, wait_close=self.close_events)
        elif event.event_type == "deleted":
            self._settler.gone(path, self._root)


@dataclass
class FolderHealth:
    """One watched folder's state as status reports it."""

    path: Path
    healthy: bool = False
    error: str | None = None
    observer_kind: str = ""
    restarts: int = 0
    lost: int = 0  # times events were lost (queue overflow, a failed handler): rescanned


class FolderWatch:
    """One watched folder: its observer, re-armed when it dies, goes stale or comes back.

    `root` stays the configured path (status, sidecar paths); a symlink is resolved only
    for the observer, which watches inodes: a link pointing elsewhere, a folder replaced
    at the same path or a file system mounted over it leave the observer on the old one,
    so `check` compares the root's identity (device, inode) with the one armed.
    """

    def __init__(
        self,
        root: Path,
        *,
        recursive: bool,
        mode: str,
        photo_filter: PhotoFilter,
        settler: Settler,
        rescan: Callable[[Path], None],
        on_error: Callable[[Path, str], None] = lambda _root, _message: None,
        retry: Callable[[Path], bool] = lambda _path: False,
    ) -> None:
        self.root = root
        self.recursive = recursive
        self.mode = mode
        self.health = FolderHealth(root)
        self._handler = _Handler(root, photo_filter, settler, retry=retry, on_lost=self.lost)
        self._settler = settler
        self._rescan = rescan
        self._on_error = on_error
        self._observer: BaseObserver | None = None
        # Every thread watchdog started for this observer (observer, emitters, inotify
        # reader): if any dies, events stop while the rest still looks alive.
        self._threads: list[threading.Thread] = []
        self._identity: Identity | None = None  # of the folder the observer watches
        self._unmounted = False  # inotify said the watched file system went away

    def _make_observer(self) -> BaseObserver:
        if self.mode == "polling":
            return PollingObserver(timeout=1.0)
        return Observer()

    def arm(self) -> None:
        """Start observing, falling back to polling when the OS refuses (watch limits)."""
        self.disarm()
        # Identity first: if the folder changes between here and the watch, the next
        # check sees a mismatch and arms again (a spare rescan, never a missed folder).
        identity = _identity(self.root)
        if identity is None:
            self.health.healthy = False
            self.health.error = "folder not found (waiting for it to come back)"
            return
        if not os.access(self.root, os.R_OK | os.X_OK):
            self.health.healthy = False
            self.health.error = "folder not readable (permission denied)"
            return
        # inotify does not follow a symlinked root (watchdog adds IN_DONT_FOLLOW), and
        # following links below it could leave the tree: watch the target, map paths back.
        target = Path(os.path.realpath(self.root))
        self._handler.target = target
        before = set(threading.enumerate())
        observer = self._make_observer()
        try:
            observer.schedule(
                self._handler, str(target), recursive=self.recursive, event_filter=EVENTS
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
                self._handler, str(target), recursive=self.recursive, event_filter=EVENTS
            )
            observer.start()
        self._threads = [
            t
            for t in threading.enumerate()
            if t not in before and type(t).__module__.startswith("watchdog")
        ]
        self._observer = observer
        self._identity, self._unmounted = identity, False
        tap(observer, on_overflow=self._overflowed, on_unmount=self._unmount)
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

    def lost(self, why: str) -> None:
        """Events for this folder were lost: rescan it, and say so in status."""
        self.health.lost += 1
        message = f"events were lost in {self.root} ({why}); rescanning it"
        log.warning("%s", message)
        self._on_error(self.root, message)
        self._settler.events_lost(self.root)
        self._rescan(self.root)

    def _overflowed(self) -> None:
        self.lost("the inotify queue overflowed")

    def _unmount(self) -> None:
        # The watches are gone, but a file system mounted again in under 2 s has the same
        # identity: remember it for `check` (which runs on the supervisor's thread).
        self._unmounted = True

    def check(self) -> None:
        """Re-arm a dead or stale observer or a folder that came back; report a vanished one.

        Cheap enough for every 2 s: one stat of the root (plus a look at the threads).
        """
        identity = _identity(self.root)
        exists = identity is not None
        stale = self._observer is not None and (identity != self._identity or self._unmounted)
        if self._observer is not None and exists and not stale and self._alive():
            return
        if not exists:
            if self.health.healthy or self._observer is not None:
                log.warning("watched folder %s disappeared", self.root)
                self.disarm()
            self.health.healthy = False
            self.health.error = "folder not found (waiting for it to come back)"
            return
        was_armed = self._observer is not None
        if stale and self._unmounted:
            log.warning("a file system under %s was unmounted; re-arming", self.root)
        elif stale:
            log.warning(
                "%s is another folder now (replaced, mounted over or a link changed); re-arming",
                self.root,
            )
        elif was_armed:
            dead = [t.name for t in self._threads if not t.is_alive()]
            log.warning("the watch of %s stopped (dead threads: %s); re-arming", self.root, dead)
        self.arm()
        if self.health.healthy:
            if was_armed:
                self.health.restarts += 1
            log.info("watching %s again (%s)", self.root, self.health.observer_kind)
            self._settler.events_lost(self.root)  # closes nobody heard
            self._rescan(self.root)  # whatever arrived while nobody listened


def _identity(folder: Path) -> Identity | None:
    """The folder's (device, inode), following symlinks; None if it is not a folder now."""
    try:
        st = folder.stat()
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def _stop_quietly(observer: BaseObserver, timeout_s: float = 5.0) -> None:
    """Stop and join an observer; a failure to stop one is logged, never raised."""
    try:
        observer.stop()
        if observer.is_alive():
            observer.join(timeout_s)
    except Exception:
        log.exception("stopping an observer failed")
