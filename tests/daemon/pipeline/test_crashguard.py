"""A photo that kills the service is isolated, then skipped: no crash loop (issue 14 item 11)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dropsight.daemon.pipeline.crashguard import JOURNAL_NAME, SKIP_AFTER, CrashGuard
from dropsight.daemon.pipeline.decode import prepare
from dropsight.daemon.pipeline.jobs import Job, JobQueue
from tests.daemon.helpers import load_valid, make_photo, wait_for

MODEL = "efficientnet-lite0"
SERVICE = [sys.executable, "-m", "dropsight.daemon", "service"]


def _job(path: Path, root: Path) -> Job:
    return Job(path, root, path.with_name(path.name + ".json"))


def _die(guard: CrashGuard) -> None:
    """What an abrupt end leaves: the journal, never closed."""
    fd = guard._fd
    assert fd is not None
    os.close(fd)
    guard._fd = None


def test_photos_in_flight_at_an_abrupt_end_become_suspects(tmp_path: Path) -> None:
    odd = "new\nline \udcff.jpg"  # a newline and a byte that is not UTF-8
    guard = CrashGuard(tmp_path)
    guard.open()
    for key in ("a.jpg", "b.jpg", odd):
        guard.taken(key)
    guard.done("a.jpg")
    _die(guard)

    again = CrashGuard(tmp_path)
    again.open()
    assert (again.deaths("a.jpg"), again.deaths("b.jpg"), again.deaths(odd)) == (0, 1, 1)
    again.taken("b.jpg")
    again.done("b.jpg", finished=False)  # handed back unlabelled: still suspect
    assert again.deaths("b.jpg") == 1
    again.taken(odd)
    _die(again)  # died again with it in flight

    third = CrashGuard(tmp_path)
    third.open()
    assert third.deaths(odd) == SKIP_AFTER
    assert third.deaths("b.jpg") == 1
    third.taken("b.jpg")
    third.done("b.jpg")  # labelled at last: innocent
    third.close()
    assert not (tmp_path / JOURNAL_NAME).exists(), "a clean stop leaves no journal"

    fourth = CrashGuard(tmp_path)
    fourth.open()
    assert fourth.deaths("b.jpg") == 0 and fourth.deaths(odd) == SKIP_AFTER
    fourth.close()


def test_the_journal_is_compacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dropsight.daemon.pipeline.crashguard.COMPACT_AT_BYTES", 4096)
    guard = CrashGuard(tmp_path)
    guard.open()
    guard.taken("keep.jpg")
    for i in range(500):
        guard.taken(f"{i}.jpg")
        guard.done(f"{i}.jpg")
    assert (tmp_path / JOURNAL_NAME).stat().st_size <= 4096 + 200
    _die(guard)
    again = CrashGuard(tmp_path)
    again.open()
    assert again.deaths("keep.jpg") == 1
    assert all(again.deaths(f"{i}.jpg") == 0 for i in range(500))
    again.close()


def test_a_suspect_is_taken_alone(tmp_path: Path) -> None:
    guard = CrashGuard(tmp_path)
    guard.open()
    guard.taken(str(tmp_path / "suspect.jpg"))
    _die(guard)
    guard = CrashGuard(tmp_path)
    guard.open()
    queue = JobQueue(lambda p, r: _job(p, r), guard)
    for name in ("a.jpg", "suspect.jpg", "b.jpg"):
        queue.put(tmp_path / name, tmp_path, fresh=False)
    first = queue.take(0)
    assert first is not None and first.path.name == "a.jpg"
    second = queue.take(0)
    assert second is not None and second.path.name == "b.jpg"
    assert queue.take(0) is None, "the suspect waits while others are in flight"
    queue.done(first.path)
    queue.done(second.path)
    suspect = queue.take(0)
    assert suspect is not None and suspect.path.name == "suspect.jpg" and suspect.deaths == 1
    queue.put(tmp_path / "c.jpg", tmp_path)
    assert queue.take(0) is None, "nothing joins a suspect in flight"
    queue.done(suspect.path)
    later = queue.take(0)
    assert later is not None and later.path.name == "c.jpg"
    queue.done(later.path)
    guard.close()


def test_a_photo_that_killed_the_service_twice_is_recorded_not_decoded(tmp_path: Path) -> None:
    photo = make_photo(tmp_path / "poison.jpg")
    job = Job(photo, tmp_path, tmp_path / "poison.jpg.json", deaths=SKIP_AFTER)
    item = prepare(job, (224, 224), "crop", "f" * 64)
    assert item.pixels is None and item.error is not None
    assert item.error.kind == "crashed"
    assert item.facts is not None
    assert item.facts.sha256 == hashlib.sha256(photo.read_bytes()).hexdigest()


# --- the real service, killed as the OOM killer would ------------------------------------------


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()


def _service(
    procs: list[subprocess.Popen[bytes]], folder: Path, log: Path
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*SERVICE, "--watch", str(folder), "--model", MODEL],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    procs.append(proc)
    return proc


def _in_flight(journal: Path) -> set[str]:
    try:
        lines = journal.read_text("ascii").splitlines()
    except OSError:
        return set()
    taken: set[str] = set()
    for line in lines:
        try:
            key = os.fsdecode(bytes.fromhex(line[1:]))
        except ValueError:
            continue
        (taken.add if line.startswith("+") else taken.discard)(key)
    return taken


def _inode(path: Path) -> int:
    try:
        return path.stat().st_ino
    except OSError:
        return 0


def _kill_when_in_flight(
    proc: subprocess.Popen[bytes], journal: Path, photo: Path, old_inode: int = 0
) -> None:
    """Play the OOM killer: SIGKILL the service while it works on `photo`."""
    # The service's own journal, not the one its predecessor left (replaced at start).
    wait_for(lambda: _inode(journal) not in (0, old_inode), 60, "the new journal")
    wait_for(lambda: str(photo) in _in_flight(journal), 120, f"{photo.name} in flight")
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)


def test_a_photo_that_kills_the_service_at_every_start_is_skipped(
    tmp_path: Path, app_home: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    # A big, slow-to-decode PNG: it stays in flight long enough for the "OOM killer".
    poison = folder / "poison.png"
    ramp = np.linspace(0, 255, 9000, dtype=np.uint8)
    Image.fromarray(np.tile(ramp, (9000, 1))).convert("RGB").save(poison)
    names = [f"ok_{i}.jpg" for i in range(6)]
    for i, name in enumerate(names):
        make_photo(folder / name, seed=i)
    journal = app_home / "state" / JOURNAL_NAME
    log = tmp_path / "service.log"

    # Start 1: dies with the poison (and whatever was in flight with it).
    _kill_when_in_flight(_service(procs, folder, log), journal, poison)
    # Start 2: the suspects go one at a time; dies again with the poison alone in flight.
    old = _inode(journal)
    second = _service(procs, folder, log)
    _kill_when_in_flight(second, journal, poison, old)
    assert _in_flight(journal) == {str(poison)}, "the second death names the culprit alone"
    # Start 3: the poison is recorded as the cause and skipped; everything else is labelled.
    third = _service(procs, folder, log)
    side = folder / "poison.png.json"
    wait_for(side.exists, 120, "the poison's sidecar")
    wait_for(lambda: all((folder / f"{n}.json").exists() for n in names), 60, "the others")
    time.sleep(0.5)
    third.send_signal(signal.SIGTERM)
    assert third.wait(30) == 0
    record = load_valid(side)
    assert record["status"] == "error"
    assert record["error"] is not None and record["error"]["type"] == "crashed"
    assert record["image"]["sha256"] == hashlib.sha256(poison.read_bytes()).hexdigest()
    for name in names:
        assert load_valid(folder / f"{name}.json")["status"] == "ok"
    assert not journal.exists(), "the clean stop removed the journal"
    assert "ended abruptly" in log.read_text("utf-8", errors="replace")
