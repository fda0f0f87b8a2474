"""`dropsight service`: logs, the default folder, the instance lock, signals, the control API."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable

from dropsight.config.settings import Settings
from dropsight.daemon import __version__
from dropsight.daemon.contracts import ExitCode
from dropsight.daemon.core import logs, paths
from dropsight.daemon.core.lock import AlreadyRunning, InstanceLock
from dropsight.daemon.pipeline.crashguard import CrashGuard
from dropsight.daemon.service import startfail
from dropsight.daemon.service.service import Service

log = logging.getLogger(__name__)


def not_started(message: str) -> None:
    """A start that failed before the service ran: the log file and the GUI get the reason."""
    logs.record_only(log, logging.ERROR, f"not started: {message}")  # the CLI prints it
    startfail.record(message)


def with_default_folder(settings: Settings) -> Settings:
    """With no folder configured, watch Pictures/Dropsight (created if missing).

    A fresh install (tray, autostart, systemd unit) must do something useful at once.
    Raises OSError when the folder cannot be created.
    """
    if settings.watch.folders:
        return settings
    default = paths.default_watch_folder()
    default.mkdir(parents=True, exist_ok=True)
    log.info(
        "no folders configured: watching %s (set watch.folders in %s or pass --watch DIR)",
        default,
        settings.source or paths.config_file(),
    )
    return settings.with_overrides(watch=[default])


def run_service(settings: Settings, reload_settings: Callable[[], Settings] | None = None) -> int:
    """Run the service in the foreground until SIGTERM/SIGINT or a stop request.

    `reload_settings` reads the config again (with the command line's overrides); the
    service calls it when the config file changes or a client asks it to reload. Exit codes:
    0 stopped on request, 1 another instance runs, 2 nothing to watch or a bad config,
    ExitCode.INTERNAL (70) anything else, so a supervisor (systemd `Restart=on-failure`) restarts.
    """
    log_path = logs.setup(settings.service.log_level)
    try:
        settings = with_default_folder(settings)
    except OSError as exc:
        message = f"cannot create the default folder {paths.default_watch_folder()}: {exc}"
        log.error("%s", message)
        startfail.record(message)
        return ExitCode.USAGE
    state = paths.state_dir()
    lock = InstanceLock(state / "service.lock")
    guard = CrashGuard(state)
    try:
        paths.make_private(state)
        lock.acquire()
    except AlreadyRunning as exc:
        log.error("%s", exc)
        return ExitCode.FAILED
    except OSError as exc:  # a full or read-only state folder
        message = f"cannot use the state folder {state}: {exc.strerror or exc}"
        log.error("not started: %s", message)
        startfail.record(message)
        return ExitCode.INTERNAL
    try:
        guard.open()
        return _serve(settings, reload_settings, guard, log_path)
    except Exception:
        log.exception("the service failed")
        return ExitCode.INTERNAL
    finally:
        lock.release()


def _serve(
    settings: Settings,
    reload_settings: Callable[[], Settings] | None,
    guard: CrashGuard,
    log_path: object,
) -> int:
    from dropsight.daemon.api.server import ControlServer

    reload = None
    if reload_settings is not None:
        loader = reload_settings

        def reload() -> Settings:
            return with_default_folder(loader())

    service = Service(settings, reload_settings=reload, guard=guard)
    control = ControlServer(service)
    previous = {sig: signal.signal(sig, lambda *_: service.stop()) for sig in _stop_signals()}
    try:
        log.info(
            "Dropsight %s watching %s (log: %s)",
            __version__,
            ", ".join(str(f) for f in settings.watch.folders),
            log_path,
        )
        service.start()
        control.start()
        startfail.clear()
        while not service.wait(0.5):  # a timeout keeps the main thread responsive to signals
            pass
    finally:
        service.stop()
        control.stop()
        service.join()
        guard.close()  # a clean stop: what was in flight is not suspect
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("stopped")
    return ExitCode.OK


def _stop_signals() -> list[signal.Signals]:
    sigs = [signal.SIGINT, signal.SIGTERM]
    if sys.platform == "win32":
        sigs.append(signal.SIGBREAK)
    return sigs
