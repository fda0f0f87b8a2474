"""Start at login: XDG entry on a tmp XDG_CONFIG_HOME, a fake winreg, a LaunchAgent plist."""

from __future__ import annotations

import plistlib
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dropsight.tray import autostart, desktop
from dropsight.tray.autostart import (
    RUN_KEY,
    RUN_VALUE_NAME,
    LaunchAgentAutostart,
    RunKeyAutostart,
    XdgAutostart,
    autostart_command,
    desktop_exec,
    xdg_autostart_dir,
)


def entry_path(tmp_path: Path) -> Path:
    return tmp_path / "xdg-config" / "autostart" / "dropsight.desktop"


def read_keys(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    assert lines[0] == "[Desktop Entry]"
    return dict(line.split("=", 1) for line in lines[1:])


def unescape_exec(value: str) -> list[str]:
    """Undo the desktop entry escapes (string level, then Exec quoting) like a launcher."""
    text = value.replace("\\\\", "\\")
    args: list[str] = []
    current: list[str] = []
    quoted = started = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quoted and ch == "\\" and i + 1 < len(text) and text[i + 1] in '"`$\\':
            current.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            quoted, started = not quoted, True
        elif ch == " " and not quoted:
            if current or started:
                args.append("".join(current))
            current, started = [], False
        else:
            current.append(ch)
        i += 1
    if current or started:
        args.append("".join(current))
    return [arg.replace("%%", "%") for arg in args]


@pytest.mark.skipif(sys.platform in {"win32", "darwin"}, reason="XDG desktops")
def test_enable_disable_xdg(tmp_path: Path) -> None:
    assert not autostart.is_enabled()
    autostart.enable()
    path = entry_path(tmp_path)
    assert autostart.is_enabled()
    keys = read_keys(path)
    assert keys["Type"] == "Application"
    assert keys["Name"] == "Dropsight"
    assert unescape_exec(keys["Exec"]) == desktop.tray_command()
    assert keys["Path"] == str(desktop.working_dir())
    autostart.disable()
    assert not path.exists()
    assert not autostart.is_enabled()
    autostart.disable()  # twice is fine


def test_xdg_entry_switched_off_counts_as_disabled(tmp_path: Path) -> None:
    backend = XdgAutostart(tmp_path)
    backend.enable(["/opt/dropsight/dropsight-tray"])
    assert backend.is_enabled()
    backend.path.write_text(backend.path.read_text() + "Hidden=true\n")
    assert not backend.is_enabled()
    backend.enable(["/opt/dropsight/dropsight-tray"])
    backend.path.write_text(backend.path.read_text().replace("enabled=true", "enabled=false"))
    assert not backend.is_enabled()


def test_xdg_dir_ignores_relative_config_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")
    assert xdg_autostart_dir() == Path.home() / ".config" / "autostart"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert xdg_autostart_dir() == Path.home() / ".config" / "autostart"


@pytest.mark.parametrize(
    "command",
    [
        ["/usr/bin/python3", "-m", "dropsight.tray"],
        ["/home/me/My Apps/python", "-m", "dropsight.tray"],
        ['/odd/"quoted"/py', "$HOME", "back\\slash", "100%", "`tick`"],
        ["/path/with=equals", "semi;colon", "#hash"],
    ],
)
def test_desktop_exec_round_trips(command: list[str]) -> None:
    assert unescape_exec(desktop_exec(command)) == command


def test_desktop_exec_plain_args_stay_plain() -> None:
    assert desktop_exec(["/usr/bin/dropsight", "tray"]) == "/usr/bin/dropsight tray"
    assert desktop_exec(["/a b/x"]) == '"/a b/x"'


class FakeWinreg:
    """The subset of winreg the Run-key backend uses, over a dict."""

    HKEY_CURRENT_USER = "HKCU"
    KEY_SET_VALUE = 2
    KEY_QUERY_VALUE = 1
    REG_SZ = 1

    def __init__(self) -> None:
        self.keys: dict[tuple[str, str], dict[str, Any]] = {}

    class _Key(SimpleNamespace):
        def __enter__(self) -> FakeWinreg._Key:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    def CreateKeyEx(self, root: str, sub: str, reserved: int, access: int) -> _Key:
        self.keys.setdefault((root, sub), {})
        return self._Key(values=self.keys[(root, sub)])

    def OpenKey(self, root: str, sub: str, reserved: int, access: int) -> _Key:
        if (root, sub) not in self.keys:
            raise FileNotFoundError(sub)
        return self._Key(values=self.keys[(root, sub)])

    def SetValueEx(self, key: _Key, name: str, reserved: int, kind: int, value: str) -> None:
        key.values[name] = (value, kind)

    def QueryValueEx(self, key: _Key, name: str) -> tuple[str, int]:
        if name not in key.values:
            raise FileNotFoundError(name)
        value: tuple[str, int] = key.values[name]
        return value

    def DeleteValue(self, key: _Key, name: str) -> None:
        if name not in key.values:
            raise FileNotFoundError(name)
        del key.values[name]


def test_windows_run_key() -> None:
    reg = FakeWinreg()
    backend = RunKeyAutostart(reg)
    assert not backend.is_enabled()
    backend.disable()  # no key yet: fine
    command = [r"C:\Users\Me\AppData\Local\Programs\Dropsight\dropsight-tray.exe"]
    backend.enable(command)
    assert backend.is_enabled()
    value, kind = reg.keys[("HKCU", RUN_KEY)][RUN_VALUE_NAME]
    assert kind == reg.REG_SZ
    assert value == subprocess.list2cmdline(command)
    backend.disable()
    assert not backend.is_enabled()
    backend.disable()
    assert "CurrentVersion\\Run" in backend.where()


def test_windows_run_key_quotes_paths_with_spaces() -> None:
    reg = FakeWinreg()
    RunKeyAutostart(reg).enable([r"C:\Program Files\Dropsight\dropsight.exe", "tray"])
    value, _ = reg.keys[("HKCU", RUN_KEY)][RUN_VALUE_NAME]
    assert value == r'"C:\Program Files\Dropsight\dropsight.exe" tray'


def test_macos_launch_agent(tmp_path: Path) -> None:
    backend = LaunchAgentAutostart(tmp_path / "LaunchAgents")
    assert not backend.is_enabled()
    backend.enable(["/Applications/Dropsight.app/Contents/MacOS/dropsight-tray"])
    agent = plistlib.loads(backend.path.read_bytes())
    assert agent["RunAtLoad"] is True
    assert agent["ProgramArguments"] == [
        "/Applications/Dropsight.app/Contents/MacOS/dropsight-tray"
    ]
    assert backend.is_enabled()
    backend.disable()
    assert not backend.is_enabled()


@pytest.mark.skipif(sys.platform in {"win32", "darwin"}, reason="XDG desktops")
def test_autostart_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert autostart_command("status") == 0
    assert "disabled" in capsys.readouterr().out
    assert autostart_command("enable") == 0
    assert str(entry_path(tmp_path)) in capsys.readouterr().out
    assert autostart_command("status") == 0
    assert "enabled" in capsys.readouterr().out
    assert autostart_command("disable") == 0
    assert "not start" in capsys.readouterr().out
    assert not entry_path(tmp_path).exists()
    assert autostart_command("sideways") == 2
    assert "unknown action" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform in {"win32", "darwin"}, reason="XDG desktops")
def test_autostart_command_reports_write_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(blocker))
    assert autostart_command("enable") == 1
    assert "dropsight autostart:" in capsys.readouterr().err


def test_frozen_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exe_suffix = ".exe" if sys.platform == "win32" else ""
    cli = tmp_path / f"dropsight{exe_suffix}"
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(cli))
    assert desktop.service_command() == [str(cli), "service"]
    assert desktop.tray_command() == [str(cli), "tray"]
    assert desktop.working_dir() is None
    launcher = tmp_path / f"dropsight-tray{exe_suffix}"
    launcher.write_text("")
    assert desktop.tray_command() == [str(launcher)]
    assert desktop.viewer_command("--choose") == [str(launcher), "--viewer", "--choose"]


def test_source_commands() -> None:
    assert desktop.service_command() == [sys.executable, "-m", "dropsight.daemon", "service"]
    assert desktop.tray_command()[1:] == ["-m", "dropsight.tray"]
    assert desktop.viewer_command("--image", "x.jpg")[-3:] == ["--viewer", "--image", "x.jpg"]
