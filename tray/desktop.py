"""Starting Dropsight's own programs and opening files and folders with the desktop."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from dropsight.daemon.core import paths

log = logging.getLogger(__name__)

# Names of the two executables of a frozen bundle (service.spec): the console command line
# and the windowed tray launcher (no console window at login on Windows).
CLI_EXE_NAME = "dropsight"
TRAY_EXE_NAME = "dropsight-tray"
# Set by the tray for the viewers it opens: the viewer's Quit ends the tray as well.
TRAY_PID_ENV = "DROPSIGHT_TRAY_PID"


def _exe(name: str) -> Path:
    suffix = ".exe" if sys.platform == "win32" else ""
    return Path(sys.executable).with_name(name + suffix)


def _gui_python() -> str:
    """pythonw.exe beside python.exe on Windows, so GUI children open no console window."""
    exe = Path(sys.executable)
    if sys.platform == "win32" and exe.name.lower() == "python.exe":
        windowed = exe.with_name("pythonw.exe")
        if windowed.exists():
            return str(windowed)
    return sys.executable


def is_frozen() -> bool:
    """Whether this is a PyInstaller build rather than a source checkout."""
    return bool(getattr(sys, "frozen", False))


def service_command() -> list[str]:
    """How to start `dropsight service`."""
    if is_frozen():
        return [str(_exe(CLI_EXE_NAME)), "service"]
    return [sys.executable, "-m", "dropsight.daemon", "service"]


def tray_command() -> list[str]:
    """How to start the tray (for autostart and for the viewer below)."""
    if is_frozen():
        launcher = _exe(TRAY_EXE_NAME)
        if launcher.exists():
            return [str(launcher)]
        return [str(_exe(CLI_EXE_NAME)), "tray"]
    return [_gui_python(), "-m", "dropsight.tray"]


def viewer_command(*args: str) -> list[str]:
    """How to open the viewer window in its own process (Tk wants its own main thread)."""
    return [*tray_command(), "--viewer", *args]


def working_dir() -> Path | None:
    """Where `-m daemon`/`-m tray` resolve from a source checkout; None when frozen."""
    return None if is_frozen() else paths.app_dir()


def spawn(command: list[str]) -> subprocess.Popen[bytes]:
    """Start one of our programs detached from our standard streams."""
    flags = 0
    if sys.platform == "win32":
        # The console `dropsight.exe` started from the windowed tray would flash a console.
        flags = subprocess.CREATE_NO_WINDOW
    log.info("starting %s", subprocess.list2cmdline(command))
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=working_dir(),
        creationflags=flags,
    )


def open_path(path: Path) -> None:
    """Open a file or folder with the desktop's default application."""
    log.info("opening %s", path)
    if sys.platform == "win32":
        os.startfile(path)  # type: ignore[attr-defined,unused-ignore]  # Windows only
        return
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    subprocess.Popen(
        [opener, str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def ensure_config_file(path: Path) -> Path:
    """Create the user's config file from the documented defaults if it does not exist."""
    from dropsight.config.edit import init

    init(path)
    return path
