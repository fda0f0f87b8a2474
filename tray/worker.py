"""Background work for Tk windows: one thread runs tasks, the window drains the results."""

from __future__ import annotations

import logging
import queue
import threading
import tkinter as tk
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 2.0


class Worker:
    """One background thread for everything that may block: HTTP calls, image decoding, SQL.

    Results come back on `results` as (kind, value), or (kind + "!", error): Tk may only be
    touched from its own thread, which drains them.
    """

    _STOP = object()

    def __init__(
        self, results: queue.Queue[tuple[str, Any]], *, name: str, backlog: int = 64
    ) -> None:
        self._tasks: queue.Queue[Any] = queue.Queue(maxsize=backlog)
        self._results = results
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, kind: str, task: Callable[[], Any]) -> bool:
        """Queue a task; False when the worker is too far behind (the task is dropped)."""
        try:
            self._tasks.put_nowait((kind, task))
        except queue.Full:
            log.warning("%s busy: dropped a %s task", self._thread.name, kind)
            return False
        return True

    def _run(self) -> None:
        while True:
            item = self._tasks.get()
            if item is self._STOP:
                return
            kind, task = item
            try:
                self._results.put((kind, task()))
            except Exception as exc:
                # One failed task (a service gone away, a broken image) never ends the thread.
                log.debug("%s: task %s failed: %s", self._thread.name, kind, exc)
                self._results.put((kind + "!", exc))

    def stop(self) -> None:
        """Wake the thread with a sentinel and join it within a timeout."""
        try:
            self._tasks.put(self._STOP, timeout=JOIN_TIMEOUT_S)
        except queue.Full:
            log.warning("%s: queue full at stop", self._thread.name)
        self._thread.join(JOIN_TIMEOUT_S)


def is_open(window: tk.Misc) -> bool:
    """Whether a window still exists (closed by its button or destroyed with its parent)."""
    try:
        return bool(window.winfo_exists())
    except tk.TclError:
        return False
