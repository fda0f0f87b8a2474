"""Hear what watchdog's inotify reader keeps to itself: a queue overflow, an unmount."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from watchdog.observers.api import BaseObserver

log = logging.getLogger(__name__)

# Kernel ABI (linux/inotify.h); not imported from watchdog's inotify_c, which only loads on Linux.
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000


def tap(
    observer: BaseObserver, *, on_overflow: Callable[[], None], on_unmount: Callable[[], None]
) -> bool:
    """Call back on the observer's overflow and unmount events; False if it has no inotify.

    watchdog handles IN_Q_OVERFLOW inside its reader thread (a warning in the log, recursive
    watches rebuilt) and IN_UNMOUNT not at all: neither reaches an event handler, so the
    lost events and the dead watch would go unnoticed. Its reader is an `InotifyFD` thread
    per InotifyObserver, so wrapping that one instance's `handle_event` concerns one folder.
    That reader is private (watchdog 7.1 offers no public way): pyproject pins watchdog below
    its next major, and tests/daemon/watch/test_inotifytap.py fails if it moves.
    """
    reader: Any = getattr(observer, "_inotify_fd", None)
    handle: Callable[[Any], None] | None = getattr(reader, "handle_event", None)
    if handle is None:
        if type(observer).__name__ == "InotifyObserver":  # watchdog changed inside: say so
            log.warning("cannot hear inotify overflows with this watchdog; rescans catch up")
        return False

    def handle_event(event: Any) -> None:
        try:
            handle(event)  # first: watchdog rebuilds its watches before anyone rescans
        finally:
            mask = getattr(event, "mask", 0)
            if mask & IN_Q_OVERFLOW:
                _quietly(on_overflow)
            if mask & IN_UNMOUNT:
                _quietly(on_unmount)

    reader.handle_event = handle_event
    return True


def _quietly(callback: Callable[[], None]) -> None:
    # Runs on watchdog's reader thread: an exception would kill it and every watch with it.
    try:
        callback()
    except Exception:
        log.exception("handling a kernel event failed")
