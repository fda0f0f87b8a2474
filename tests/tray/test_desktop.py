"""Opening files and folders with the desktop: the openers that exist, in order."""

from __future__ import annotations

import os
import webbrowser
from pathlib import Path

import pytest

from dropsight.tray import desktop
from tests.tray.x11 import wait_for


def opener(folder: Path, name: str, exit_code: int, log: Path) -> None:
    """A real program on PATH that logs its arguments and exits with `exit_code`."""
    script = folder / name
    script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexit {exit_code}\n', "utf-8")
    script.chmod(0o755)


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH holding only what the test puts there (and no browser)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    monkeypatch.delenv("BROWSER", raising=False)
    monkeypatch.setattr(webbrowser, "_tryorder", None)
    monkeypatch.setattr(webbrowser, "_browsers", {})
    return folder


@pytest.mark.skipif(os.name != "posix", reason="the Linux openers")
def test_without_xdg_open_gio_opens(bin_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "opened.log"
    opener(bin_dir, "gio", 0, log)
    desktop.open_path(tmp_path)
    wait_for(log.exists, 5, "gio to run")
    assert log.read_text("utf-8").split() == ["gio", "open", str(tmp_path)]


@pytest.mark.skipif(os.name != "posix", reason="the Linux openers")
def test_a_failing_xdg_open_falls_back(bin_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "opened.log"
    opener(bin_dir, "xdg-open", 3, log)  # xdg-open with no handler for the type exits 3
    opener(bin_dir, "gio", 0, log)
    desktop.open_path(tmp_path)
    lines = log.read_text("utf-8").splitlines()
    assert [line.split()[0] for line in lines] == ["xdg-open", "gio"]


@pytest.mark.skipif(os.name != "posix", reason="the Linux openers")
def test_nothing_to_open_with_is_an_error_that_says_what_was_tried(
    bin_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(desktop.OpenFailed, match="Nothing could open") as raised:
        desktop.open_path(tmp_path)
    assert "a web browser" in str(raised.value) and str(tmp_path) in str(raised.value)
