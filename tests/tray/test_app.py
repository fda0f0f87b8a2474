"""The tray application's logic without a display: starting, watching and stopping a service."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dropsight.daemon.api.server import ControlServer, control_file
from dropsight.daemon.core import paths
from dropsight.tray import app as tray_app
from dropsight.tray import desktop
from dropsight.tray.app import TrayApp
from dropsight.tray.icons import TOOLTIP_MAX_CHARS, tooltip_for
from tests.tray.fakes import FakeController, fake_status

FAKE_SERVICE = [sys.executable, "-m", "tests.tray.fakes"]
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def wait_for(condition: Callable[[], object], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.05)


class Spawner:
    """Records commands; runs the fake service for the service command, a sleeper otherwise."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    def __call__(self, command: list[str]) -> subprocess.Popen[bytes]:
        self.commands.append(command)
        real = command if command[:3] == FAKE_SERVICE[:3] or "-c" in command else SLEEPER
        process = subprocess.Popen(real, cwd=desktop.working_dir())
        self.processes.append(process)
        return process

    def cleanup(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(10)


@pytest.fixture
def spawner() -> Iterator[Spawner]:
    spawn = Spawner()
    try:
        yield spawn
    finally:
        spawn.cleanup()


def test_starts_service_and_stops_it_on_quit(spawner: Spawner) -> None:
    app = TrayApp(start_service=True, service_command=FAKE_SERVICE, spawn=spawner)
    app.poll_once()
    assert spawner.commands == [FAKE_SERVICE]
    status = app.display_status()
    assert status is not None
    assert status["state"] == "starting"

    def connected() -> bool:
        app.poll_once()
        return app.client is not None

    wait_for(connected)
    shown = app.display_status()
    assert shown is not None
    assert shown["done"] == 12
    assert app.menu()[0].label == "Dropsight: 13 of 340, 1 failed"
    service = app.started_service
    assert service is not None
    app.quit()
    app.shutdown()
    # Stopped through the API (the service's own shutdown path), not killed.
    assert service.wait(10) == 0
    assert not control_file().exists()


def test_leaves_a_service_it_did_not_start_running(spawner: Spawner) -> None:
    fake = FakeController()
    with ControlServer(fake):
        app = TrayApp(start_service=True, service_command=FAKE_SERVICE, spawn=spawner)
        app.poll_once()
        assert spawner.commands == []
        assert app.client is not None
        app.shutdown()
        assert fake.calls == []


def test_no_start_service_option(spawner: Spawner) -> None:
    app = TrayApp(start_service=False, service_command=FAKE_SERVICE, spawn=spawner)
    app.poll_once()
    app.poll_once()
    assert spawner.commands == []
    assert app.display_status() is None
    labels = [item.label for item in app.menu()]
    assert labels[0] == "Dropsight: not running"
    assert "Start service" in labels


def test_service_that_dies_shows_an_error_and_is_not_restarted(spawner: Spawner) -> None:
    dying = [sys.executable, "-c", "raise SystemExit(4)"]
    app = TrayApp(start_service=True, service_command=dying, spawn=spawner)
    app.poll_once()
    spawner.processes[0].wait(10)
    app.poll_once()
    status = app.display_status()
    assert status is not None
    assert status["state"] == "error"
    assert "code 4" in status["errors"][0]["message"]
    app.poll_once()
    assert len(spawner.commands) == 1  # the user restarts it from the menu
    app.start_service()
    assert len(spawner.commands) == 2
    app.shutdown()


def test_a_bad_config_reaches_the_tooltip_menu_and_log() -> None:
    """The real `dropsight service`, started as the tray does (output discarded), refuses
    `top_k = 0`: the tooltip, the menu and the log say why."""
    from dropsight.daemon.core import logs

    config = paths.config_file()
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[model]\ntop_k = 0\n", "utf-8")
    service = [sys.executable, "-m", "dropsight.daemon", "service"]
    app = TrayApp(start_service=True, service_command=service, spawn=desktop.spawn)
    app.poll_once()
    started = app.started_service
    assert started is not None
    assert started.wait(60) == 2
    app.poll_once()
    reason = f"{config}: model.top_k = 0 is invalid; expected an integer from 1 to 1000"
    status = app.display_status()
    assert status is not None and status["state"] == "error"
    assert status["errors"][0]["message"] == f"the service could not start: config error: {reason}"
    labels = [item.label for item in app.menu()]
    assert labels[0].startswith("Dropsight: error: the service could not start: config error:")
    assert any(label.endswith("from 1 to 1000") for label in labels[:2]), labels[:2]
    assert f"not started: config error: {reason}" in logs.log_file().read_text("utf-8")
    tooltip = tooltip_for(status)
    assert len(tooltip) <= TOOLTIP_MAX_CHARS
    assert tooltip.startswith("Dropsight: error: the service could not start: config error: ")
    assert "model.top_k = 0 is invalid" in tooltip and str(config) not in tooltip
    # Fixed in the file: the error goes at the next poll, without a click on Start.
    config.write_text("[model]\ntop_k = 5\n", "utf-8")
    app.poll_once()
    assert app.display_status() is None
    app.poll_once()
    assert app.display_status() is None
    app.shutdown()


def test_an_invalid_config_saved_while_running_shows_until_fixed() -> None:
    """The service keeps its settings when the edited file is invalid: the tray says so
    (not "idle") until the file is fixed (issue 21 item 3)."""
    from dropsight.config.settings import load
    from dropsight.daemon.service.service import Service
    from tests.daemon.helpers import FakeClassifier

    config = paths.config_file()
    config.parent.mkdir(parents=True, exist_ok=True)
    folder = config.parent / "Photos"
    folder.mkdir()
    good = f'[watch]\nfolders = ["{folder}"]\n'
    config.write_text(good, "utf-8")
    service = Service(
        load(config),
        classifier_factory=lambda _s: FakeClassifier(),
        reload_settings=lambda: load(config),
    )
    server = ControlServer(service)
    service.start()
    server.start()
    app = TrayApp(start_service=False)

    def shown_state() -> str:
        app.poll_once()
        status = app.display_status()
        return status["state"] if status else "none"

    try:
        wait_for(lambda: shown_state() == "idle")
        config.write_text(good + "\n[model]\ntop_k = 0\n", "utf-8")
        wait_for(lambda: shown_state() == "error")
        status = app.display_status()
        assert status is not None
        tooltip = tooltip_for(status)
        assert tooltip.startswith("Dropsight: error: config not applied: model.top_k = 0 is")
        assert len(tooltip) <= TOOLTIP_MAX_CHARS
        config.write_text(good, "utf-8")
        wait_for(lambda: shown_state() == "idle")
    finally:
        app.shutdown()
        server.stop()
        service.stop()
        service.join()


def test_open_from_the_menu_says_so_when_nothing_can_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No xdg-open, gio or browser: the tooltip tells why Open log did nothing."""
    import webbrowser

    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("BROWSER", raising=False)
    monkeypatch.setattr(webbrowser, "_tryorder", None)
    monkeypatch.setattr(webbrowser, "_browsers", {})
    app = TrayApp(start_service=False)
    app.open_path(tmp_path)
    status = app.display_status()
    assert status is None  # no service: the tray shows "not running", the log has it
    app._status = fake_status()
    status = app.display_status()
    assert status is not None and status["state"] == "error"
    assert "Nothing could open" in tooltip_for(status)


def test_reconnects_after_the_service_restarts(spawner: Spawner) -> None:
    fake = FakeController()
    app = TrayApp(start_service=False, spawn=spawner)
    with ControlServer(fake):
        app.poll_once()
        assert app.client is not None
    app.poll_once()
    assert app.display_status() is None
    with ControlServer(fake):  # new port, new token
        app.poll_once()
        status = app.display_status()
        assert status is not None
        assert status["state"] == "working"
    app.shutdown()


def test_viewer_opens_once_per_click_burst_and_closes_with_tray(spawner: Spawner) -> None:
    app = TrayApp(start_service=False, spawn=spawner)
    app.open_viewer()
    app.open_viewer()  # a double click
    app.open_viewer("--choose")
    assert spawner.commands == [desktop.viewer_command(), desktop.viewer_command("--choose")]
    app.shutdown()
    assert all(p.poll() is not None for p in spawner.processes)


def test_quit_calls_the_backend_stop() -> None:
    app = TrayApp(start_service=False)
    stopped: list[bool] = []
    app.on_quit = lambda: stopped.append(True)
    app.quit()
    assert stopped == [True]


def test_poller_wakes_at_once_on_quit() -> None:
    app = TrayApp(start_service=False)
    updates: list[int] = []

    def update() -> None:
        updates.append(1)
        app.quit()

    started = time.monotonic()
    app.run_poller(update)
    assert time.monotonic() - started < tray_app.POLL_INTERVAL_S
    assert updates == [1]


def test_poller_survives_a_failing_update() -> None:
    app = TrayApp(start_service=False)
    calls: list[int] = []

    def update() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("backend hiccup")
        app.quit()

    app.run_poller(update)
    assert len(calls) == 2


def test_set_autostart_from_menu(tmp_path: Path) -> None:
    app = TrayApp(start_service=False)
    app.set_autostart(True)
    if sys.platform not in {"win32", "darwin"}:
        assert (tmp_path / "xdg-config" / "autostart" / "dropsight.desktop").exists()
    app.poll_once()
    assert next(i for i in app.menu() if i.label == "Start at login").checked is True
    app.set_autostart(False)
    app.poll_once()
    assert next(i for i in app.menu() if i.label == "Start at login").checked is False


def test_xmp_toggle_edits_the_config_keeping_comments(app_home: Path) -> None:
    from dropsight.config.settings import load

    config = paths.config_file()
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("# my photos\n[watch]\nfolders = []  # none yet\n", "utf-8")
    app = TrayApp(start_service=False)
    app.set_xmp(True)
    assert load(config).output.xmp == "beside"
    assert "# my photos" in config.read_text("utf-8")
    assert "# none yet" in config.read_text("utf-8")
    app.set_xmp(False)
    assert load(config).output.xmp == "off"


def test_unknown_option_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        tray_app.main(["--frobnicate"])
    assert info.value.code == 2


@pytest.mark.parametrize(
    ("args", "expected"), [(["--viewer"], 1), (["--frobnicate"], 2), (["--viewer", "--bogus"], 2)]
)
def test_windowed_build_without_standard_streams(
    args: list[str], expected: int, app_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frozen windowed builds have sys.stdout/sys.stderr None: nothing may write to them."""
    monkeypatch.delenv("DISPLAY", raising=False)
    code = (
        "import sys\n"
        "sys.stdout = sys.stderr = None\n"
        "from tray.app import main\n"
        f"raise SystemExit(main({args!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=desktop.working_dir(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    # An uncaught exception would also exit 1, silently: the log tells them apart.
    assert done.returncode == expected
    if expected == 1:
        viewer_log = (app_home / "log" / "viewer.log").read_text()
        assert "cannot open the viewer window" in viewer_log
        assert "Traceback" not in viewer_log


def test_the_tray_starts_without_tk() -> None:
    """The windowed launcher must run where Tk cannot load (no X libraries): only the viewer,
    a process of its own, needs it."""
    code = "import sys; sys.modules['tkinter'] = None; import dropsight.tray.app"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_closed_viewer_leaves_no_defunct_process(tmp_path: Path) -> None:
    """The viewer's process is reaped at the next poll, not when the next viewer opens."""
    viewers: list[subprocess.Popen[bytes]] = []

    def spawn(_command: list[str]) -> subprocess.Popen[bytes]:
        viewers.append(subprocess.Popen([sys.executable, "-c", "pass"]))  # opens and closes
        return viewers[-1]

    app = TrayApp(start_service=False, spawn=spawn)
    app.open_viewer()
    stat = Path(f"/proc/{viewers[0].pid}/stat")
    wait_for(lambda: stat.read_text().split(")")[-1].split()[0] == "Z")  # closed: defunct
    app.poll_once()
    assert not stat.exists(), "the closed viewer is still a defunct child"
