"""The work queue: deduplicated paths, new files before backlog, re-checks after in-flight."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from pathlib import Path


class JobQueue:
    """Paths waiting for classification; a path is never queued or in flight twice."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        # str keys: a 100,000-file backlog costs about 10 MB, not a Path object each.
        self._fresh: OrderedDict[str, None] = OrderedDict()
        self._backlog: OrderedDict[str, None] = OrderedDict()
        self._in_flight: set[str] = set()
        self._again: set[str] = set()  # changed again while in flight: re-check when done
        self._closed = False

    def put(self, path: Path, *, fresh: bool = True) -> bool:
        """Queue `path` (fresh: just appeared; else backlog from a scan). False if a no-op."""
        key = str(path)
        with self._cond:
            if self._closed:
                return False
            if key in self._in_flight:
                if fresh:
                    self._again.add(key)
                return False
            if key in self._fresh:
                return False
            if key in self._backlog:
                if not fresh:
                    return False
                del self._backlog[key]  # promoted: someone just touched it
            (self._fresh if fresh else self._backlog)[key] = None
            self._cond.notify()
            return True

    def take(self, max_items: int, timeout_s: float | None = None) -> list[Path]:
        """Up to `max_items` paths, fresh first; waits up to `timeout_s` for the first one."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while not (self._fresh or self._backlog) and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return []
                self._cond.wait(remaining)
            out: list[Path] = []
            for source in (self._fresh, self._backlog):
                while source and len(out) < max_items:
                    key, _ = source.popitem(last=False)
                    self._in_flight.add(key)
                    out.append(Path(key))
            return out

    def done(self, path: Path) -> None:
        """Mark `path` finished; if it changed meanwhile, queue it again for a re-check."""
        key = str(path)
        with self._cond:
            self._in_flight.discard(key)
            if key in self._again:
                self._again.discard(key)
                if not self._closed:
                    self._fresh[key] = None
                    self._cond.notify()

    def pending(self) -> int:
        """Paths waiting (not counting those in flight)."""
        with self._cond:
            return len(self._fresh) + len(self._backlog)

    def in_flight(self) -> int:
        """Paths taken and not yet done."""
        with self._cond:
            return len(self._in_flight)

    def close(self) -> None:
        """Wake every waiter; later puts are ignored."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
