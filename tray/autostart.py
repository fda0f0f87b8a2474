"""Start the tray at login: XDG autostart entry, HKCU Run value, or a macOS LaunchAgent."""

from __future__ import annotations

import contextlib
import logging
import os
import plistlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from dropsight.daemon import APP_NAME
from dropsight.daemon.contracts import ExitCode
from dropsight.tray import desktop

log = logging.getLogger(__name__)

RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
RUN_VALUE_NAME = "Dropsight"
DESKTOP_FILE_NAME = f"{APP_NAME}.desktop"
LAUNCH_AGENT_LABEL = f"org.{APP_NAME}.tray"


def enable() -> None:
    """Start the tray at every login of this user."""
    _backend().enable(desktop.tray_command())


def disable() -> None:
    """Stop starting the tray at login."""
    _backend().disable()


def is_enabled() -> bool:
    """Whether the tray starts at login."""
    return _backend().is_enabled()


def autostart_command(action: str) -> int:
    """`dropsight autostart enable|disable|status`; returns the exit code."""
    try:
        backend = _backend()
        if action == "enable":
            backend.enable(desktop.tray_command())
            _say(f"Dropsight will start at login ({backend.where()}).")
        elif action == "disable":
            backend.disable()
            _say("Dropsight will not start at login.")
        elif action == "status":
            state = "enabled" if backend.is_enabled() else "disabled"
            _say(f"Start at login: {state} ({backend.where()}).")
        else:
            _say(
                f"dropsight autostart: unknown action {action!r} (enable, disable, status)",
                err=True,
            )
            return ExitCode.USAGE
    except (OSError, NotImplementedError) as exc:
        _say(f"dropsight autostart: {exc}", err=True)
        return ExitCode.FAILED
    return ExitCode.OK


def _say(text: str, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    if stream is not None:  # frozen windowed builds have no standard streams
        print(text, file=stream)


class _Backend:
    def enable(self, command: list[str]) -> None:
        raise NotImplementedError

    def disable(self) -> None:
        raise NotImplementedError

    def is_enabled(self) -> bool:
        raise NotImplementedError

    def where(self) -> str:
        raise NotImplementedError


def _backend(platform: str | None = None) -> _Backend:
    platform = platform or sys.platform
    if platform == "win32":
        import winreg  # type: ignore[import-not-found,unused-ignore]

        return RunKeyAutostart(winreg)
    if platform == "darwin":
        return LaunchAgentAutostart(Path.home() / "Library" / "LaunchAgents")
    return XdgAutostart(xdg_autostart_dir())


# --- Linux and other XDG desktops ----------------------------------------------------------


def xdg_autostart_dir() -> Path:
    """$XDG_CONFIG_HOME/autostart (default ~/.config/autostart)."""
    base = os.environ.get("XDG_CONFIG_HOME")
    # The spec says a relative value is invalid and must be ignored.
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "autostart"


def desktop_exec(command: list[str]) -> str:
    """Quote a command for a .desktop Exec key (desktop entry spec, "The Exec key")."""
    reserved = set(" \t\n\"'\\><~|&;$*?#()`")
    parts = []
    for raw in command:
        arg = raw.replace("%", "%%")  # a lone % would start a field code such as %f
        if arg and not reserved.intersection(arg):
            parts.append(arg)
            continue
        quoted = "".join("\\" + ch if ch in '"`$\\' else ch for ch in arg)
        parts.append(f'"{quoted}"')
    # The whole value is then a string value, whose own escape rules double each backslash.
    return " ".join(parts).replace("\\", "\\\\")


class XdgAutostart(_Backend):
    """A .desktop file in the XDG autostart folder."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / DESKTOP_FILE_NAME

    def enable(self, command: list[str]) -> None:
        """Write the entry (atomically: desktop sessions read it at login)."""
        lines = [
            "[Desktop Entry]",
            "Type=Application",
            "Name=Dropsight",
            "Comment=Label new photos in watched folders",
            f"Exec={desktop_exec(command)}",
            "Terminal=false",
            "X-GNOME-Autostart-enabled=true",
        ]
        workdir = desktop.working_dir()
        if workdir is not None:
            lines.append(f"Path={workdir}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)

    def disable(self) -> None:
        """Remove the entry."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def is_enabled(self) -> bool:
        """The entry exists and is not hidden or switched off."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError:
            return False
        keys = dict(
            line.split("=", 1) for line in text.splitlines() if "=" in line and line[:1] != "#"
        )
        return (
            keys.get("Hidden", "false").strip() != "true"
            and keys.get("X-GNOME-Autostart-enabled", "true").strip() != "false"
        )

    def where(self) -> str:
        """Where the setting lives."""
        return str(self.path)


# --- Windows -------------------------------------------------------------------------------


class RunKeyAutostart(_Backend):
    """A value under HKCU\\...\\CurrentVersion\\Run (per user, no admin rights)."""

    def __init__(self, winreg: ModuleType | Any) -> None:
        self.winreg = winreg

    def enable(self, command: list[str]) -> None:
        """Set the Run value to the tray command line."""
        reg = self.winreg
        with reg.CreateKeyEx(reg.HKEY_CURRENT_USER, RUN_KEY, 0, reg.KEY_SET_VALUE) as key:
            reg.SetValueEx(key, RUN_VALUE_NAME, 0, reg.REG_SZ, subprocess.list2cmdline(command))

    def disable(self) -> None:
        """Delete the Run value."""
        reg = self.winreg
        try:
            with reg.OpenKey(reg.HKEY_CURRENT_USER, RUN_KEY, 0, reg.KEY_SET_VALUE) as key:
                reg.DeleteValue(key, RUN_VALUE_NAME)
        except FileNotFoundError:
            pass

    def is_enabled(self) -> bool:
        """Whether the Run value exists."""
        reg = self.winreg
        try:
            with reg.OpenKey(reg.HKEY_CURRENT_USER, RUN_KEY, 0, reg.KEY_QUERY_VALUE) as key:
                value, _ = reg.QueryValueEx(key, RUN_VALUE_NAME)
        except FileNotFoundError:
            return False
        return bool(value)

    def where(self) -> str:
        """Where the setting lives."""
        return f"HKEY_CURRENT_USER\\{RUN_KEY}\\{RUN_VALUE_NAME}"


# --- macOS ---------------------------------------------------------------------------------


class LaunchAgentAutostart(_Backend):
    """A per-user LaunchAgent plist with RunAtLoad."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / f"{LAUNCH_AGENT_LABEL}.plist"

    def enable(self, command: list[str]) -> None:
        """Write the LaunchAgent."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        agent: dict[str, Any] = {
            "Label": LAUNCH_AGENT_LABEL,
            "ProgramArguments": command,
            "RunAtLoad": True,
        }
        workdir = desktop.working_dir()
        if workdir is not None:
            agent["WorkingDirectory"] = str(workdir)
        self.path.write_bytes(plistlib.dumps(agent))

    def disable(self) -> None:
        """Remove the LaunchAgent."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def is_enabled(self) -> bool:
        """Whether the LaunchAgent exists."""
        return self.path.exists()

    def where(self) -> str:
        """Where the setting lives."""
        return str(self.path)
