"""The tray menu model, driven without a display."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dropsight.config.settings import DEFAULT_TOML
from dropsight.daemon.core import paths
from dropsight.tray.icons import tooltip_for
from dropsight.tray.menu import MenuItem, build_menu, log_target, settings_file


class FakeClient:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")

    def rescan(self) -> None:
        self.calls.append("rescan")

    def get_model(self, name: str) -> None:
        self.calls.append(f"get_model {name}")

    def relabel(self) -> None:
        self.calls.append("relabel")


class FakeHost:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def open_path(self, path: Path) -> None:
        self.calls.append(("open_path", path))

    def open_viewer(self, *args: str) -> None:
        self.calls.append(("open_viewer", *args))

    def start_service(self) -> None:
        self.calls.append(("start_service",))

    def set_autostart(self, enabled: bool) -> None:
        self.calls.append(("set_autostart", enabled))

    def set_xmp(self, enabled: bool) -> None:
        self.calls.append(("set_xmp", enabled))

    def quit(self) -> None:
        self.calls.append(("quit",))


def make_status(state: str = "working", **extra: Any) -> Any:
    """A status with only the fields the menu reads (the tray tolerates partial snapshots)."""
    base: dict[str, Any] = {
        "state": state,
        "done": 11,
        "queued": 328,
        "failed": 1,
        "model": {"name": "vgg16", "requested": "vgg16", "fallback": False},
        "folders": [{"path": "/photos", "healthy": True, "error": None}],
        "recent": [
            {
                "image": "/photos/coffee.jpg",
                "sidecar": "/photos/coffee.jpg.json",
                "status": "ok",
                "label": "espresso",
                "score": 0.873,
                "time": "2026-11-24T05:00:00Z",
            },
            {
                "image": "/photos/broken.jpg",
                "sidecar": "/photos/broken.jpg.json",
                "status": "error",
                "label": None,
                "score": None,
                "time": "2026-11-24T05:00:01Z",
            },
        ],
    }
    base.update(extra)
    return base


def by_label(items: list[MenuItem]) -> dict[str, MenuItem]:
    return {item.label: item for item in items if not item.is_separator}


def labels(items: list[MenuItem]) -> list[str]:
    return [item.label for item in items]


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


@pytest.fixture
def host() -> FakeHost:
    return FakeHost()


def test_connected_menu_has_every_entry(client: FakeClient, host: FakeHost) -> None:
    status = make_status(output={"xmp": "off", "xmp_name": "IMG.jpg.xmp"})
    items = build_menu(status, client, host, autostart_enabled=False)
    assert labels(items) == [
        "Dropsight: 12 of 340, 1 failed",
        "Open viewer",
        "Pause",
        "-",
        "Open watched folder",
        "Recent results",
        "Find photos\u2026",
        "Classify an image...",
        "Rescan now",
        "-",
        "Start at login",
        "Write XMP keywords",
        "Settings",
        "Open log",
        "-",
        "Quit",
    ]
    assert all(item.enabled for item in items if not item.is_separator and item is not items[0])


def test_status_line_is_the_tooltip_and_disabled(client: FakeClient, host: FakeHost) -> None:
    status = make_status()
    first = build_menu(status, client, host, autostart_enabled=False)[0]
    assert first.label == tooltip_for(status)
    assert not first.enabled
    assert first.action is None


def test_pause_and_resume_drive_the_client(client: FakeClient, host: FakeHost) -> None:
    pause = by_label(build_menu(make_status("working"), client, host, False))["Pause"]
    assert pause.action is not None
    pause.action()
    resume = by_label(build_menu(make_status("paused"), client, host, False))["Resume"]
    assert resume.action is not None
    resume.action()
    rescan = by_label(build_menu(make_status(), client, host, False))["Rescan now"]
    assert rescan.action is not None
    rescan.action()
    assert client.calls == ["pause", "resume", "rescan"]


def test_click_on_icon_opens_viewer(client: FakeClient, host: FakeHost) -> None:
    items = build_menu(make_status(), client, host, autostart_enabled=False)
    defaults = [item for item in items if item.default]
    assert [item.label for item in defaults] == ["Open viewer"]
    assert defaults[0].action is not None
    defaults[0].action()
    assert host.calls == [("open_viewer",)]


def test_disconnected_menu(host: FakeHost) -> None:
    items = by_label(build_menu(None, None, host, False, can_start_service=True))
    assert items["Dropsight: not running"].enabled is False
    for name in ("Pause", "Rescan now", "Classify an image...", "Open watched folder"):
        assert not items[name].enabled, name
        assert items[name].action is None or name == "Classify an image..."
    for name in ("Open viewer", "Settings", "Open log", "Start service", "Quit"):
        assert items[name].enabled, name
    start = items["Start service"].action
    assert start is not None
    start()
    assert host.calls == [("start_service",)]


def test_start_service_only_offered_when_disconnected(client: FakeClient, host: FakeHost) -> None:
    items = build_menu(make_status(), client, host, False, can_start_service=True)
    assert "Start service" not in labels(items)


def test_classify_opens_viewer_with_chooser(client: FakeClient, host: FakeHost) -> None:
    action = by_label(build_menu(make_status(), client, host, False))["Classify an image..."].action
    assert action is not None
    action()
    assert host.calls == [("open_viewer", "--choose")]


def test_single_watched_folder_opens_directly(client: FakeClient, host: FakeHost) -> None:
    item = by_label(build_menu(make_status(), client, host, False))["Open watched folder"]
    assert item.submenu == ()
    assert item.action is not None
    item.action()
    assert host.calls == [("open_path", Path("/photos"))]


def test_several_watched_folders_make_a_submenu(client: FakeClient, host: FakeHost) -> None:
    folders = [
        {"path": "/photos", "healthy": True, "error": None},
        {"path": "/nas/camera", "healthy": False, "error": "gone"},
    ]
    item = by_label(build_menu(make_status(folders=folders), client, host, False))[
        "Open watched folder"
    ]
    assert [sub.label for sub in item.submenu] == ["/photos", "/nas/camera (unavailable)"]
    action = item.submenu[1].action
    assert action is not None
    action()
    assert host.calls == [("open_path", Path("/nas/camera"))]


def test_no_watched_folder_is_disabled(client: FakeClient, host: FakeHost) -> None:
    item = by_label(build_menu(make_status(folders=[]), client, host, False))["Open watched folder"]
    assert not item.enabled


def test_recent_results_submenu(client: FakeClient, host: FakeHost) -> None:
    item = by_label(build_menu(make_status(), client, host, False))["Recent results"]
    assert [sub.label for sub in item.submenu] == [
        "coffee.jpg: espresso 87%",
        "broken.jpg: could not be read",
    ]
    action = item.submenu[0].action
    assert action is not None
    action()
    assert host.calls == [
        ("open_viewer", "--image", "/photos/coffee.jpg", "--sidecar", "/photos/coffee.jpg.json")
    ]


def test_recent_results_capped_and_disabled_when_empty(client: FakeClient, host: FakeHost) -> None:
    many = [dict(make_status()["recent"][0], image=f"/p/{i}.jpg") for i in range(30)]
    item = by_label(build_menu(make_status(recent=many), client, host, False))["Recent results"]
    assert len(item.submenu) == 10
    empty = by_label(build_menu(make_status(recent=[]), client, host, False))["Recent results"]
    assert not empty.enabled


@pytest.mark.parametrize("enabled", [True, False])
def test_start_at_login_toggle(client: FakeClient, host: FakeHost, enabled: bool) -> None:
    item = by_label(build_menu(make_status(), client, host, enabled))["Start at login"]
    assert item.checked is enabled
    assert item.action is not None
    item.action()
    assert host.calls == [("set_autostart", not enabled)]


def test_fallback_model_warning_line(client: FakeClient, host: FakeHost) -> None:
    model = {"name": "efficientnet-lite0", "requested": "vgg16", "fallback": True}
    items = build_menu(make_status(model=model), client, host, False)
    assert items[1].label == "Using fallback model efficientnet-lite0 (vgg16 could not be loaded)"
    assert not items[1].enabled


def test_quit(client: FakeClient, host: FakeHost) -> None:
    action = by_label(build_menu(make_status(), client, host, False))["Quit"].action
    assert action is not None
    action()
    assert host.calls == [("quit",)]


def test_settings_creates_config_from_defaults(
    client: FakeClient, host: FakeHost, app_home: Path
) -> None:
    action = by_label(build_menu(None, None, host, False))["Settings"].action
    assert action is not None
    action()
    target = paths.config_file()
    assert host.calls == [("open_path", target)]
    assert target.read_text() == DEFAULT_TOML.read_text()


def test_settings_uses_the_services_config_path(tmp_path: Path) -> None:
    config = tmp_path / "elsewhere" / "my.toml"
    assert settings_file(make_status(config_path=str(config))) == config
    assert config.exists()


def test_settings_never_overwrites(tmp_path: Path) -> None:
    config = tmp_path / "mine.toml"
    config.write_text("[watch]\nfolders = ['~/Pictures']\n")
    settings_file(make_status(config_path=str(config)))
    assert config.read_text() == "[watch]\nfolders = ['~/Pictures']\n"


def test_open_log_opens_file_or_its_folder(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "dropsight.log"
    assert log_target(make_status(log_path=str(log_file))) == log_file.parent
    assert log_file.parent.is_dir()
    log_file.write_text("hello\n")
    assert log_target(make_status(log_path=str(log_file))) == log_file
    assert log_target(None) == paths.log_dir()


@pytest.mark.parametrize("xmp", ["off", "beside"])
def test_xmp_toggle_follows_the_service_and_flips_it(xmp: str) -> None:
    host = FakeHost()
    status = make_status(output={"xmp": xmp, "xmp_name": "IMG.jpg.xmp"})
    item = next(i for i in build_menu(status, FakeClient(), host, False) if "XMP" in i.label)
    assert item.checked is (xmp == "beside")
    assert item.action is not None
    item.action()
    assert host.calls == [("set_xmp", xmp == "off")]
    offline = next(i for i in build_menu(None, None, host, False) if "XMP" in i.label)
    assert not offline.enabled


MISSING_VGG16 = {
    "name": "efficientnet-lite0",
    "requested": "vgg16",
    "fallback": True,
    "fallback_reason": "vgg16 could not be loaded: VGG16 weights not found",
    "missing": {"name": "vgg16", "download_bytes": 553_467_096},
}


def test_first_run_offers_the_download_calmly(client: FakeClient, host: FakeHost) -> None:
    status = make_status("idle", model=dict(MISSING_VGG16, fetch=None))
    items = build_menu(status, client, host, False)
    texts = labels(items)
    assert "Labelling with EfficientNet-Lite0 until VGG16 is downloaded" in texts
    offer = by_label(items)["Download VGG16 (553 MB)\u2026"]
    assert offer.enabled and offer.action is not None
    offer.action()
    assert client.calls == ["get_model vgg16"]
    assert tooltip_for(status) == "Dropsight: idle, 11 done, 1 failed with EfficientNet-Lite0"
    offline = build_menu(status, None, host, False)
    assert not by_label(offline)["Download VGG16 (553 MB)\u2026"].enabled


def test_download_progress_then_failure_in_menu_and_tooltip(
    client: FakeClient, host: FakeHost
) -> None:
    fetch = {
        "name": "vgg16",
        "stage": "downloading",
        "done_bytes": 250 * 2**20,
        "total_bytes": 500 * 2**20,
        "rate_bps": 10 * 2**20,
        "eta_s": 25.0,
        "elapsed_s": 25.0,
        "error": None,
    }
    status = make_status("idle", model=dict(MISSING_VGG16, fetch=fetch))
    texts = labels(build_menu(status, client, host, False))
    assert "Downloading VGG16: 50% of 524 MB (10 MB/s, 25 s left)" in texts
    assert not [t for t in texts if t.startswith("Download VGG16")]
    assert tooltip_for(status).endswith(
        "\u00b7 Downloading VGG16: 50% of 524 MB (10 MB/s, 25 s left)"
    )
    failed = dict(fetch, stage="failed", error="no network: cannot reach the server")
    texts = labels(
        build_menu(make_status(model=dict(MISSING_VGG16, fetch=failed)), client, host, False)
    )
    assert "Download failed: no network: cannot reach the server" in texts
    assert "Download VGG16 (553 MB)\u2026" in texts  # try again


def test_relabel_on_demand_is_offered_with_the_count(client: FakeClient, host: FakeHost) -> None:
    status = make_status("idle", relabel={"model": "vgg16", "pending": 1234})
    item = by_label(build_menu(status, client, host, False))["Re-label 1,234 photos with VGG16"]
    assert item.action is not None
    item.action()
    assert client.calls == ["relabel"]
    assert not [
        i
        for i in build_menu(make_status(relabel=None), client, host, False)
        if "Re-label" in i.label
    ]


def test_sizes_are_written_one_way() -> None:
    """One helper for every size (the menu said "528 MB" beside the download's "553 MB")."""
    from dropsight.tray.units import human_rate, human_size

    assert human_size(553_467_096) == "553 MB"
    assert human_size(1_234_000_000) == "1.2 GB"
    assert human_size(999) == "999 bytes"
    assert human_size(5_500) == "5.5 kB"
    assert human_rate(10 * 2**20) == "10 MB/s"
