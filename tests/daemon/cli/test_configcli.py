"""`dropsight config` and `dropsight watch` as a person runs them, against a running service."""

from __future__ import annotations

import json
from pathlib import Path

from dropsight.config.settings import load
from dropsight.daemon.core import paths
from dropsight.daemon.service.service import Service
from tests.daemon.helpers import FakeClassifier, dropsight, make_photo, wait_for
from tests.daemon.outputs.test_library import labelled_photo


def test_config_init_writes_the_documented_defaults_once(app_home: Path) -> None:
    config = paths.config_file()
    first = dropsight("config", "init")
    assert first.returncode == 0, first.stderr
    assert str(config) in first.stdout
    assert "# Folders to watch." in config.read_text("utf-8")
    assert load(config) == load(None).__class__(source=config)  # the defaults, documented
    config.write_text("# mine\n", "utf-8")
    again = dropsight("config", "init")
    assert again.returncode == 1
    assert "exists already" in again.stderr
    assert config.read_text("utf-8") == "# mine\n"


def test_config_show_prints_settings_in_effect(app_home: Path) -> None:
    config = paths.config_file()
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[model]\ntop_k = 3\n", "utf-8")
    shown = dropsight("config", "show")
    assert shown.returncode == 0, shown.stderr
    assert "top_k = 3" in shown.stdout and "[output]" in shown.stdout
    assert "# Folders to watch." in dropsight("config", "show", "--defaults").stdout
    config.write_text("[model]\ntop_k = 0\n", "utf-8")
    bad = dropsight("config", "show")
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        f"dropsight: config error: {config}: model.top_k = 0 is invalid; "
        "expected an integer from 1 to 1000"
    ]
    assert bad.stdout == ""


def test_watch_add_remove_list_keep_comments_and_reach_a_running_service(
    app_home: Path, tmp_path: Path
) -> None:
    config = paths.config_file()
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("# my settings\n[watch]\nsettle_time_s = 0.3 # quick\n", "utf-8")
    first, second = tmp_path / "Phone", tmp_path / "Café photos"
    first.mkdir()
    second.mkdir()
    fake = FakeClassifier()
    service = Service(
        load(config), classifier_factory=lambda _s: fake, reload_settings=lambda: load(config)
    )
    service.start()
    try:
        wait_for(lambda: service.status()["state"] in ("idle", "working"), 20, "service up")
        added = dropsight("watch", "add", first, second)
        assert added.returncode == 0, added.stderr
        assert f"watching: {first}" in added.stdout
        text = config.read_text("utf-8")
        assert text.startswith("# my settings\n") and "settle_time_s = 0.3 # quick" in text
        wait_for(lambda: len(service.status()["folders"]) == 2, 15, "both folders watched")
        make_photo(second / "new.jpg")
        wait_for((second / "new.jpg.json").exists, 15, "a photo in an added folder labelled")

        assert dropsight("watch", "add", first).stdout.startswith("already watched")
        listed = dropsight("watch", "list").stdout.splitlines()
        assert listed == [str(first), str(second)]
        missing = dropsight("watch", "add", tmp_path / "nope")
        assert missing.returncode == 1 and "not a folder" in missing.stderr

        removed = dropsight("watch", "remove", first)
        assert removed.returncode == 0, removed.stderr
        wait_for(lambda: len(service.status()["folders"]) == 1, 15, "the folder dropped")
        assert dropsight("watch", "remove", first).returncode == 1
        assert load(config).watch.folders == (second,)
    finally:
        service.join()


def test_the_default_folder_stays_watched_when_the_list_changes(
    app_home: Path, tmp_path: Path
) -> None:
    default = paths.default_watch_folder()
    labelled_photo(default, "golden.jpg", {207: 0.9})  # the service made it and labelled here
    other = tmp_path / "Phone"
    other.mkdir()
    assert dropsight("watch", "list").stdout.startswith(f"{default}  (the default")
    kept = dropsight("watch", "remove", default)  # nothing listed: nothing to take it out of
    assert kept.returncode == 1 and "add the folder to watch instead first" in kept.stderr
    assert dropsight("watch", "list").stdout.startswith(f"{default}  (the default")

    added = dropsight("watch", "add", other)
    assert added.returncode == 0, added.stderr
    assert f"still watching: {default}" in added.stdout
    assert load(paths.config_file()).watch.folders == (default, other)
    assert dropsight("watch", "list").stdout.splitlines() == [str(default), str(other)]

    removed = dropsight("watch", "remove", default)  # a real entry now: it can go
    assert removed.returncode == 0 and f"no longer watched: {default}" in removed.stdout
    assert dropsight("watch", "list").stdout.splitlines() == [str(other)]
    last = dropsight("watch", "remove", other)
    assert f"none left in the config: the service watches {default}" in last.stdout


def test_export_and_xmp_default_to_the_folder_the_service_watches(app_home: Path) -> None:
    default = paths.default_watch_folder()
    labelled_photo(default, "golden.jpg", {207: 0.9})
    exported = dropsight("export", "--format", "jsonl")
    assert exported.returncode == 0, exported.stderr
    assert [json.loads(line)["path"] for line in exported.stdout.splitlines()] == [
        str(default / "golden.jpg")
    ]
    xmp = dropsight("xmp", "write")
    assert xmp.returncode == 0, xmp.stderr
    assert (default / "golden.jpg.xmp").is_file()
