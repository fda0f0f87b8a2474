"""A sink's share of the scanner's walks, run in order on a thread of the sink's own."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from dropsight.daemon.core.threads import Loop

WAIT_S = 0.5  # an idle follower re-checks its stop flag this often


class Follower:
    """Runs queued work one piece at a time, in order, on its own thread (started lazily).

    The scanner's thread only queues (its walk is never held up by the index or XMP);
    `close()` drops what is still queued: the next walk redoes it.
    """

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._loop = Loop(name, self._step, self._stop)
        self._lock = threading.Lock()

    @property
    def stopped(self) -> threading.Event:
        """Set once close() was called: long work checks it to end early."""
        return self._stop

    def put(self, work: Callable[[], None]) -> None:
        """Queue a piece of work."""
        with self._lock:
            if self._stop.is_set():
                return
            self._loop.start()
        self._queue.put(work)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop after the current piece; wait for the thread."""
        with self._lock:
            self._stop.set()
        self._loop.join(timeout_s)

    def _step(self) -> None:
        try:
            work = self._queue.get(timeout=WAIT_S)
        except queue.Empty:
            return
        work()
