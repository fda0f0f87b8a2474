"""The tap on watchdog's private inotify reader: fails here first if a watchdog release moves it.

pyproject pins watchdog below its next major for this hook; before raising the pin, this file
is the check (the real overflow is in test_watch_faults.py, and needs root).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from watchdog.events import FileSystemEventHandler
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from dropsight.daemon.watch.inotifytap import IN_Q_OVERFLOW, IN_UNMOUNT, tap


@pytest.fixture
def inotify(tmp_path: Path) -> Iterator[BaseObserver]:
    """A real, running inotify observer on a temp folder."""
    if not sys.platform.startswith("linux"):
        pytest.skip("inotify is Linux's")
    from watchdog.observers.inotify import InotifyObserver

    observer = InotifyObserver()
    observer.schedule(FileSystemEventHandler(), str(tmp_path), recursive=True)
    observer.start()
    try:
        yield observer
    finally:
        observer.stop()
        observer.join(5)


def test_an_inotify_observer_is_tapped_and_its_overflows_and_unmounts_heard(
    inotify: BaseObserver,
) -> None:
    from watchdog.observers.inotify_c import (
        InotifyConstants,
        InotifyEvent,
        Mask,
        WatchDescriptor,
    )

    heard: list[str] = []
    assert tap(
        inotify,
        on_overflow=lambda: heard.append("overflow"),
        on_unmount=lambda: heard.append("unmount"),
    ), "watchdog's inotify reader moved: overflows would go unheard"
    assert (IN_Q_OVERFLOW, IN_UNMOUNT) == (
        InotifyConstants.IN_Q_OVERFLOW,
        InotifyConstants.IN_UNMOUNT,
    )
    reader = inotify._inotify_fd  # type: ignore[attr-defined]
    # Events as the kernel reports them, through watchdog's own handling first.
    reader.handle_event(InotifyEvent(WatchDescriptor(-1), Mask(IN_Q_OVERFLOW), 0, b""))
    reader.handle_event(InotifyEvent(WatchDescriptor(12345), Mask(IN_UNMOUNT), 0, b""))
    assert heard == ["overflow", "unmount"]
    assert inotify.is_alive()


def test_an_observer_without_inotify_is_not_tapped_and_that_is_no_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    observer = PollingObserver(timeout=1.0)
    with caplog.at_level(logging.WARNING):
        assert not tap(observer, on_overflow=lambda: None, on_unmount=lambda: None)
    assert not caplog.records
