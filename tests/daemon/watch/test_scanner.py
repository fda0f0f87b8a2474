"""The scan barrier: a request is covered only by a scan that began after it."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from dropsight.config.settings import Settings, WatchSettings
from dropsight.daemon.outputs import sidecar
from dropsight.daemon.outputs.registry import Found
from dropsight.daemon.photos.filter import PhotoFilter
from dropsight.daemon.pipeline.jobs import JobQueue
from dropsight.daemon.pipeline.wiring import job_factory
from dropsight.daemon.watch.scanner import Scanner
from dropsight.daemon.watch.settler import Settler
from tests.daemon.helpers import FAKE_FINGERPRINT, make_photo


class HeldWalk:
    """A walk observer that holds the first walk until released (a scan under way)."""

    def __init__(self) -> None:
        self.walking, self.release = threading.Event(), threading.Event()
        self.walks: list[list[Path]] = []

    def walk_started(self, root: Path) -> None:
        self.walks.append([])
        self.walking.set()
        self.release.wait(10)

    def walked(self, found: Sequence[Found]) -> None:
        self.walks[-1].extend(photo for photo, _root, _sidecar in found)

    def walk_finished(self, root: Path, complete: bool) -> None:
        pass


@pytest.fixture
def scanning(tmp_path: Path) -> Iterator[tuple[Scanner, HeldWalk, JobQueue]]:
    settings = Settings(watch=WatchSettings(folders=(tmp_path,), rescan_interval_s=0))
    layout = sidecar.Layout.of(settings)
    queue = JobQueue(job_factory(layout))
    stop = threading.Event()
    held = HeldWalk()
    scanner = Scanner(
        roots=lambda: [tmp_path],
        photo_filter=PhotoFilter.from_settings(settings.watch),
        recursive=True,
        queue=queue,
        settler=Settler(queue.put, 0.3),
        layout=layout,
        fingerprint=lambda: FAKE_FINGERPRINT,
        relabel=lambda: False,
        interval_s=0,
        settle_time_s=0.3,
        stop=stop,
        observers=[held],
    )
    scanner.loop.start()
    try:
        yield scanner, held, queue
    finally:
        held.release.set()
        stop.set()
        scanner.request()
        scanner.loop.join(5)


def test_a_request_during_a_scan_is_covered_by_the_next_one(
    tmp_path: Path, scanning: tuple[Scanner, HeldWalk, JobQueue]
) -> None:
    scanner, held, queue = scanning
    assert held.walking.wait(10), "the catch-up scan never began"
    early = make_photo(tmp_path / "early.jpg")  # after the walk began: it may miss this one
    os.utime(early, (time.time() - 60, time.time() - 60))  # long settled: queued at once
    covering = scanner.request()
    assert covering == 2, "the scan under way began before the request"
    assert not scanner.wait_for(1, 0), "still walking"
    held.release.set()
    assert scanner.wait_for(covering, 10)
    assert scanner.generation >= 2
    assert early in held.walks[1], "the covering scan walked past the photo"
    assert queue.is_queued(early)
    finished = scanner.generation
    assert scanner.request() == finished + 1, "none under way: the next scan covers it"
