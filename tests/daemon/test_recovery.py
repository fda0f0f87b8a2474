"""Files that change behind the service's back: replaced, deleted, unwritable, oddly named.

Each test reproduces one fault of the adversarial sweep (issue 14) against a real service on
real folders (FakeClassifier: these tests are about finding and writing work, not labels).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dropsight.config.settings import Settings, WatchSettings
from dropsight.daemon.service import Service
from tests.daemon.helpers import FakeClassifier, load_valid, make_photo, wait_for


@pytest.fixture
def watched(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    return folder


@pytest.fixture
def run() -> Iterator[Callable[..., Service]]:
    started: list[Service] = []

    def start(folder: Path, fake: FakeClassifier | None = None, **watch: object) -> Service:
        options: dict[str, object] = {"settle_time_s": 0.3, "rescan_interval_s": 0, **watch}
        settings = Settings(watch=WatchSettings(folders=(folder,), **options))  # type: ignore[arg-type]
        classifier = fake or FakeClassifier()
        service = Service(settings, classifier_factory=lambda _s: classifier)
        service.start()
        started.append(service)
        wait_for(lambda: service.status()["state"] == "idle", 20, "service idle")
        return service

    yield start
    for service in started:
        service.join()


def _bmp(path: Path, value: int) -> Path:
    """An uncompressed BMP: every one of the same size has the same number of bytes."""
    Image.fromarray(np.full((32, 48, 3), value, np.uint8)).save(path, "BMP")
    return path


def test_a_same_size_replacement_with_the_old_mtime_is_labelled_again(
    watched: Path, run: Callable[..., Service]
) -> None:
    """`cp -p` / `rsync -t` / a backup restore while the service was stopped (item 5)."""
    photo = _bmp(watched / "scan.bmp", 40)
    service = run(watched)
    side = watched / "scan.bmp.json"
    wait_for(side.exists, 20, "the first sidecar")
    first = load_valid(side)
    service.join()

    old = photo.stat()
    restored = _bmp(watched.parent / "restored.bmp", 200)
    os.utime(restored, ns=(old.st_atime_ns, old.st_mtime_ns))
    restored.replace(photo)  # renamed into place with the old size and mtime
    assert (photo.stat().st_size, photo.stat().st_mtime_ns) == (old.st_size, old.st_mtime_ns)
    new_hash = hashlib.sha256(photo.read_bytes()).hexdigest()
    assert new_hash != first["image"]["sha256"]

    run(watched)  # the catch-up scan
    wait_for(lambda: load_valid(side)["image"]["sha256"] == new_hash, 20, "labels of the new file")
    record = load_valid(side)
    assert record["predictions"][0]["class_index"] != first["predictions"][0]["class_index"]
    assert record["image"]["stat"]["inode"] == photo.stat().st_ino


def test_an_unchanged_photo_is_not_read_again_at_restart(
    watched: Path, run: Callable[..., Service]
) -> None:
    make_photo(watched / "a.jpg", seed=1)
    fake = FakeClassifier()
    service = run(watched, fake)
    wait_for((watched / "a.jpg.json").exists, 20, "the sidecar")
    service.join()
    again = run(watched, fake)
    wait_for(lambda: again.status()["state"] == "idle", 20, "idle after the scan")
    assert fake.images == 1
    assert again.status()["skipped"] == 0  # not even hashed: the cheap check held
