"""Jobs and the work queue: deduplicated by path, new photos before backlog, re-checks."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from dropsight.daemon.pipeline.crashguard import SKIP_AFTER


@dataclass(frozen=True, slots=True)
class Job:
    """One photo to label: where it is, the folder it was found under, where its sidecar goes.

    `deaths`: how many abrupt ends of the service found this photo in flight (crashguard).
    """

    path: Path
    root: Path
    sidecar: Path
    deaths: int = 0


class Guard(Protocol):
    """What the queue tells the crash guard (daemon/pipeline/crashguard.py), and asks it."""

    def deaths(self, key: str) -> int: ...
    def taken(self, key: str) -> None: ...
    def done(self, key: str, *, finished: bool = True) -> None: ...


JobFactory = Callable[[Path, Path], Job]  # (photo, root) -> Job


class JobQueue:
    """Jobs waiting for labelling; a photo is never queued or in flight twice.

    A 100,000-photo backlog is held as path strings pointing at shared root objects (about
    10 MB); the Job, with its sidecar path, is built when the photo is taken.
    """

    def __init__(self, make_job: JobFactory, guard: Guard | None = None) -> None:
        self._make_job = make_job
        self._guard = guard
        self._cond = threading.Condition()
        self._fresh: OrderedDict[str, Path] = OrderedDict()  # path -> root
        self._backlog: OrderedDict[str, Path] = OrderedDict()
        # Suspects of killing the service: taken one at a time, with nothing else in flight.
        self._isolated: OrderedDict[str, Path] = OrderedDict()
        self._alone: str | None = None  # the suspect in flight
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
            if key in self._fresh or key in self._isolated:
                return False
            if key in self._backlog:
                if not fresh:
                    return False
                del self._backlog[key]  # promoted: someone just touched it
            if self._guard is not None and 0 < self._guard.deaths(key) < SKIP_AFTER:
                self._isolated[key] = root
            else:
                (self._fresh if fresh else self._backlog)[key] = root
            self._cond.notify()
            return True

    def take(self, timeout_s: float | None = None) -> Job | None:
        """The next job, fresh first; None after `timeout_s` or once closed."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            interrupts = self._interrupts
            while not self._ready() or self._closed:
                if self._closed or self._interrupts != interrupts:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if self._fresh or self._backlog:
                key, root = (self._fresh or self._backlog).popitem(last=False)
            else:
                key, root = self._isolated.popitem(last=False)
                self._alone = key
            self._in_flight.add(key)
        deaths = 0
        if self._guard is not None:
            self._guard.taken(key)
            deaths = self._guard.deaths(key)
        job = self._make_job(Path(key), root)
        return replace(job, deaths=deaths) if deaths else job

    def _ready(self) -> bool:
        """Can a take proceed? Never while a suspect is in flight; suspects only alone."""
        if self._alone is not None:
            return False
        return bool(self._fresh or self._backlog or (self._isolated and not self._in_flight))

    def done(self, path: Path, *, finished: bool = True) -> None:
        """Mark a taken photo finished; if it changed meanwhile, queue it again.

        `finished=False`: handed back unlabelled (stopping, paused); it stays a suspect.
        """
        key = str(path)
        with self._cond:
            self._in_flight.discard(key)
            if self._alone == key:
                self._alone = None
            root = self._again.pop(key, None)
            if root is not None and not self._closed:
                self._fresh[key] = root
            self._cond.notify_all()
        if self._guard is not None:
            self._guard.done(key, finished=finished)

    def put_back(self, path: Path, root: Path) -> None:
        """Hand a taken photo back unlabelled, to be taken again."""
        self.done(path, finished=False)
        self.put(path, root)

    def pending(self) -> int:
        """Photos waiting (not counting those in flight)."""
        with self._cond:
            return len(self._fresh) + len(self._backlog) + len(self._isolated)

    def in_flight(self) -> int:
        """Photos taken and not yet done."""
        with self._cond:
            return len(self._in_flight)

    def is_queued(self, path: Path) -> bool:
        """True while the photo waits or is in flight."""
        key = str(path)
        with self._cond:
            return any(
                key in d for d in (self._fresh, self._backlog, self._isolated, self._in_flight)
            )

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
