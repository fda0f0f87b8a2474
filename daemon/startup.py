"""`dropsight service`: logs, the default folder, the instance lock, signals, the control API."""

from __future__ import annotations

import logging
import signal
import sys

from dropsight.config.settings import Settings
from dropsight.daemon import __version__, logs, paths
from dropsight.daemon.lock import AlreadyRunning, InstanceLock
from dropsight.daemon.service import Service
from dropsight.daemon.sinks import ResultSink

log = logging.getLogger(__name__)


def sinks_for(settings: Settings) -> list[ResultSink]:
    """The result sinks the settings ask for (XMP, library index, hooks)."""
    del settings
    return []


def run_service(settings: Settings) -> int:
    """Run the service in the foreground until SIGTERM/SIGINT or a stop request."""
    log_path = logs.setup(settings.service.log_level)
    if not settings.watch.folders:
        # A fresh install (tray, autostart, systemd unit) must do something useful at once.
        default = paths.default_watch_folder()
        try:
            default.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.error("cannot create the default folder %s: %s", default, exc)
            return 2
        log.info(
            "no folders configured: watching %s (set watch.folders in %s or pass --watch DIR)",
            default,
            settings.source or paths.config_file(),
        )
        settings = settings.with_overrides(watch=[default])
    lock = InstanceLock(paths.state_dir() / "service.lock")
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        log.error("%s", exc)
        return 1
    from dropsight.daemon.control import ControlServer

    service = Service(settings, sinks=sinks_for(settings))
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
        while not service.wait(0.5):  # a timeout keeps the main thread responsive to signals
            pass
    finally:
        service.stop()
        control.stop()
        service.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        lock.release()
        log.info("stopped")
    return 0


def _stop_signals() -> list[signal.Signals]:
    sigs = [signal.SIGINT, signal.SIGTERM]
    if sys.platform == "win32":
        sigs.append(signal.SIGBREAK)
    return sigs
