"""Starting Dropsight's own programs and opening files and folders with the desktop."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
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


# How long an opener may take to fail before we take it as having handed the path on.
OPENER_VERDICT_S = 2.0


class OpenFailed(Exception):
    """No program opened a file or folder; the message says what was tried, for a window."""


def openers(path: Path) -> list[list[str]]:
    """Commands that open `path` with the desktop, best first (the ones installed)."""
    if sys.platform == "darwin":
        candidates = [["open", str(path)]]
    else:
        # xdg-open (xdg-utils) is missing on minimal systems; gio (GLib) is there with any
        # GTK desktop, kde-open and exo-open with KDE and Xfce.
        candidates = [
            ["xdg-open", str(path)],
            ["gio", "open", str(path)],
            ["kde-open", str(path)],
            ["exo-open", str(path)],
        ]
    return [command for command in candidates if shutil.which(command[0])]


def open_path(path: Path) -> None:
    """Open a file or folder with the desktop's default application; OpenFailed if none can.

    Tries xdg-open, gio open (and KDE's, Xfce's), then Python's webbrowser (a file:// URL);
    an opener that exits with an error within OPENER_VERDICT_S counts as not working.
    """
    log.info("opening %s", path)
    if sys.platform == "win32":
        try:
            os.startfile(path)  # type: ignore[attr-defined,unused-ignore]  # Windows only
        except OSError as exc:
            raise OpenFailed(f"Could not open {path}: {exc}") from exc
        return
    tried = []
    for command in openers(path):
        tried.append(" ".join(command[:-1]))
        if _opened_with(command):
            return
    tried.append("a web browser")
    try:
        import webbrowser

        if webbrowser.open(path.absolute().as_uri()):
            return
    except Exception as exc:  # webbrowser raises what its backends raise
        log.warning("webbrowser could not open %s: %s", path, exc)
    raise OpenFailed(
        f"Nothing could open {path} (tried {', '.join(tried)}). "
        "Open it from your file manager, or install xdg-utils."
    )


def _opened_with(command: list[str]) -> bool:
    """Run one opener; False if it is missing or fails at once."""
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        log.info("%s: %s", command[0], exc)
        return False
    try:
        code = process.wait(OPENER_VERDICT_S)
    except subprocess.TimeoutExpired:
        # Still running: it opened the path in an application it waits for. Reap it later.
        threading.Thread(target=process.wait, name="opener-reaper", daemon=True).start()
        return True
    if code:
        log.info("%s could not open the path (exit code %d)", command[0], code)
    return code == 0


def ensure_config_file(path: Path) -> Path:
    """Create the user's config file from the documented defaults if it does not exist."""
    from dropsight.config.edit import init

    init(path)
    return path
