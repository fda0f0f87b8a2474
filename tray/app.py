"""`dropsight tray`: the tray icon, a thin client that starts and steers the service."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import faulthandler
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from dropsight.config.edit import set_value
from dropsight.config.settings import ConfigError
from dropsight.daemon import APP_NAME, __version__
from dropsight.daemon.api.client import (
    ServiceBusy,
    ServiceClient,
    ServiceError,
    ServiceNotRunning,
)
from dropsight.daemon.contracts import ErrorEntry, ExitCode, ServiceState, Status
from dropsight.daemon.core import paths
from dropsight.daemon.service import startfail
from dropsight.tray import autostart, desktop, logsetup, xorg
from dropsight.tray.attention import ConfigCheck, config_not_applied, config_path, with_problem
from dropsight.tray.desktop import TRAY_PID_ENV
from dropsight.tray.icons import icon_for, tooltip_for, visual_state
from dropsight.tray.menu import MenuItem, build_menu

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 1.0
# The service finishes its queue's current batch before it exits; VGG16 batches are slow.
SERVICE_STOP_TIMEOUT_S = 30.0
SERVICE_KILL_TIMEOUT_S = 5.0
# A double click on the xorg icon must not open two viewers.
VIEWER_DEBOUNCE_S = 1.5
# How long the tooltip tells of a menu action that failed (no opener for Open log, say).
NOTICE_S = 20.0


class TrayApp:
    """Tray state and actions, independent of pystray so tests can drive it directly."""

    def __init__(
        self,
        *,
        start_service: bool = True,
        service_command: list[str] | None = None,
        spawn: Callable[[list[str]], subprocess.Popen[bytes]] = desktop.spawn,
        open_path: Callable[[Path], None] = desktop.open_path,
    ) -> None:
        self.auto_start = start_service
        self._service_command = service_command or desktop.service_command()
        self._spawn = spawn
        self._open_path = open_path
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._client: ServiceClient | None = None
        self._status: Status | None = None
        self._started: subprocess.Popen[bytes] | None = None
        self._exit_message: str | None = None
        self._viewers: list[subprocess.Popen[bytes]] = []
        self._last_viewer: tuple[tuple[str, ...], float] = ((), 0.0)
        self._autostart = False
        self._last_problem = ""
        self._created_at = time.time()
        self._started_at = 0.0
        self._failures_since = self._created_at  # start failures before this are settled
        self._config = ConfigCheck()
        self._config_problem: str | None = None
        self._notice: tuple[str, float] = ("", 0.0)  # a failed menu action, for a while
        self.on_quit: Callable[[], None] | None = None

    # --- polling (runs in pystray's setup thread) ---------------------------------------------

    def run_poller(self, on_update: Callable[[], None]) -> None:
        """Poll the service every POLL_INTERVAL_S until quit; wakes at once on quit."""
        while True:
            try:
                self.poll_once()
                on_update()
            except Exception:
                # One bad poll (or a backend hiccup while redrawing) must not end the loop.
                log.exception("tray poll failed")
            if self._stop.wait(POLL_INTERVAL_S):
                return

    def poll_once(self) -> None:
        """Refresh the status snapshot; connect, or start the service, when needed."""
        # Reap closed viewers now, not at the next click: else each stays a defunct process.
        self._viewers = [viewer for viewer in self._viewers if viewer.poll() is None]
        with contextlib.suppress(OSError):
            self._autostart = autostart.is_enabled()
        client = self._client
        if client is None:
            try:
                client = ServiceClient.connect()
                log.info("connected to the service (pid %s, port %d)", client.pid, client.port)
            except ServiceNotRunning as exc:
                self._note_problem(str(exc))
                client = None
            except ServiceBusy as exc:  # it runs: keep the last status, ask again later
                self._note_problem(str(exc))
                return
        status = None
        if client is not None:
            try:
                status = client.status()
            except ServiceError as exc:
                log.info("lost the service: %s", exc)
                client = None
        with self._lock:
            self._client, self._status = client, status
            started = self._started
        if status is not None:
            self._exit_message = None
            self._config_problem = self._config.problem(config_path(status))
            return
        self._config_problem = None
        if self._exit_message and self._config.fixed(self._exit_message, config_path(None)):
            # The start failed on the config file, which has been fixed since: say so no more.
            log.info("the config problem that stopped the service is fixed")
            self._exit_message = None
            self._failures_since = time.time()
        if started is not None and started.poll() is not None:
            code = started.returncode
            log.warning("the service started by the tray exited with code %s", code)
            with self._lock:
                self._started = None
            if code:
                failure = startfail.read(since=self._started_at)
                self._exit_message = (
                    f"the service could not start: {failure.message}"
                    if failure
                    else f"the service exited with code {code}; see its log"
                )
        elif (
            started is None
            and self._exit_message is None
            and (failure := startfail.read(since=self._failures_since))
            and not self._config.fixed(failure.message, config_path(None))
        ):
            # Started elsewhere (at login, from a terminal) and failed since this tray began.
            self._exit_message = f"the service could not start: {failure.message}"
        elif started is None and self.auto_start and self._exit_message is None:
            # Only once: after a failed start the user decides (menu: Start service).
            self.auto_start = False
            self.start_service()

    def _note_problem(self, problem: str) -> None:
        """Log why the service cannot be reached, once per distinct reason."""
        if problem != self._last_problem:
            self._last_problem = problem
            log.info("%s", problem)

    def display_status(self) -> Status | None:
        """The snapshot to show: the service's, or a stand-in while it starts or after it died."""
        with self._lock:
            status, started = self._status, self._started
        notice, until = self._notice
        if status is not None:
            if notice and time.monotonic() < until:
                return with_problem(status, notice)
            if self._config_problem:
                return with_problem(status, config_not_applied(self._config_problem))
            return status
        if started is not None and started.poll() is None:
            failure = startfail.read(since=self._started_at)
            if failure is not None:  # it said why before its process ended
                return stand_in("error", 0, f"the service could not start: {failure.message}")
            return stand_in("starting", started.pid)
        if self._exit_message:
            return stand_in("error", 0, self._exit_message)
        return None

    @property
    def client(self) -> ServiceClient | None:
        """The connected client, if any."""
        with self._lock:
            return self._client

    @property
    def started_service(self) -> subprocess.Popen[bytes] | None:
        """The service process this tray started, if it is still ours to stop."""
        with self._lock:
            return self._started

    def menu(self) -> list[MenuItem]:
        """The current menu model."""
        status = self.display_status()
        with self._lock:
            client = self._client if self._status is not None else None
        return build_menu(status, client, self, self._autostart, can_start_service=True)

    # --- menu host --------------------------------------------------------------------------

    def open_path(self, path: Path) -> None:
        """Open a file or folder with the desktop (the tooltip says so when nothing can)."""
        try:
            self._open_path(path)
        except desktop.OpenFailed as exc:
            log.warning("%s", exc)
            self._notice = (str(exc), time.monotonic() + NOTICE_S)

    def open_viewer(self, *args: str) -> None:
        """Open the viewer window (its own process: Tk wants a main thread of its own)."""
        now = time.monotonic()
        last_args, last_time = self._last_viewer
        if args == last_args and now - last_time < VIEWER_DEBOUNCE_S:
            return
        self._last_viewer = (args, now)
        self._viewers = [v for v in self._viewers if v.poll() is None]
        if not args and self._viewers and hasattr(signal, "SIGUSR1"):
            # One viewer: a click on the icon brings the open one to the front.
            with contextlib.suppress(OSError):
                os.kill(self._viewers[-1].pid, signal.SIGUSR1)
                return
        self._viewers.append(self._spawn(desktop.viewer_command(*args)))

    def start_service(self) -> None:
        """Start `dropsight service` unless one of ours is already running."""
        with self._lock:
            if self._started is not None and self._started.poll() is None:
                return
        self._exit_message = None
        self._started_at = time.time()
        process = self._spawn(self._service_command)
        with self._lock:
            self._started = process

    def set_autostart(self, enabled: bool) -> None:
        """Turn starting at login on or off."""
        if enabled:
            autostart.enable()
        else:
            autostart.disable()
        self._autostart = autostart.is_enabled()

    def set_xmp(self, enabled: bool) -> None:
        """Turn XMP keywords on or off in the service's config file (it reloads on its own)."""
        status = self.display_status()
        configured = status.get("config_path") if status else None
        path = Path(configured) if configured else paths.config_file()
        try:
            set_value(path, "output", "xmp", "beside" if enabled else "off")
        except (ConfigError, OSError) as exc:
            log.error("could not turn XMP keywords %s: %s", "on" if enabled else "off", exc)

    def quit(self) -> None:
        """End the tray (the service it started is stopped in shutdown())."""
        self._stop.set()
        if self.on_quit is not None:
            self.on_quit()

    # --- shutdown ---------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Close our viewers and stop the service if this tray started it."""
        self._stop.set()
        for viewer in self._viewers:
            _end_process(viewer, 2.0)
        self._viewers = []
        with self._lock:
            started, client = self._started, self._client
            self._started = None
        if started is None or started.poll() is not None:
            return
        log.info("stopping the service this tray started (pid %d)", started.pid)
        try:
            # The API's stop takes the service's one orderly shutdown path.
            (client or ServiceClient.connect()).stop()
        except ServiceError as exc:
            log.warning("could not ask the service to stop: %s", exc)
            started.terminate()
        try:
            started.wait(SERVICE_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("the service did not stop within %.0fs", SERVICE_STOP_TIMEOUT_S)
            _end_process(started, SERVICE_KILL_TIMEOUT_S)


def stand_in(state: ServiceState, pid: int, problem: str | None = None) -> Status:
    """What the tray shows while the service it started comes up, or after it failed to."""
    errors: list[ErrorEntry] = []
    if problem is not None:
        errors.append({"time": _now(), "path": None, "message": problem})
    return {
        "state": state,
        "done": 0,
        "failed": 0,
        "skipped": 0,
        "queued": 0,
        "progress": {"done": 0, "total": 0},
        "current": None,
        "errors": errors,
        "recent": [],
        "model": {
            "name": "",
            "requested": "",
            "fallback": False,
            "fallback_reason": None,
            "runtime": None,
            "fingerprint": None,
            "error": None,
        },
        "folders": [],
        "version": __version__,
        "pid": pid,
        "config_path": "",  # the service's own is not known: the default file
        "log_path": "",
    }


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _end_process(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Terminate, then kill, a child process; always reap it."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout_s)


# --- pystray binding ------------------------------------------------------------------------


def _to_pystray(items: list[MenuItem], app: TrayApp) -> list[Any]:
    import pystray

    converted: list[Any] = []
    for item in items:
        if item.is_separator:
            converted.append(pystray.Menu.SEPARATOR)
        elif item.submenu:
            converted.append(
                pystray.MenuItem(
                    item.label,
                    pystray.Menu(*_to_pystray(list(item.submenu), app)),
                    enabled=item.enabled,
                )
            )
        else:
            checked = item.checked
            converted.append(
                pystray.MenuItem(
                    item.label,
                    _safe(item.action),
                    checked=None if checked is None else (lambda _item, v=checked: v),
                    enabled=item.enabled and item.action is not None,
                    default=item.default,
                )
            )
    return converted


def _safe(action: Callable[[], None] | None) -> Callable[[Any, Any], None]:
    """A pystray callback that logs failures instead of tearing down the backend's loop."""

    def run(_icon: Any, _item: Any) -> None:
        if action is None:
            return
        try:
            action()
        except Exception:
            log.exception("menu action failed")

    return run


class _IconUpdater:
    """Pushes status changes to the icon, only when something visible changed."""

    def __init__(self, icon: Any, app: TrayApp) -> None:
        self.icon = icon
        self.app = app
        self._shown: tuple[Any, ...] | None = None
        self._menu_labels: list[Any] | None = None
        # update_menu() from a non-UI thread is not safe on win32/macOS (pystray #60); there
        # the menu is rebuilt after each of its own actions instead.
        self._can_update_menu = sys.platform not in {"win32", "darwin"}
        self._latin1_title = xorg.is_xorg(icon)

    def __call__(self) -> None:
        status = self.app.display_status()
        title = tooltip_for(status)
        image = icon_for(status)
        if self._latin1_title:
            # python-xlib writes the window name as Latin-1 (WM_NAME/STRING); a file name
            # in an error message may hold anything.
            title = title.encode("latin-1", "replace").decode("latin-1")
        key = (visual_state(status), title, image.tobytes())
        if key != self._shown:
            self.icon.icon = image
            self.icon.title = title
            self._shown = key  # only once shown: a failed update is retried next poll
        labels = [(i.label, i.enabled, i.checked, len(i.submenu)) for i in self.app.menu()]
        if labels != self._menu_labels:
            self._menu_labels = labels
            if self._can_update_menu:
                self.icon.update_menu()


def _stack_dumps_on_sigusr1() -> None:
    """`kill -USR1 <tray pid>` writes every thread's stack to tray-stacks.log (a hung UI)."""
    if not hasattr(signal, "SIGUSR1"):
        return
    try:
        folder = paths.log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        # Kept open for the process lifetime: faulthandler writes from a signal handler.
        dump = (folder / "tray-stacks.log").open("a", encoding="utf-8")
    except OSError:
        return
    faulthandler.register(signal.SIGUSR1, file=dump, all_threads=True)


def run_tray(app: TrayApp) -> int:
    """Show the icon; pystray's loop runs on this (main) thread until Quit."""
    try:
        import pystray
    except Exception as exc:  # no display, no tray backend
        log.error("cannot show a tray icon: %s", exc)
        if sys.stderr is not None:
            print(f"dropsight tray: cannot show a tray icon: {exc}", file=sys.stderr)
        return ExitCode.FAILED

    icon = xorg.icon_class(pystray.Icon)(
        APP_NAME,
        icon=icon_for(None),
        title=tooltip_for(None),
        menu=pystray.Menu(lambda: _to_pystray(app.menu(), app)),
    )
    app.on_quit = icon.stop
    dispatcher = xorg.install(icon)
    updater = _IconUpdater(icon, app)

    def setup(icon: Any) -> None:
        icon.visible = True
        # This thread is the poller; it waits on an Event, so stop() never waits for it.
        app.run_poller(updater)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: quitting", signum)
        app.quit()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        _stack_dumps_on_sigusr1()
    log.info("tray %s on pystray backend %s", __version__, type(icon).__module__)
    try:
        icon.run(setup=setup)
    finally:
        app.shutdown()
        if dispatcher is not None:
            dispatcher.close()
    return ExitCode.OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dropsight tray", description="The Dropsight tray icon.")
    parser.add_argument(
        "--no-start-service",
        action="store_true",
        help="do not start the service when none is running",
    )
    parser.add_argument(
        "--viewer", action="store_true", help="open only the viewer window (see --help there)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the tray (or, with --viewer, only the viewer window)."""
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if args.viewer:
        from dropsight.tray.viewer import main as viewer_main

        return viewer_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    logsetup.setup("tray")
    os.environ[TRAY_PID_ENV] = str(os.getpid())  # the viewers' Quit ends this tray too
    app = TrayApp(start_service=not args.no_start_service)
    return run_tray(app)
