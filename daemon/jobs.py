"""Jobs and the work queue: deduplicated by path, new photos before backlog, re-checks."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Job:
    """One photo to label: where it is, the folder it was found under, where its sidecar goes."""

    path: Path
    root: Path
    sidecar: Path


JobFactory = Callable[[Path, Path], Job]  # (photo, root) -> Job


class JobQueue:
    """Jobs waiting for labelling; a photo is never queued or in flight twice.

    A 100,000-photo backlog is held as path strings pointing at shared root objects (about
    10 MB); the Job, with its sidecar path, is built when the photo is taken.
    """

    def __init__(self, make_job: JobFactory) -> None:
        self._make_job = make_job
        self._cond = threading.Condition()
        self._fresh: OrderedDict[str, Path] = OrderedDict()  # path -> root
        self._backlog: OrderedDict[str, Path] = OrderedDict()
        self._in_flight: set[str] = set()
        self._again: dict[str, Path] = {}  # changed again while in flight: re-check when done
        self._closed = False
        self._interrupts = 0  # bumped by interrupt(): waiting takes return None

    def put(self, path: Path, root: Path, *, fresh: bool = True) -> bool:
        """Queue a photo (fresh: just appeared; else backlog from a scan). False if a no-op."""
        key = str(path)
        with self._cond:
            if self._closed:
                return False
            if key in self._in_flight:
                if fresh:
                    self._again[key] = root
                return False
            if key in self._fresh:
                return False
            if key in self._backlog:
                if not fresh:
                    return False
                del self._backlog[key]  # promoted: someone just touched it
            (self._fresh if fresh else self._backlog)[key] = root
            self._cond.notify()
            return True

    def take(self, timeout_s: float | None = None) -> Job | None:
        """The next job, fresh first; None after `timeout_s` or once closed."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            interrupts = self._interrupts
            while not (self._fresh or self._backlog) or self._closed:
                if self._closed or self._interrupts != interrupts:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            source = self._fresh or self._backlog
            key, root = source.popitem(last=False)
            self._in_flight.add(key)
        return self._make_job(Path(key), root)

    def done(self, path: Path) -> None:
        """Mark a taken photo finished; if it changed meanwhile, queue it again."""
        key = str(path)
        with self._cond:
            self._in_flight.discard(key)
            root = self._again.pop(key, None)
            if root is not None and not self._closed:
                self._fresh[key] = root
                self._cond.notify()

    def pending(self) -> int:
        """Photos waiting (not counting those in flight)."""
        with self._cond:
            return len(self._fresh) + len(self._backlog)

    def in_flight(self) -> int:
        """Photos taken and not yet done."""
        with self._cond:
            return len(self._in_flight)

    def is_queued(self, path: Path) -> bool:
        """True while the photo waits or is in flight."""
        key = str(path)
        with self._cond:
            return key in self._fresh or key in self._backlog or key in self._in_flight

    def interrupt(self) -> None:
        """Make every waiting `take` return None now (a pipeline is stopping)."""
        with self._cond:
            self._interrupts += 1
            self._cond.notify_all()

    def close(self) -> None:
        """Wake every waiter; later puts are ignored and takes return None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
