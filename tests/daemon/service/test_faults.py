"""Faults are contained: one bad name, file, batch, write or thread never stops the service.

Each test injects one fault into a real service (real watchdog observers, real folders) and
checks that the service keeps running and every other photo is labelled exactly once.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dropsight.daemon.outputs import sidecar
from dropsight.daemon.photos import imaging
from dropsight.daemon.service.service import Service
from tests.daemon.helpers import FakeClassifier, load_valid, make_photo, sidecars, wait_for

NAMES = [f"ok_{i}.jpg" for i in range(12)]


def drop_photos(folder: Path, names: list[str]) -> None:
    for i, name in enumerate(names):
        make_photo(folder / name, seed=i, size=(64, 48))


def assert_all_labelled_once(folder: Path, names: list[str], fake: FakeClassifier) -> None:
    wait_for(lambda: all((folder / f"{n}.json").exists() for n in names), 30, "every other sidecar")
    for name in names:
        assert load_valid(folder / f"{name}.json")["status"] == "ok"
    assert fake.images >= len(names)


def test_a_non_utf8_file_name_is_labelled_and_the_service_lives(
    watched: Path, run: Callable[..., Service]
) -> None:
    fake = FakeClassifier()
    service = run(watched, fake)
    raw = os.fsencode(watched) + b"/bad\xffname.jpg"
    make_photo(Path(os.fsdecode(raw)), seed=99)
    drop_photos(watched, NAMES)
    assert_all_labelled_once(watched, NAMES, fake)
    side = Path(os.fsdecode(raw + b".json"))
    wait_for(side.exists, 15, "the odd name's sidecar")
    data = side.read_bytes()
    data.decode("utf-8")  # the sidecar is valid UTF-8 JSON
    record = load_valid(side)
    assert record["status"] == "ok"
    assert os.fsencode(record["image"]["path"]) == b"bad\xffname.jpg"  # lossless
    status = service.status()
    assert status["state"] in ("idle", "working")
    assert status["failed"] == 0
    assert any(r["image"].endswith("name.jpg") for r in status["recent"])


def test_a_file_that_vanishes_mid_decode(
    watched: Path, run: Callable[..., Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = imaging.prepare_bytes

    def vanishing(
        data: bytes, facts: imaging.FileFacts, *args: Any, **kwargs: Any
    ) -> imaging.PreparedImage:
        out = real(data, facts, *args, **kwargs)
        for p in watched.glob("gone*.jpg"):
            p.unlink(missing_ok=True)  # deleted while it was being decoded
        return out

    monkeypatch.setattr(imaging, "prepare_bytes", vanishing)
    fake = FakeClassifier()
    service = run(watched, fake)
    drop_photos(watched, ["gone.jpg"])
    drop_photos(watched, NAMES)
    assert_all_labelled_once(watched, NAMES, fake)
    wait_for(lambda: service.status()["queued"] == 0, 15, "queue empty")
    assert not (watched / "gone.jpg.json").exists(), "a sidecar for a photo that is gone"
    assert service.status()["failed"] == 0


class FailsOnce(FakeClassifier):
    """Raises on its first batch, as a runtime hiccup would."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = threading.Event()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if not self.failed.is_set():
            self.failed.set()
            raise RuntimeError("XNNPACK hiccup")
        return super().predict(batch)


def test_a_predict_that_raises_once(watched: Path, run: Callable[..., Service]) -> None:
    fake = FailsOnce()
    service = run(watched, fake)
    drop_photos(watched, NAMES)
    assert_all_labelled_once(watched, NAMES, fake)
    assert fake.failed.is_set()
    assert fake.images == len(NAMES), "a photo was labelled twice"
    assert service.status()["failed"] == 0


class AlwaysFailsOn(FakeClassifier):
    """Fails on any batch holding one particular photo (its brightness), forever."""

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if any(img.mean() > 250 for img in batch):
            raise RuntimeError("cannot run this input")
        return super().predict(batch)


def test_a_photo_the_model_always_fails_on_gets_an_error_sidecar(
    watched: Path, run: Callable[..., Service]
) -> None:
    from PIL import Image

    fake = AlwaysFailsOn()
    service = run(watched, fake)
    Image.new("RGB", (64, 48), (255, 255, 255)).save(watched / "white.jpg")
    drop_photos(watched, NAMES)
    assert_all_labelled_once(watched, NAMES, fake)
    wait_for((watched / "white.jpg.json").exists, 15, "the failing photo's record")
    record = load_valid(watched / "white.jpg.json")
    assert record["status"] == "error"
    assert record["error"] is not None and record["error"]["type"] == "inference"
    # Not a verdict on the file: the next scan tries it again.
    stored = sidecar.read(watched / "white.jpg.json")
    assert not sidecar.is_current(stored, fake.info.fingerprint, sha256=record["image"]["sha256"])
    assert service.status()["state"] in ("idle", "working")


def test_a_sidecar_write_that_fails_is_retried_and_the_folder_stays_unhealthy(
    watched: Path, run: Callable[..., Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = sidecar.write
    failed: list[Path] = []
    release = threading.Event()

    def full_disk_for_one(path: Path, record: Any) -> None:
        if path.name == "full.jpg.json" and not release.is_set():
            failed.append(path)
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, record)

    monkeypatch.setattr(sidecar, "write", full_disk_for_one)
    fake = FakeClassifier()
    service = run(watched, fake)
    drop_photos(watched, ["full.jpg"])
    wait_for(lambda: len(failed) >= 2, 15, "a retry of the failed write")
    status = service.status()
    assert "No space left" in status["errors"][0]["message"]
    assert not list(watched.rglob("*.dropsight-tmp"))
    drop_photos(watched, NAMES)  # the service goes on; these writes succeed
    assert_all_labelled_once(watched, NAMES, fake)
    status = service.status()
    folder = status["folders"][0]
    assert not folder["healthy"], "an unrelated success must not hide a photo still waiting"
    assert folder["error"] is not None and "1 waiting" in folder["error"]
    assert status["queued"] == 1 and status["state"] == "working"
    release.set()  # space again: written by the next retry, without a rescan
    wait_for((watched / "full.jpg.json").exists, 15, "the retried sidecar")
    wait_for(lambda: service.status()["folders"][0]["healthy"], 10, "the folder healthy again")
    assert service.status()["queued"] == 0
    assert fake.images == len(NAMES) + 1, "the labels were kept, not paid for again"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_killed_inotify_reader_thread_is_detected_and_rearmed(
    watched: Path, run: Callable[..., Service]
) -> None:
    fake = FakeClassifier()
    service = run(watched, fake)
    watch = service.folders.watches()[0]
    readers = [t for t in watch._threads if type(t).__name__ == "InotifyFD"]
    if not readers:
        pytest.skip("not inotify: no reader thread to kill")
    reader = readers[0]

    def die(*_args: Any) -> None:
        raise RuntimeError("reader thread killed by the test")

    reader.handle_event = die  # type: ignore[attr-defined]  # its next event kills it
    drop_photos(watched, ["first.jpg"])
    reader.join(10)
    assert not reader.is_alive()
    drop_photos(watched, NAMES)  # nobody hears these until the watch is re-armed
    wait_for(lambda: watch.health.restarts >= 1, 15, "the dead reader noticed and re-armed")
    assert_all_labelled_once(watched, ["first.jpg", *NAMES], fake)
    assert fake.images == len(NAMES) + 1, "a photo was labelled twice"
    assert service.status()["folders"][0]["healthy"]
    assert sorted(p.name for p in sidecars(watched)) == sorted(
        f"{n}.json" for n in ["first.jpg", *NAMES]
    )
