"""Watching faults: symlinked, replaced and remounted folders, lost events, fixed permissions.

Real watchdog observers on real folders and a real Service with a fake classifier, as in
test_faults.py. Periodic rescans are off (rescan_interval_s=0), so a photo labelled here
was heard live or found by a rescan the fault itself triggered.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dropsight.config.settings import OutputSettings, Settings, WatchSettings
from dropsight.daemon.service.service import Service
from tests.daemon.helpers import (
    FakeClassifier,
    heard,
    idle_after_scan,
    load_valid,
    make_photo,
    tmpfs_over,
    wait_for,
)

REPO = Path(__file__).resolve().parents[3]
LIVE_S = 10.0  # heard live (or rescanned at once): well under any periodic rescan
MAX_QUEUED_EVENTS = Path("/proc/sys/fs/inotify/max_queued_events")

Run = Callable[..., tuple[Service, FakeClassifier]]


@pytest.fixture
def run() -> Iterator[Run]:
    started: list[Service] = []

    def start(
        *folders: Path,
        fake: FakeClassifier | None = None,
        output: OutputSettings | None = None,
        arming: contextlib.AbstractContextManager[None] | None = None,
    ) -> tuple[Service, FakeClassifier]:
        settings = Settings(
            watch=WatchSettings(folders=folders, settle_time_s=0.3, rescan_interval_s=0),
            output=output or OutputSettings(),
        )
        classifier = fake or FakeClassifier()
        service = Service(settings, classifier_factory=lambda _s: classifier)
        with arming or contextlib.nullcontext():
            service.start()  # arms every folder before it returns
        started.append(service)
        idle_after_scan(service)  # the catch-up scan ran, and labelled what it found
        wait_for(lambda: service.status()["state"] == "idle", 20, "service idle")
        return service, classifier

    yield start
    for service in started:
        service.join()


def drop(folder: Path, *names: str, seed: int = 0) -> None:
    for i, name in enumerate(names):
        make_photo(folder / name, seed=seed + i, size=(64, 48))


def labelled(folder: Path, *names: str, timeout_s: float = LIVE_S) -> None:
    wait_for(
        lambda: all((folder / f"{n}.json").exists() for n in names),
        timeout_s,
        f"sidecars for {len(names)} photo(s) in {folder.name}",
    )
    for name in names:
        assert load_valid(folder / f"{name}.json")["status"] == "ok"


def folder_status(service: Service, path: Path) -> dict[str, Any]:
    return next(dict(f) for f in service.status()["folders"] if f["path"] == str(path))


# --- item 2: a watched folder that is a symlink ------------------------------------------


def test_a_symlinked_folder_is_watched_live_and_follows_a_new_target(
    tmp_path: Path, run: Run
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    link = tmp_path / "photos"
    link.symlink_to(first, target_is_directory=True)
    service, _ = run(link)

    drop(link, "through_link.jpg")
    drop(first, "direct.jpg", seed=1)
    drop(link / "sub", "deep.jpg", seed=2)
    labelled(first, "through_link.jpg", "direct.jpg")
    labelled(first / "sub", "deep.jpg")

    # Seen as under the configured folder (what sidecar paths are computed against). The
    # sidecar is on disk a moment before the status counts it: wait for the status.
    def images() -> set[str]:
        return {r["image"] for r in service.status()["recent"]}

    wait_for(lambda: len(images()) == 3, LIVE_S, "three photos in the status")
    recent = images()
    assert str(link / "sub" / "deep.jpg") in recent
    assert all(image.startswith(str(link) + os.sep) for image in recent), recent
    assert folder_status(service, link)["healthy"]

    tmp_link = tmp_path / "photos.new"
    tmp_link.symlink_to(second, target_is_directory=True)
    tmp_link.replace(link)  # the link now points elsewhere
    drop(second, "after_switch.jpg", seed=3)
    labelled(second, "after_switch.jpg")
    drop(link, "later.jpg", seed=4)
    labelled(second, "later.jpg")
    status = folder_status(service, link)
    assert status["healthy"] and status["path"] == str(link)


def test_a_symlinked_folder_mirrors_into_an_output_folder_by_its_configured_path(
    tmp_path: Path, run: Run
) -> None:
    target, out = tmp_path / "target", tmp_path / "out"
    (target / "sub").mkdir(parents=True)
    link = tmp_path / "photos"
    link.symlink_to(target, target_is_directory=True)
    run(link, output=OutputSettings(mode="folder", folder=out))
    drop(target, "top.jpg")
    drop(target / "sub", "deep.jpg", seed=1)
    for rel in ("top.jpg", "sub/deep.jpg"):
        wait_for((out / f"{rel}.json").exists, LIVE_S, f"the mirrored sidecar of {rel}")
        assert load_valid(out / f"{rel}.json")["image"]["path"] == str(link / rel)


# --- item 3: stale watches ---------------------------------------------------------------


def test_a_folder_renamed_away_and_replaced_is_watched_again(tmp_path: Path, run: Run) -> None:
    watched, other = tmp_path / "photos", tmp_path / "other"
    watched.mkdir()
    other.mkdir()
    service, fake = run(watched, other)
    drop(watched, "before.jpg")
    labelled(watched, "before.jpg")

    watched.rename(tmp_path / "photos.old")
    watched.mkdir()  # same path, a new folder
    drop(watched, "after.jpg", seed=1)
    labelled(watched, "after.jpg")
    drop(watched, "later.jpg", seed=2)  # live again, not just found by the re-arm's rescan
    labelled(watched, "later.jpg")
    assert folder_status(service, watched)["healthy"]
    assert service.folders.watches()[0].health.restarts >= 1
    drop(other, "elsewhere.jpg", seed=3)  # the other folder never stopped
    labelled(other, "elsewhere.jpg")
    assert fake.images == 4, "a photo was labelled twice"


def test_a_filesystem_mounted_over_and_unmounted_from_the_folder_is_followed(
    tmp_path: Path, run: Run
) -> None:
    watched = tmp_path / "photos"
    watched.mkdir()
    service, _ = run(watched)
    with tmpfs_over(watched):
        drop(watched, "on_tmpfs.jpg")
        labelled(watched, "on_tmpfs.jpg")
        drop(watched, "on_tmpfs_later.jpg", seed=1)
        labelled(watched, "on_tmpfs_later.jpg")
        assert folder_status(service, watched)["healthy"]
    assert not (watched / "on_tmpfs.jpg").exists()  # the folder underneath again
    drop(watched, "underneath.jpg", seed=2)
    labelled(watched, "underneath.jpg")
    assert folder_status(service, watched)["healthy"]


def sh(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False)


@contextlib.contextmanager
def ext4_device(tmp_path: Path) -> Iterator[str]:
    """A small ext4 file system on a loop device (root only; skips when that fails)."""
    if os.geteuid() != 0 or not (shutil.which("losetup") and shutil.which("mkfs.ext4")):
        pytest.skip("needs root, losetup and mkfs.ext4")
    image = tmp_path / "fs.img"
    with image.open("wb") as f:
        f.truncate(8 << 20)
    made = sh("mkfs.ext4", "-q", "-F", image)
    attached = sh("losetup", "--find", "--show", image) if made.returncode == 0 else made
    if attached.returncode != 0:
        pytest.skip(f"cannot make an ext4 loop device here: {attached.stderr.strip()}")
    device = attached.stdout.strip()
    try:
        yield device
    finally:
        sh("losetup", "-d", device)


def test_a_file_system_unmounted_and_mounted_again_at_once_is_watched_again(
    tmp_path: Path, run: Run
) -> None:
    watched = tmp_path / "photos"
    watched.mkdir()
    with ext4_device(tmp_path) as device:
        if sh("mount", device, watched).returncode != 0:
            pytest.skip(f"cannot mount {device}")
        try:
            service, _ = run(watched)
            drop(watched, "before.jpg")
            labelled(watched, "before.jpg")
            # Same device, same root inode: only inotify's IN_UNMOUNT tells the watch died.
            assert sh("umount", watched).returncode == 0
            assert sh("mount", device, watched).returncode == 0
            drop(watched, "after.jpg", seed=1)
            labelled(watched, "after.jpg")
            drop(watched, "later.jpg", seed=2)
            labelled(watched, "later.jpg")
            assert folder_status(service, watched)["healthy"]
        finally:  # the service, joined later, just sees its folder go back to a plain one
            if sh("umount", watched).returncode != 0:
                sh("umount", "-l", watched)


# --- item 4: lost events -----------------------------------------------------------------


@contextlib.contextmanager
def tiny_inotify_queue(size: int) -> Iterator[None]:
    """New inotify instances get a `size`-event queue while the block runs (root only)."""
    try:
        old = MAX_QUEUED_EVENTS.read_text()
        MAX_QUEUED_EVENTS.write_text(f"{size}\n")
    except OSError as exc:
        pytest.skip(f"cannot lower the inotify queue limit (needs root): {exc}")
    try:
        yield
    finally:
        MAX_QUEUED_EVENTS.write_text(old)


def test_an_inotify_queue_overflow_rescans_the_folder(tmp_path: Path, run: Run) -> None:
    watched, other = tmp_path / "photos", tmp_path / "other"
    watched.mkdir()
    other.mkdir()
    if not MAX_QUEUED_EVENTS.exists():
        pytest.skip("no inotify here")
    # The limit is read when an inotify instance is made: lowered only while the service
    # arms (milliseconds), as other processes on the machine would get it too.
    service, fake = run(watched, other, arming=tiny_inotify_queue(32))
    watch = service.folders.watches()[0]
    readers = [t for t in watch._threads if type(t).__name__ == "InotifyFD"]
    if not readers:
        pytest.skip("not inotify")
    reader = readers[0]
    stalled, release = threading.Event(), threading.Event()
    real = reader.handle_event  # type: ignore[attr-defined]

    def stall(event: Any) -> None:
        stalled.set()
        release.wait(30)  # the service is starved: the kernel's queue fills meanwhile
        real(event)

    reader.handle_event = stall  # type: ignore[attr-defined]
    drop(watched, "first.jpg")
    assert stalled.wait(10), "the reader never saw the first photo"
    names = [f"burst_{i:03}.jpg" for i in range(120)]
    try:
        drop(watched, *names, seed=1)
    finally:
        reader.handle_event = real  # type: ignore[attr-defined]
        release.set()
    labelled(watched, "first.jpg", *names, timeout_s=30)
    errors = [e["message"] for e in service.status()["errors"]]
    assert any("events were lost" in m and str(watched) in m for m in errors), errors
    assert folder_status(service, watched)["healthy"]
    drop(watched, "after.jpg", seed=500)  # still watched live
    drop(other, "elsewhere.jpg", seed=501)
    labelled(watched, "after.jpg")
    labelled(other, "elsewhere.jpg")
    assert fake.images == len(names) + 3, "a photo was labelled twice"


# --- item 12a: a photo made readable -----------------------------------------------------

SERVICE_SCRIPT = """
import sys
from pathlib import Path
from dropsight.config.settings import OutputSettings, Settings, WatchSettings
from dropsight.daemon.service.service import Service
from tests.daemon.helpers import FakeClassifier, wait_for

settings = Settings(
    watch=WatchSettings(folders=(Path(sys.argv[1]),), settle_time_s=0.3, rescan_interval_s=0)
)
fake = FakeClassifier()
service = Service(settings, classifier_factory=lambda _s: fake)
service.start()
assert service.wait_idle_after_scan(1, 20), "the catch-up scan"
wait_for(lambda: service.status()["state"] == "idle", 20, "service idle")
print("ready", flush=True)
sys.stdin.readline()  # until the test closes stdin
service.join()
"""
# Root reads any file whatever its mode (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH). The service
# runs without those two capabilities instead of as another user: the interpreter may live
# under /root, which another user cannot reach. Capabilities are per process: a subprocess.
WITHOUT_DAC = ["--inh-caps=-dac_override,-dac_read_search"]
WITHOUT_DAC += ["--bounding-set=-dac_override,-dac_read_search", "--"]


@pytest.fixture
def service_bound_by_permissions(tmp_path: Path) -> Iterator[Path]:
    """A service process that file permissions apply to, watching a folder; yields it."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop capabilities (an ordinary user cannot chmod root's file)")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("needs setpriv (util-linux) to drop root's permission override")
    if sh(setpriv, *WITHOUT_DAC, "true").returncode != 0:
        pytest.skip("setpriv cannot drop capabilities here")
    folder = tmp_path / "photos"
    folder.mkdir()
    # The same `dropsight` as this test imports, and `tests` for the fake classifier.
    pythonpath = [p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath)}
    proc = subprocess.Popen(
        [setpriv, *WITHOUT_DAC, sys.executable, "-c", SERVICE_SCRIPT, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        line = proc.stdout.readline()
        if line.strip() != "ready":
            pytest.fail(f"the service did not start: exit {proc.wait(20)} (its stderr is above)")
        yield folder
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_a_photo_made_readable_by_chmod_is_labelled_promptly(
    service_bound_by_permissions: Path,
) -> None:
    folder = service_bound_by_permissions
    staging = folder.parent / "staging"
    staging.mkdir()
    locked = make_photo(staging / "locked.jpg", seed=7, size=(64, 48))
    os.chown(locked, 65534, 65534)  # nobody's (no passwd entry needed)
    locked.chmod(0o600)  # someone else's, private: the service cannot read it
    locked.rename(folder / "locked.jpg")
    photo, side = folder / "locked.jpg", folder / "locked.jpg.json"
    wait_for(side.exists, LIVE_S, "the unreadable photo's error record")
    record = load_valid(side)
    assert record["status"] == "error" and record["error"]["type"] == "unreadable", record
    photo.chmod(0o644)  # fixed: only an attribute event says so
    wait_for(lambda: load_valid(side)["status"] == "ok", LIVE_S, "the photo labelled once readable")


def test_touching_or_chmodding_a_labelled_photo_does_not_label_it_again(
    tmp_path: Path, run: Run
) -> None:
    watched = tmp_path / "photos"
    watched.mkdir()
    service, fake = run(watched)
    drop(watched, "a.jpg", "b.jpg")
    labelled(watched, "a.jpg", "b.jpg")
    wait_for(lambda: service.status()["queued"] == 0, LIVE_S, "queue empty")
    before = service.status()["skipped"], fake.images
    os.utime(watched / "a.jpg")  # attribute events
    (watched / "b.jpg").chmod(0o640)
    (watched / "a.jpg.json").chmod(0o600)
    heard(service, watched)  # their events were handled, and all they started is done
    skipped, images = before
    assert (service.status()["skipped"], fake.images) == (skipped, images + 1)  # the marker
    assert service.status()["queued"] == 0
