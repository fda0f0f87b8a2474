"""The service in-process: real watchdog observers on real folders, a fake fast classifier."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dropsight.config.settings import Observer, OutputSettings, Settings, WatchSettings
from dropsight.daemon.service.service import Service
from tests.daemon.helpers import (
    FakeClassifier,
    heard,
    idle_after_scan,
    load_valid,
    make_photo,
    sidecars,
    temp_files,
    wait_for,
)

StartService = Callable[..., tuple[Service, FakeClassifier]]


@pytest.fixture
def start_service() -> Iterator[StartService]:
    """Start a Service on given folders with a FakeClassifier; always joined afterwards."""
    started: list[Service] = []

    def start(
        *folders: Path,
        fake: FakeClassifier | None = None,
        settle_time_s: float = 0.3,
        observer: Observer = "auto",
        output: OutputSettings | None = None,
    ) -> tuple[Service, FakeClassifier]:
        fake = fake or FakeClassifier()
        settings = Settings(
            watch=WatchSettings(
                folders=folders,
                settle_time_s=settle_time_s,
                observer=observer,
                rescan_interval_s=0,
            ),
            output=output or OutputSettings(),
        )
        service = Service(settings, classifier_factory=lambda _s: fake)
        service.start()
        started.append(service)
        idle_after_scan(service)  # the catch-up scan ran, and labelled what it found
        wait_for(lambda: service.status()["state"] == "idle", 20, "service idle")
        return service, fake

    yield start
    for service in started:
        service.join()


def checked_since(service: Service) -> Callable[[], bool]:
    """A condition: the settler began and ended a pass over its pending files since now."""
    settler, checks = service.settler, service.settler.checks
    return lambda: settler.checks >= checks + 2  # the pass under way may be older


def _await_sidecar(image: Path, timeout_s: float = 15) -> Path:
    sidecar = image.with_name(image.name + ".json")
    wait_for(sidecar.exists, timeout_s, f"sidecar of {image.name}")
    return sidecar


def test_copied_photos_get_one_valid_sidecar(
    watched: Path, start_service: StartService, photos: dict[str, Path]
) -> None:
    service, _ = start_service(watched)
    shutil.copy(photos["chelsea"], watched / "cat.jpg")
    wait_for(lambda: (watched / "cat.jpg.json").exists(), 15, "sidecar")
    record = load_valid(watched / "cat.jpg.json")
    assert record["status"] == "ok"
    assert record["image"]["path"] == "cat.jpg"
    assert record["image"]["width"] == 451
    assert len(record["predictions"]) == 5
    assert service.status()["recent"][0]["image"] == str(watched / "cat.jpg")


def test_slow_chunked_write_is_processed_once_when_complete(
    watched: Path, start_service: StartService, photos: dict[str, Path]
) -> None:
    service, fake = start_service(watched, settle_time_s=0.3)
    data = photos["astronaut"].read_bytes()
    target = watched / "slow.jpg"
    with target.open("wb") as f:
        for i in range(0, len(data), len(data) // 6):
            f.write(data[i : i + len(data) // 6])
            f.flush()
            time.sleep(0.6)  # a writer pausing longer than the quiet time (the scenario)
            # The settler looked at it since (quiet for longer than 0.3 s) and kept it:
            wait_for(checked_since(service), 5, "a settler check")
            assert service.settler.is_pending(target), "the write was never seen"
            assert not service.queue.is_queued(target), "taken before it was complete"
            assert not (watched / "slow.jpg.json").exists(), "taken before it was complete"
    wait_for(lambda: (watched / "slow.jpg.json").exists(), 15, "sidecar")
    idle_after_scan(service)  # its every event was handled before the sidecar was written
    record = load_valid(watched / "slow.jpg.json")
    assert record["status"] == "ok"
    assert record["image"]["bytes"] == len(data)
    assert fake.images == 1
    assert service.status()["failed"] == 0


def test_polling_observer_waits_for_a_quiet_file(
    watched: Path, start_service: StartService, photos: dict[str, Path]
) -> None:
    service, fake = start_service(watched, settle_time_s=1.5, observer="polling")
    data = photos["rocket"].read_bytes()
    target = watched / "slow.jpg"
    with target.open("wb") as f:
        for i in range(0, len(data), len(data) // 4):
            f.write(data[i : i + len(data) // 4])
            f.flush()
            time.sleep(0.5)
    wait_for(lambda: (watched / "slow.jpg.json").exists(), 20, "sidecar")
    heard(service, watched)  # every poll's news of slow.jpg handled since: nothing more
    assert load_valid(watched / "slow.jpg.json")["status"] == "ok"
    assert fake.images == 2  # slow.jpg once, and the marker


def test_part_file_renamed_and_moved_in_and_nested(
    watched: Path, tmp_path: Path, start_service: StartService, photos: dict[str, Path]
) -> None:
    service, _ = start_service(watched)
    part = watched / "download.jpg.part"
    shutil.copy(photos["coffee"], part)
    heard(service, watched)  # the .part file's events were handled
    assert [p.name for p in watched.glob("*.json")] == ["marker.jpg.json"], "a .part was taken"
    part.rename(watched / "download.jpg")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(photos["rocket"], outside / "moved.jpg")
    shutil.move(outside / "moved.jpg", watched / "moved.jpg")
    nested = watched / "2026" / "11" / "trip"
    nested.mkdir(parents=True)
    shutil.copy(photos["chelsea"], nested / "deep.JPG")
    for p in (watched / "download.jpg", watched / "moved.jpg", nested / "deep.JPG"):
        assert load_valid(_await_sidecar(p))["status"] == "ok"
    assert not (watched / "download.jpg.part.json").exists()


def test_ignored_and_own_files_never_queue(watched: Path, start_service: StartService) -> None:
    service, fake = start_service(watched)
    make_photo(watched / ".hidden.jpg")
    make_photo(watched / "@eaDir" / "thumb.jpg")
    make_photo(watched / "~$lock.jpg")
    (watched / "notes.txt").write_text("hello")
    (watched / "other.json").write_text("{}")
    make_photo(watched / "real.jpg")  # last: its sidecar means the events before it were heard
    wait_for(lambda: (watched / "real.jpg.json").exists(), 15, "sidecar")
    idle_after_scan(service)
    assert [p.name for p in sidecars(watched)] == ["other.json", "real.jpg.json"]
    assert fake.images == 1
    assert service.status()["queued"] == 0


def test_burst_of_2000_files_gives_exactly_2000_sidecars(
    watched: Path, start_service: StartService
) -> None:
    service, fake = start_service(watched)
    src = watched.parent / "src"
    for i in range(50):
        make_photo(src / f"{i}.jpg", seed=i, size=(64, 48))
    for i in range(2000):
        shutil.copy(src / f"{i % 50}.jpg", watched / f"burst_{i:04d}.jpg")
    # A rescan, as the periodic one would do: it catches anything inotify dropped.
    generation = service.scanner.request()
    wait_for(lambda: len(list(watched.glob("*.jpg.json"))) == 2000, 180, "2000 sidecars")
    idle_after_scan(service, generation, 60)  # the rescan ran, and all it found is done
    names = {p.name for p in watched.glob("*.json")}
    assert names == {f"burst_{i:04d}.jpg.json" for i in range(2000)}
    assert fake.images == 2000, "some image was classified twice"
    assert not temp_files(watched)
    for p in list(watched.glob("*.json"))[:50]:
        load_valid(p)


def test_corrupt_empty_and_wrong_content_get_error_sidecars(
    watched: Path, start_service: StartService, photos: dict[str, Path]
) -> None:
    service, _ = start_service(watched)
    (watched / "empty.jpg").write_bytes(b"")
    (watched / "text.jpg").write_text("this is not a photo")
    data = photos["chelsea"].read_bytes()
    (watched / "truncated.jpg").write_bytes(data[: len(data) // 3])
    shutil.copy(photos["coffee"], watched / "good.jpg")
    expected = {"empty.jpg": "empty_file", "text.jpg": "not_an_image", "truncated.jpg": "truncated"}
    for name in [*expected, "good.jpg"]:
        _await_sidecar(watched / name)
    for name, kind in expected.items():
        record = load_valid(watched / f"{name}.json")
        assert record["status"] == "error"
        assert record["predictions"] == []
        assert record["error"]["type"] == kind
    assert load_valid(watched / "good.jpg.json")["status"] == "ok"
    status = service.status()
    assert status["failed"] == 3
    assert status["done"] == 1
    assert {e["path"] for e in status["errors"]} >= {str(watched / n) for n in expected}


def test_restart_and_rescan_redo_nothing(
    watched: Path, start_service: StartService, photos: dict[str, Path]
) -> None:
    service, fake = start_service(watched)
    for i in range(5):
        make_photo(watched / f"{i}.jpg", seed=i)
    wait_for(lambda: len(sidecars(watched)) == 5, 15, "5 sidecars")
    wait_for(lambda: service.status()["state"] == "idle", 10, "idle")
    # A rewrite replaces the file (new inode).
    before = {p: (p.stat().st_ino, p.read_bytes()) for p in sidecars(watched)}
    (watched / "0.jpg").touch()  # a replayed event for an unchanged file
    generation = service.scanner.request()  # the rescan finds the touched photo
    idle_after_scan(service, generation)
    assert fake.images == 5
    assert service.status()["skipped"] == 1, "the touched photo was read and found unchanged"
    service.join()
    # A restart finds everything current: nothing classified, nothing rewritten but the
    # touched photo's recorded file identity (its labels and processed_at are kept).
    service2, fake2 = start_service(watched)  # returns once its catch-up scan is done
    assert service2.scan_generation >= 1
    assert fake2.images == 0
    status = service2.status()
    assert (status["done"], status["skipped"], status["failed"]) == (0, 0, 0)
    after = {p: (p.stat().st_ino, p.read_bytes()) for p in sidecars(watched)}
    touched = watched / "0.jpg.json"
    assert {p: v for p, v in after.items() if p != touched} == {
        p: v for p, v in before.items() if p != touched
    }
    old, new = json.loads(before[touched][1]), json.loads(after[touched][1])
    assert old["image"].pop("stat") != new["image"].pop("stat")
    assert old == new


def test_changed_image_is_reclassified(watched: Path, start_service: StartService) -> None:
    _, fake = start_service(watched)
    make_photo(watched / "a.jpg", seed=1)
    wait_for(lambda: (watched / "a.jpg.json").exists(), 15, "sidecar")
    first = load_valid(watched / "a.jpg.json")["image"]["sha256"]
    make_photo(watched / "a.jpg", seed=2)
    wait_for(
        lambda: load_valid(watched / "a.jpg.json")["image"]["sha256"] != first, 15, "new sidecar"
    )
    assert fake.images == 2


def test_catch_up_scan_finds_files_added_while_down(
    watched: Path, start_service: StartService
) -> None:
    for i in range(30):
        make_photo(watched / "sub" / f"{i}.jpg", seed=i, size=(64, 64))
    stale = watched / "sub" / ".0.jpg.json.abcd1234.dropsight-tmp"
    stale.write_text("{half")
    _, fake = start_service(watched)
    wait_for(lambda: len(sidecars(watched)) == 30, 30, "30 sidecars")
    assert fake.images == 30
    assert not stale.exists(), "stale temp file from a crash left behind"


def test_catch_up_scan_spares_temp_files_written_since_the_start(watched: Path) -> None:
    """Photos arrive while the model loads; the scan after it must not delete the writer's
    temp file in flight (seen: "cannot write cat.jpg.json: No such file or directory")."""
    loading = threading.Event()

    def slow_factory(_settings: Settings) -> FakeClassifier:
        loading.wait(10)
        return FakeClassifier()

    old = watched / ".old.jpg.json.00000000.dropsight-tmp"
    old.write_text("{half")
    os.utime(old, (time.time() - 60, time.time() - 60))
    service = Service(_settings_for(watched), classifier_factory=slow_factory)
    service.start()
    try:
        in_flight = watched / ".new.jpg.json.12345678.dropsight-tmp"
        in_flight.write_text("{being written")  # as the writer does, after the start
        loading.set()
        wait_for(lambda: not old.exists(), 20, "the dead process's temp file removed")
        wait_for(lambda: service.status()["state"] == "idle", 20, "idle after the scan")
        assert in_flight.exists()
    finally:
        service.join()


def _settings_for(folder: Path) -> Settings:
    return Settings(watch=WatchSettings(folders=(folder,), settle_time_s=0.3, rescan_interval_s=0))


def test_output_folder_mirrors_the_tree(
    watched: Path, tmp_path: Path, start_service: StartService
) -> None:
    out = tmp_path / "out"
    start_service(watched, output=OutputSettings(mode="folder", folder=out))
    make_photo(watched / "a" / "b" / "p.jpg")
    wait_for(lambda: (out / "a" / "b" / "p.jpg.json").exists(), 15, "mirrored sidecar")
    record = load_valid(out / "a" / "b" / "p.jpg.json")
    assert record["image"]["path"] == str(watched / "a" / "b" / "p.jpg")
    assert not sidecars(watched)


def test_unwritable_sidecar_target_is_a_status_error_not_a_crash(
    watched: Path, start_service: StartService
) -> None:
    service, _ = start_service(watched)
    # A folder where the sidecar must go blocks the write even for root.
    (watched / "blocked.jpg.json").mkdir()
    make_photo(watched / "blocked.jpg")
    wait_for(lambda: bool(service.status()["errors"]), 15, "the failure reported")
    status = service.status()
    assert "cannot write" in status["errors"][0]["message"]
    assert status["folders"][0]["error"] and "blocked.jpg.json" in status["folders"][0]["error"]
    assert not temp_files(watched)
    make_photo(watched / "fine.jpg", seed=3)  # the service goes on
    wait_for(lambda: (watched / "fine.jpg.json").exists(), 15, "next sidecar")
    assert not service.status()["folders"][0]["healthy"], "blocked.jpg still waits"
    (watched / "blocked.jpg.json").rmdir()  # the user clears the way: the retry writes it
    wait_for(lambda: (watched / "blocked.jpg.json").is_file(), 90, "the retried sidecar")
    wait_for(lambda: service.status()["folders"][0]["healthy"], 10, "healthy again")


def test_unwritable_output_folder(
    watched: Path, tmp_path: Path, start_service: StartService
) -> None:
    not_a_folder = tmp_path / "out"
    not_a_folder.write_text("a file where the output folder should be")
    service, _ = start_service(watched, output=OutputSettings(mode="folder", folder=not_a_folder))
    make_photo(watched / "p.jpg")
    wait_for(lambda: bool(service.status()["errors"]), 15, "the failure reported")
    assert "cannot write" in service.status()["errors"][0]["message"]
    assert service.status()["queued"] == 1, "waits for a retry"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_folder(watched: Path, start_service: StartService) -> None:
    service, _ = start_service(watched)
    make_photo(watched / "p.jpg")
    watched.chmod(0o555)
    try:
        wait_for(lambda: service.status()["failed"] >= 1, 15, "failure counted")
    finally:
        watched.chmod(0o755)


def test_watched_folder_deleted_and_recreated(watched: Path, start_service: StartService) -> None:
    service, _ = start_service(watched)
    make_photo(watched / "before.jpg")
    wait_for(lambda: (watched / "before.jpg.json").exists(), 15, "first sidecar")
    shutil.rmtree(watched)
    wait_for(lambda: not service.status()["folders"][0]["healthy"], 15, "folder reported missing")
    assert "not found" in str(service.status()["folders"][0]["error"])
    watched.mkdir()
    wait_for(lambda: service.status()["folders"][0]["healthy"], 15, "folder re-armed")
    make_photo(watched / "after.jpg")
    wait_for(lambda: (watched / "after.jpg.json").exists(), 15, "sidecar after re-arm")


def test_missing_folder_at_start_is_reported_then_armed(
    tmp_path: Path, start_service: StartService
) -> None:
    later = tmp_path / "later"
    service, _ = start_service(later)
    assert not service.status()["folders"][0]["healthy"]
    later.mkdir()
    make_photo(later / "x.jpg")
    wait_for(lambda: (later / "x.jpg.json").exists(), 15, "sidecar once the folder exists")


def test_pause_holds_work_and_resume_releases_it(
    watched: Path, start_service: StartService
) -> None:
    service, fake = start_service(watched)
    states: list[str] = []  # the service's state at each inference
    predict = fake.predict

    def recording(batch: Any) -> Any:
        states.append(service.status()["state"])
        return predict(batch)

    fake.predict = recording  # type: ignore[method-assign]
    service.pause()
    make_photo(watched / "p.jpg")
    wait_for(lambda: service.queue.pending() == 1, 10, "settled and queued while paused")
    assert service.status()["state"] == "paused"
    assert service.status()["queued"] == 1
    # A scan while paused: it runs (only labelling pauses) and queues nothing twice.
    generation = service.scanner.request()
    assert service.scanner.wait_for(generation, 10)
    assert service.status()["queued"] == 1
    assert fake.images == 0
    service.resume()
    wait_for(lambda: (watched / "p.jpg.json").exists(), 15, "sidecar after resume")
    assert states == ["working"], "labelled while paused"


def test_model_that_fails_to_load_is_a_status_error(watched: Path) -> None:
    def broken(_s: Settings) -> FakeClassifier:
        raise RuntimeError("weights are damaged")

    service = Service(Settings(watch=WatchSettings(folders=(watched,))), classifier_factory=broken)
    service.start()
    try:
        wait_for(lambda: service.status()["state"] == "error", 10, "error state")
        assert "weights are damaged" in str(service.status()["model"]["error"])
    finally:
        service.join()


def test_classify_one_file_through_the_controller(
    watched: Path, start_service: StartService, photos: dict[str, Path]
) -> None:
    service, _ = start_service(watched)
    record = service.classify(photos["coffee"])
    assert record["status"] == "ok"
    assert len(record["predictions"]) == 5
    with pytest.raises(FileNotFoundError):
        service.classify(watched / "missing.jpg")


def test_stop_during_a_batch_leaves_no_partial_files(watched: Path) -> None:
    fake = FakeClassifier(delay_s=0.05)
    for i in range(200):
        make_photo(watched / f"{i}.jpg", seed=i, size=(64, 64))
    service = Service(
        Settings(watch=WatchSettings(folders=(watched,), rescan_interval_s=0)),
        classifier_factory=lambda _s: fake,
    )
    service.start()
    wait_for(lambda: fake.images > 20, 30, "work under way")
    started = time.monotonic()
    service.join()
    assert time.monotonic() - started < 10
    assert not temp_files(watched)
    done = sidecars(watched)
    assert 0 < len(done) < 200
    for p in done:
        load_valid(p)


def test_settings_overrides_dedupe_folders(watched: Path) -> None:
    s = Settings(watch=WatchSettings(folders=(watched,)))
    s2 = s.with_overrides(watch=[watched, watched], model="efficientnet-lite0")
    assert s2.watch.folders == (watched,)
    assert s2.model.name == "efficientnet-lite0"
    assert replace(s2, source=None).model.fallback == "efficientnet-lite0"


def test_dead_observer_is_restarted_and_misses_nothing(
    watched: Path, start_service: StartService
) -> None:
    service, _ = start_service(watched)
    watch = service.folders.watches()[0]
    observer = watch._observer
    assert observer is not None
    observer.stop()  # as if the observer thread had died
    observer.join(5)
    make_photo(watched / "during.jpg")  # no observer sees this one
    wait_for(lambda: watch.health.restarts == 1, 15, "observer restarted")
    # The re-arm triggers a scan, which finds what arrived while nobody watched.
    wait_for(lambda: (watched / "during.jpg.json").exists(), 15, "sidecar of the missed file")


def test_watch_limit_falls_back_to_polling(
    watched: Path, start_service: StartService, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from dropsight.daemon.watch import observer as watcher

    class LimitedObserver(watcher.PollingObserver):  # stands in for inotify at its limit
        def schedule(self, *args: Any, **kwargs: Any) -> Any:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(watcher, "Observer", LimitedObserver)
    service, _ = start_service(watched, settle_time_s=0.5)
    assert service.status()["folders"][0]["observer"] == "PollingObserver"
    make_photo(watched / "p.jpg")
    wait_for(lambda: (watched / "p.jpg.json").exists(), 20, "sidecar via polling")


def test_whole_folder_moved_in(watched: Path, tmp_path: Path, start_service: StartService) -> None:
    start_service(watched)
    album = tmp_path / "album"
    for i in range(5):
        make_photo(album / "day1" / f"{i}.jpg", seed=i)
    shutil.move(album, watched / "album")
    for i in range(5):
        _await_sidecar(watched / "album" / "day1" / f"{i}.jpg")


def test_config_changes_apply_without_a_restart(tmp_path: Path) -> None:
    from dropsight.config.settings import load

    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(f'[watch]\nfolders = ["{first}"]\nsettle_time_s = 0.3\n', "utf-8")
    fake = FakeClassifier()
    service = Service(
        load(config), classifier_factory=lambda _s: fake, reload_settings=lambda: load(config)
    )
    service.start()
    try:
        wait_for(lambda: service.status()["state"] == "idle", 20, "idle")
        make_photo(second / "early.jpg")  # not watched yet
        config.write_text(
            f'# my folders\n[watch]\nfolders = ["{first}", "{second}"]\nsettle_time_s = 0.3\n',
            "utf-8",
        )
        wait_for(lambda: len(service.status()["folders"]) == 2, 15, "the new folder watched")
        wait_for((second / "early.jpg.json").exists, 15, "the new folder scanned")
        make_photo(second / "late.jpg", seed=2)
        wait_for((second / "late.jpg.json").exists, 15, "events from the new folder")
        # A broken edit is reported and changes nothing.
        config.write_text("[watch]\nfolders = 3\n", "utf-8")
        wait_for(
            lambda: any("not applied" in e["message"] for e in service.status()["errors"]),
            15,
            "the config error reported",
        )
        assert len(service.status()["folders"]) == 2
        # Dropping a folder stops watching it.
        config.write_text(f'[watch]\nfolders = ["{first}"]\nsettle_time_s = 0.3\n', "utf-8")
        wait_for(lambda: len(service.status()["folders"]) == 1, 15, "the folder dropped")
        make_photo(second / "ignored.jpg", seed=3)
        make_photo(first / "kept.jpg", seed=4)
        wait_for((first / "kept.jpg.json").exists, 15, "the kept folder still watched")
        assert not (second / "ignored.jpg.json").exists()
    finally:
        service.join()


def test_model_switch_under_a_burst_then_relabel_exactly_once(watched: Path) -> None:
    """The batch in flight finishes on the old model; then the new one labels every photo once."""
    from dropsight.daemon.runtime.classifier import ModelInfo

    old = FakeClassifier(delay_s=0.01)
    old.info = ModelInfo(
        name="efficientnet-lite0",
        fingerprint="a" * 64,
        input_size=(224, 224),
        requested="vgg16",
        fallback_reason="vgg16 could not be loaded: VGG16 weights not found",
        requested_missing=True,
    )
    new = FakeClassifier(delay_s=0.002)
    new.info = ModelInfo(name="vgg16", fingerprint="b" * 64, input_size=(224, 224))
    models = [old]
    service = Service(
        Settings(watch=WatchSettings(folders=(watched,), settle_time_s=0.3, rescan_interval_s=0)),
        classifier_factory=lambda _s: models[-1],
    )
    service.start()
    try:
        wait_for(lambda: service.status()["state"] == "idle", 20, "idle")
        assert service.status()["model"]["missing"] == {
            "name": "vgg16",
            "download_bytes": 553_467_096,
        }
        for i in range(150):
            make_photo(watched / f"{i:03d}.jpg", seed=i, size=(64, 48))
        wait_for(lambda: old.images >= 20, 30, "the old model at work")
        models.append(new)
        service.reload_model()  # as after `dropsight models get vgg16`
        wait_for(lambda: service.status()["model"]["name"] == "vgg16", 30, "the switch")
        assert service.status()["model"]["missing"] is None

        def all_new() -> bool:
            found = sidecars(watched)
            return len(found) == 150 and all(
                load_valid(p)["model"]["name"] == "vgg16" for p in found
            )

        wait_for(all_new, 60, "every photo labelled by the new model")
        wait_for(lambda: service.status()["state"] == "idle", 30, "idle")
        assert new.images == 150, "the new model labelled some photo twice, or missed one"
        assert 20 <= old.images < 150
        assert len(sidecars(watched)) == 150
        assert not temp_files(watched)
    finally:
        service.join()


def test_relabel_on_demand_waits_for_the_request(watched: Path) -> None:
    from dropsight.config.settings import ModelSettings
    from dropsight.daemon.runtime.classifier import ModelInfo

    old, new = FakeClassifier(), FakeClassifier()
    new.info = ModelInfo(name="vgg16", fingerprint="b" * 64, input_size=(224, 224))
    models = [old]
    service = Service(
        Settings(
            watch=WatchSettings(folders=(watched,), settle_time_s=0.3, rescan_interval_s=0),
            model=ModelSettings(relabel="on-demand"),
        ),
        classifier_factory=lambda _s: models[-1],
    )
    service.start()
    try:
        for i in range(10):
            make_photo(watched / f"{i}.jpg", seed=i)
        wait_for(lambda: len(sidecars(watched)) == 10, 20, "10 sidecars")
        models.append(new)
        service.reload_model()
        wait_for(lambda: service.status().get("relabel") is not None, 20, "re-label offered")
        assert service.status().get("relabel") == {"model": "vgg16", "pending": 10}
        make_photo(watched / "new.jpg", seed=42)  # new photos get the new model at once
        wait_for((watched / "new.jpg.json").exists, 15, "a new photo labelled")
        assert load_valid(watched / "new.jpg.json")["model"]["name"] == "vgg16"
        assert new.images == 1
        service.relabel()
        wait_for(lambda: new.images == 11, 20, "re-labelled on request")
        assert service.status().get("relabel") is None
    finally:
        service.join()


def test_xmp_keywords_beside_each_labelled_photo(
    watched: Path, start_service: StartService
) -> None:
    from dropsight.daemon.outputs.xmp import packet

    (watched / "broken.jpg.xmp").write_bytes(b"<not xmp")
    service, _ = start_service(watched, output=OutputSettings(xmp="beside"))
    photos = [make_photo(watched / f"{i}.jpg", seed=i) for i in range(3)]
    make_photo(watched / "broken.jpg", seed=9)
    for p in photos:
        wait_for(packet.xmp_path(p).exists, 15, f"XMP of {p.name}")
        record = load_valid(p.with_name(p.name + ".json"))
        names = [q["name"] for q in record["predictions"] if q["score"] >= 0.3]
        assert names
        assert packet.read_keywords(packet.xmp_path(p))[packet.SUBJECT][: len(names)] == names
    # A photo tool's broken file is reported, left alone, and costs the photo nothing else.
    wait_for((watched / "broken.jpg.json").exists, 15, "the JSON sidecar of broken.jpg")
    wait_for(
        lambda: any("XMP not written" in e["message"] for e in service.status()["errors"]),
        15,
        "the XMP error in status",
    )
    assert (watched / "broken.jpg.xmp").read_bytes() == b"<not xmp"
    assert not temp_files(watched)


def test_turning_xmp_on_catches_up_then_follows_new_photos(tmp_path: Path) -> None:
    from dropsight.config.settings import load

    folder = tmp_path / "photos"
    folder.mkdir()
    config = tmp_path / "config.toml"
    base = f'[watch]\nfolders = ["{folder}"]\nsettle_time_s = 0.3\n'
    config.write_text(base, "utf-8")
    fake = FakeClassifier()
    service = Service(
        load(config), classifier_factory=lambda _s: fake, reload_settings=lambda: load(config)
    )
    service.start()
    try:
        early = [make_photo(folder / f"early{i}.jpg", seed=i) for i in range(4)]
        for p in early:
            wait_for(p.with_name(p.name + ".json").exists, 15, "labels while XMP is off")
        assert not list(folder.glob("*.xmp"))
        config.write_text(base + '[output]\nxmp = "beside"\nxmp_name = "IMG.xmp"\n', "utf-8")
        for p in early:
            wait_for((folder / f"{p.stem}.xmp").exists, 15, f"caught-up XMP of {p.name}")
        late = make_photo(folder / "late.jpg", seed=7)
        wait_for((folder / "late.xmp").exists, 15, "XMP of a new photo")
        assert fake.images == 5  # catching up read sidecars; nothing was labelled twice
        assert "output" not in [e["message"] for e in service.status()["errors"]]
        assert late.exists()
    finally:
        service.join()
