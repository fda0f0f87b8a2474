"""Files that change behind the service's back: replaced, deleted, unwritable, oddly named.

Each test reproduces one fault of the adversarial sweep (issue 14) against a real service on
real folders (FakeClassifier: these tests are about finding and writing work, not labels).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from dropsight.config.settings import OutputSettings, Settings, WatchSettings
from dropsight.daemon.outputs import sidecar
from dropsight.daemon.service.service import Service
from tests.daemon.helpers import (
    FakeClassifier,
    dropsight,
    fill,
    idle_after_scan,
    load_valid,
    make_photo,
    rescanned,
    tmpfs_over,
    wait_for,
)


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
    again = run(watched, fake)  # returns once its catch-up scan is done
    assert again.scan_generation >= 1
    assert fake.images == 1
    assert again.status()["skipped"] == 0  # not even hashed: the cheap check held


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs (root only), unmounted afterwards."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    with tmpfs_over(mount_point, "1m"):
        yield mount_point


def test_a_full_disk_holds_the_sidecars_and_writes_them_when_space_returns(
    small_disk: Path, run: Callable[..., Service]
) -> None:
    names = [f"p{i}.jpg" for i in range(5)]
    for i, name in enumerate(names):
        make_photo(small_disk / name, seed=i, size=(64, 48))
    filler = fill(small_disk)
    fake = FakeClassifier()
    settings = Settings(
        watch=WatchSettings(folders=(small_disk,), settle_time_s=0.3, rescan_interval_s=0)
    )
    service = Service(settings, classifier_factory=lambda _s: fake)
    service.start()
    try:
        wait_for(lambda: fake.images == len(names), 20, "every photo labelled once")

        def retried() -> bool:  # each sidecar tried again at least once, and failed again
            held = service.stages.writer.retries.take_all()
            return len(held) == len(names) and all(h.attempts >= 2 for h in held)

        wait_for(retried, 20, "failed retries")
        status = service.status()
        folder = status["folders"][0]
        assert not folder["healthy"]
        assert folder["error"] is not None and "No space left" in folder["error"]
        assert status["queued"] == len(names), "the waiting photos show as queued"
        assert status["state"] == "working"
        assert not list(small_disk.glob("*.json"))
        assert not list(small_disk.glob(".*")), "no temp file left on the full disk"
        filler.unlink()  # space again: no event, no rescan; the retries find it
        wait_for(
            lambda: all((small_disk / f"{n}.json").exists() for n in names), 90, "the sidecars"
        )
        for name in names:
            assert load_valid(small_disk / f"{name}.json")["status"] == "ok"
        wait_for(lambda: service.status()["folders"][0]["healthy"], 10, "healthy again")
        assert fake.images == len(names), "labels kept while waiting, not paid for again"
        assert service.status()["queued"] == 0
    finally:
        service.join()


def test_long_names_get_a_sidecar_and_too_long_ones_are_reported_once(
    watched: Path, run: Callable[..., Service]
) -> None:
    """A 245-byte photo name has room for ".json" (250) but not for a temp name built on it."""
    long_name = "l" * 241 + ".jpg"
    too_long = "t" * 248 + ".jpg"  # 252 bytes: its sidecar name would be 257
    make_photo(watched / too_long, seed=2)
    fake = FakeClassifier()
    service = run(watched, fake)
    make_photo(watched / long_name, seed=1)
    side = watched / (long_name + ".json")
    wait_for(side.exists, 20, "the long name's sidecar")
    assert load_valid(side)["status"] == "ok"
    errors = [e for e in service.status()["errors"] if e["path"] and too_long in e["path"]]
    assert len(errors) == 1 and "too long" in errors[0]["message"]
    before = fake.images
    rescanned(service)
    rescanned(service)
    assert service.scan_generation >= 3  # the catch-up scan and the two asked for
    assert fake.images == before, "never labelled in vain at a rescan"
    errors = [e for e in service.status()["errors"] if e["path"] and too_long in e["path"]]
    assert len(errors) == 1, "reported once, not at every rescan"


# --- orphans: photos deleted or moved away (item 10) -------------------------------------------


def _service(watched: Path, fake: FakeClassifier, **output: object) -> Service:
    settings = Settings(
        watch=WatchSettings(folders=(watched,), settle_time_s=0.3, rescan_interval_s=0),
        output=OutputSettings(**output),  # type: ignore[arg-type]
    )
    service = Service(settings, classifier_factory=lambda _s: fake)
    service.start()
    return service


def _foreign(path: Path) -> None:
    """A sidecar another program wrote under a name like ours."""
    path.write_text(json.dumps({"tool": "someone else", "labels": ["x"]}))


def test_deleting_or_moving_a_photo_removes_its_sidecar_and_only_ours(
    watched: Path, run: Callable[..., Service]
) -> None:
    for i, name in enumerate(["keep.jpg", "delete.jpg", "move.jpg", "theirs.jpg"]):
        make_photo(watched / name, seed=i)
    fake = FakeClassifier()
    service = run(watched, fake)
    wait_for(lambda: len(list(watched.glob("*.json"))) == 4, 20, "four sidecars")
    _foreign(watched / "theirs.jpg.json")  # replaced by another tool's file
    (watched / "delete.jpg").unlink()
    (watched / "move.jpg").rename(watched / "moved.jpg")
    (watched / "theirs.jpg").unlink()
    wait_for(lambda: not (watched / "delete.jpg.json").exists(), 15, "the deleted one's sidecar")
    wait_for(lambda: not (watched / "move.jpg.json").exists(), 15, "the moved one's old sidecar")
    wait_for((watched / "moved.jpg.json").exists, 15, "the moved one labelled at its new name")
    assert (watched / "keep.jpg.json").exists()
    assert (watched / "theirs.jpg.json").exists(), "another program's file is never deleted"
    assert service.status()["failed"] == 0


def test_a_photo_deleted_and_written_anew_keeps_its_sidecar(
    watched: Path, run: Callable[..., Service]
) -> None:
    """Editors that save by deleting and writing again: not an orphan."""
    make_photo(watched / "edit.jpg", seed=1)
    service = run(watched)
    side = watched / "edit.jpg.json"
    wait_for(side.exists, 20, "the sidecar")
    (watched / "edit.jpg").unlink()
    make_photo(watched / "edit.jpg", seed=2)
    new_hash = hashlib.sha256((watched / "edit.jpg").read_bytes()).hexdigest()
    wait_for(lambda: side.exists() and load_valid(side)["image"]["sha256"] == new_hash, 15, "new")
    # The deletion was heard before the new file's events; idle means its clean-up ran.
    idle_after_scan(service)
    assert side.exists()


def test_the_catch_up_scan_removes_sidecars_of_photos_deleted_while_stopped(
    watched: Path, run: Callable[..., Service]
) -> None:
    for i in range(4):
        make_photo(watched / "sub" / f"{i}.jpg", seed=i)
    service = run(watched)
    wait_for(lambda: len(list(watched.rglob("*.json"))) == 4, 20, "four sidecars")
    service.join()
    (watched / "sub" / "0.jpg").unlink()
    (watched / "sub" / "1.jpg").unlink()
    _foreign(watched / "sub" / "1.jpg.json")
    run(watched)
    wait_for(lambda: not (watched / "sub" / "0.jpg.json").exists(), 15, "the orphan removed")
    assert (watched / "sub" / "1.jpg.json").exists(), "not ours: kept"
    assert {p.name for p in (watched / "sub").glob("*.json")} == {
        "1.jpg.json",
        "2.jpg.json",
        "3.jpg.json",
    }


def test_orphans_in_the_output_folder_are_removed_at_catch_up(
    watched: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    make_photo(watched / "a.jpg", seed=1)
    make_photo(watched / "b.jpg", seed=2)
    fake = FakeClassifier()
    service = _service(watched, fake, mode="folder", folder=out)
    try:
        wait_for(lambda: len(list(out.rglob("*.json"))) == 2, 20, "two mirrored sidecars")
    finally:
        service.join()
    (watched / "a.jpg").unlink()
    service = _service(watched, fake, mode="folder", folder=out)
    try:
        wait_for(lambda: not (out / "a.jpg.json").exists(), 20, "the mirrored orphan removed")
        assert (out / "b.jpg.json").exists()
    finally:
        service.join()


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="needs exiftool")
def test_a_deleted_photo_loses_only_our_keywords(watched: Path) -> None:
    make_photo(watched / "mine.jpg", seed=1)
    make_photo(watched / "shared.jpg", seed=2)
    fake = FakeClassifier()
    service = _service(watched, fake, xmp="beside")
    try:
        wait_for(lambda: len(list(watched.glob("*.xmp"))) == 2, 20, "two XMP files")
        # Another tool adds its own keyword to one of them.
        xmp_file = str(watched / "shared.jpg.xmp")
        subprocess.run(
            ["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject+=holiday", xmp_file],
            check=True,
        )
        (watched / "mine.jpg").unlink()
        (watched / "shared.jpg").unlink()
        wait_for(lambda: not (watched / "mine.jpg.xmp").exists(), 15, "our XMP file removed")
        wait_for(lambda: not (watched / "shared.jpg.json").exists(), 15, "the sidecar removed")
        wait_for(lambda: _subjects(watched / "shared.jpg.xmp") == ["holiday"], 15, "ours out")
    finally:
        service.join()


def _subjects(path: Path) -> list[str]:
    done = subprocess.run(
        ["exiftool", "-j", "-XMP-dc:Subject", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return []
    subject = json.loads(done.stdout)[0].get("Subject", [])
    return subject if isinstance(subject, list) else [subject]


def test_a_sidecar_written_just_after_its_photo_went_is_removed(
    watched: Path, run: Callable[..., Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The photo is deleted between the writer's check and its rename: no orphan."""
    real = sidecar.write

    def delete_first(path: Path, record: Any) -> None:
        if path.name == "late.jpg.json":
            (watched / "late.jpg").unlink(missing_ok=True)
        real(path, record)

    monkeypatch.setattr(sidecar, "write", delete_first)
    service = run(watched)
    make_photo(watched / "late.jpg", seed=3)
    make_photo(watched / "fine.jpg", seed=4)
    wait_for((watched / "fine.jpg.json").exists, 20, "the other sidecar")
    wait_for(lambda: service.status()["queued"] == 0, 15, "queue empty")
    assert not (watched / "late.jpg.json").exists()


# --- things named like photos that are not files (item 12) --------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_or_a_link_to_a_device_named_like_a_photo_is_ignored(
    watched: Path, run: Callable[..., Service]
) -> None:
    fake = FakeClassifier()
    service = run(watched, fake)
    os.mkfifo(watched / "pipe.jpg")
    (watched / "zero.jpg").symlink_to("/dev/zero")
    make_photo(watched / "real.jpg", seed=1)
    wait_for((watched / "real.jpg.json").exists, 20, "the real photo labelled")
    # Nothing waits on them: not 125 s of "working, queued 1".
    wait_for(lambda: service.status()["queued"] == 0, 5, "nothing queued")
    assert service.status()["state"] == "idle"
    rescanned(service)  # the scan passes them and queues nothing
    assert service.status()["queued"] == 0
    assert not (watched / "pipe.jpg.json").exists() and not (watched / "zero.jpg.json").exists()
    assert fake.images == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_classify_refuses_a_fifo_at_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jpg")
    done = dropsight("classify", "--json", tmp_path / "pipe.jpg", timeout_s=120)
    assert done.returncode != 0
    assert "not a regular file" in done.stdout + done.stderr


def test_a_photo_read_while_out_of_descriptors_is_read_again_not_recorded_unreadable(
    watched: Path, run: Callable[..., Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    """EMFILE when opening the photo is the process's shortage, not the photo's fault."""
    real_open = os.open
    refused: list[str] = []

    def short_of_descriptors(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if str(path).endswith("busy.jpg") and len(refused) < 2:
            refused.append(str(path))
            raise OSError(errno.EMFILE, "Too many open files")
        return real_open(path, flags, *args, **kwargs)

    fake = FakeClassifier()
    service = run(watched, fake)
    monkeypatch.setattr(os, "open", short_of_descriptors)
    make_photo(watched / "busy.jpg", seed=5)
    side = watched / "busy.jpg.json"
    wait_for(lambda: len(refused) == 2, 20, "two refused reads")
    wait_for(side.exists, 20, "the sidecar once descriptors are back")
    record = load_valid(side)
    assert record["status"] == "ok", record["error"]
    assert service.status()["failed"] == 0
    assert any("Too many open files" in e["message"] for e in service.status()["errors"])
