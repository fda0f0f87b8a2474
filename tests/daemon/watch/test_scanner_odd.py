"""Issue 20 item 1: a scan gets past odd sidecars and past a photo that makes it fail."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from dropsight.config.settings import Settings, WatchSettings
from dropsight.daemon.outputs import sidecar
from dropsight.daemon.photos.filter import PhotoFilter
from dropsight.daemon.pipeline.jobs import JobQueue
from dropsight.daemon.pipeline.wiring import job_factory
from dropsight.daemon.watch.scanner import Scanner
from dropsight.daemon.watch.settler import Settler
from tests.daemon.helpers import FAKE_FINGERPRINT, make_photo


def scanner_for(root: Path, found: dict[Path, tuple[Path, str]]) -> tuple[Scanner, JobQueue]:
    settings = Settings(watch=WatchSettings(folders=(root,), rescan_interval_s=0))
    layout = sidecar.Layout.of(settings)
    queue = JobQueue(job_factory(layout))
    scanner = Scanner(
        roots=lambda: [root],
        photo_filter=PhotoFilter.from_settings(settings.watch),
        recursive=True,
        queue=queue,
        settler=Settler(queue.put, 0.3),
        layout=layout,
        fingerprint=lambda: FAKE_FINGERPRINT,
        relabel=lambda: False,
        interval_s=0,
        settle_time_s=0.3,
        stop=threading.Event(),
        on_odd=lambda _root, odd: found.update(odd),
    )
    return scanner, queue


def old_photo(path: Path, seed: int) -> Path:
    make_photo(path, seed=seed, size=(32, 32))
    os.utime(path, (time.time() - 60, time.time() - 60))  # settled long ago: queued at once
    return path


def test_odd_sidecars_are_counted_and_the_rest_queued(tmp_path: Path) -> None:
    for i in range(20):
        old_photo(tmp_path / f"{i:02d}.jpg", i)
    old_photo(tmp_path / "aaa.jpg", 99)
    (tmp_path / "aaa.jpg.json").write_bytes(b'{"schema_version": 1, "model": "another tool"}')
    old_photo(tmp_path / "fifo.jpg", 98)
    os.mkfifo(tmp_path / "fifo.jpg.json")
    found: dict[Path, tuple[Path, str]] = {}
    scanner, queue = scanner_for(tmp_path, found)
    queued, _other = scanner.scan(tmp_path, FAKE_FINGERPRINT)
    assert queued == 20 and queue.pending() == 20
    assert sorted(p.name for p in found) == ["aaa.jpg", "fifo.jpg"]
    assert found[tmp_path / "fifo.jpg"][1] == "not a regular file"


def test_one_photo_that_fails_costs_only_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(10):
        old_photo(tmp_path / f"{i:02d}.jpg", i)
    real = sidecar.scan_state

    def failing(photo: Path, json_path: Path, fingerprint: str) -> sidecar.ScanState:
        if photo.name == "03.jpg":
            raise AttributeError("'str' object has no attribute 'get'")  # as issue 20 saw
        return real(photo, json_path, fingerprint)

    monkeypatch.setattr(sidecar, "scan_state", failing)
    scanner, queue = scanner_for(tmp_path, {})
    queued, _other = scanner.scan(tmp_path, FAKE_FINGERPRINT)
    assert queued == 9 and queue.pending() == 9
