"""An output's own thread: its calls run there in order, behind a bounded backlog."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from dropsight.daemon.core.threads import Loop

log = logging.getLogger(__name__)

WAIT_S = 0.5  # an idle worker (or a caller waiting for room) re-checks its flags this often
SLOW_S = 10.0  # a caller waiting this long for room says so in the log


@dataclass(frozen=True)
class _Work:
    run: Callable[[], None]
    photos: int  # its share of the backlog
    redoable: bool  # a later walk does it again: dropped when closing


class Worker:
    """Runs one output's work on a thread of its own (started on first use), in order.

    At most `backlog` photos' worth of results (and `walk_backlog` of walked photos, work a
    later walk redoes) waits; callers then wait for room or skip. `close(deadline)` drops
    redoable work, lets the rest finish until the deadline, then runs the output's last
    call; past the deadline what is left is dropped, and a call stuck beyond it is left
    behind on its daemon thread.
    """

    def __init__(self, backlog: int, walk_backlog: int, name: str = "output") -> None:
        self.name = name
        self.closing = threading.Event()  # handed to the output: redoable work may end early
        self._limit = {False: max(1, backlog), True: max(1, walk_backlog)}  # by redoable
        self._cond = threading.Condition()
        self._work: deque[_Work] = deque()
        self._size = {False: 0, True: 0}  # photos queued, by redoable
        self._deadline = float("inf")
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._last: Callable[[], None] | None = None
        self._loop = Loop(f"output-{name}", self._step, self._stop)
        self.skipped = 0  # photos whose work was skipped: the backlog was full

    def name_after(self, name: str) -> None:
        """Take the output's name (for logs and the thread's name), before first use."""
        self.name = name
        self._loop.name = f"output-{name}"

    def time_left(self) -> float:
        """Seconds before the close deadline (infinite until closing began)."""
        return self._deadline - time.monotonic()

    def put(
        self,
        run: Callable[[], None],
        photos: int = 1,
        *,
        wait_until: Callable[[], float] | None = None,
        redoable: bool = False,
    ) -> bool:
        """Queue work worth `photos` (0: a marker, which always fits); False when it was
        skipped (backlog full, or closing).

        With `wait_until` (a time.monotonic() deadline, asked afresh as it may change), a
        full backlog holds the caller until there is room or that time; else it skips.
        """
        waited_since = time.monotonic()
        warned = False
        size, limit = self._size, self._limit[redoable]
        with self._cond:
            while photos and size[redoable] and size[redoable] + photos > limit:
                left = wait_until() - time.monotonic() if wait_until is not None else 0.0
                if left <= 0 or self.closing.is_set():
                    self._skip(photos)
                    return False
                if not warned and time.monotonic() - waited_since > SLOW_S:
                    warned = True
                    log.warning("output %s is behind; its callers wait for it", self.name)
                self._cond.wait(min(WAIT_S, left))
            if self.closing.is_set():
                return False
            self._work.append(_Work(run, photos, redoable))
            size[redoable] += photos
            self._cond.notify_all()
            self._loop.start()  # under the lock: callers on several threads start one thread
        return True

    def _skip(self, photos: int) -> None:
        before, self.skipped = self.skipped, self.skipped + photos
        if before == 0 or before // 100 != self.skipped // 100:
            log.warning("output %s is too slow: %d photos skipped", self.name, self.skipped)

    def close(self, deadline: float, last: Callable[[], None]) -> None:
        """Begin closing (non-blocking): drop redoable work, finish the rest, then `last`."""
        with self._cond:
            self._deadline = deadline
            self.closing.set()
            self._work = deque(w for w in self._work if not w.redoable)
            self._size[True] = 0
            self._last = last
            self._cond.notify_all()
            self._loop.start()  # a worker never used closes on a thread of its own as well

    def wait_closed(self) -> bool:
        """Wait until closed or the deadline passed; True if the output closed in time."""
        if self._finished.wait(max(0.0, self.time_left())):
            return True
        self._stop.set()  # the thread ends after the call it is stuck in
        log.error("output %s did not finish by its close deadline; left behind", self.name)
        return False

    def _step(self) -> None:
        dropped = 0
        with self._cond:
            if not self._work and not self.closing.is_set():
                self._cond.wait(WAIT_S)
            if self.closing.is_set() and (not self._work or self.time_left() <= 0):
                dropped, self._work = len(self._work), deque()
                work = None
            else:
                work = self._work.popleft() if self._work else None
            if work is not None:
                self._size[work.redoable] -= work.photos
                self._cond.notify_all()  # room for a caller waiting
        if work is None:
            if self.closing.is_set():
                if dropped:
                    log.warning("output %s: %d pieces of work dropped at close", self.name, dropped)
                self._finish()
            return
        try:
            work.run()
        except Exception:  # one photo's or one walk's trouble, never the output's thread
            log.exception("output %s failed", self.name)

    def _finish(self) -> None:
        last, self._last = self._last, None
        try:
            if last is not None:
                last()
        except Exception:
            log.exception("closing output %s failed", self.name)
        finally:
            self._stop.set()
            self._finished.set()
