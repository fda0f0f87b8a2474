"""The one stoppable-thread pattern every service thread follows."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# After a step fails, wait this long before the next one, so a persistent fault (a full
# disk, a broken model) logs a few times a second at most instead of spinning a core.
FAILURE_PAUSE_S = 0.5


class Loop:
    """A named daemon thread that calls `step()` until stopped.

    `step` does one unit of work and returns; it must block for at most about a second
    (waits take a timeout) so a stop is noticed. An exception in a step is logged and counted,
    and the loop goes on: one bad photo or call never ends the thread. The owner's `stop`
    Event is shared, so one `set()` ends every loop of a service.
    """

    def __init__(
        self,
        name: str,
        step: Callable[[], None],
        stop: threading.Event,
        *,
        on_start: Callable[[], None] | None = None,
        on_error: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        self.name = name
        self.failures = 0
        self._step = step
        self._stop = stop
        self._on_start = on_start
        self._on_error = on_error
        self._thread: threading.Thread | None = None
        # Held while a thread is made and started: `join` from another thread (a stop racing
        # a start) waits for it rather than finding a thread not started yet, which
        # threading refuses to join (RuntimeError).
        self._starting = threading.Lock()

    def start(self) -> None:
        """Start the thread (again, if a previous one ended)."""
        with self._starting:
            if self.alive:
                return
            thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            thread.start()
            self._thread = thread

    @property
    def alive(self) -> bool:
        """True while the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout_s: float) -> bool:
        """Wait for the thread to end (after the shared stop Event is set); True if it did."""
        with self._starting:
            thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(max(0.0, timeout_s))
        if thread.is_alive():
            log.error("thread %s did not stop within %.1f s", self.name, timeout_s)
            return False
        return True

    def _run(self) -> None:
        if self._on_start is not None:
            try:
                self._on_start()
            except Exception:
                log.exception("starting thread %s failed", self.name)
        while not self._stop.is_set():
            try:
                self._step()
            except Exception as exc:
                self.failures += 1
                log.exception("%s: a step failed; going on", self.name)
                if self._on_error is not None:
                    try:
                        self._on_error(self.name, exc)
                    except Exception:
                        log.exception("%s: reporting a failure failed", self.name)
                self._stop.wait(FAILURE_PAUSE_S)


def join_all(loops: list[Loop], timeout_s: float) -> None:
    """Join several loops within one shared deadline."""
    deadline = time.monotonic() + timeout_s
    for loop in loops:
        loop.join(deadline - time.monotonic())
