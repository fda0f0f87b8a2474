"""Fixtures for the GUI tests: a private Xvfb per run and a system tray per test."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tray import screens
from tests.tray.x11 import (
    SCREEN,
    TINT2RC,
    TRAYER,
    need,
    set_root_cardinal,
    stop_process,
    tray_owner,
    xdotool_search,
)


@pytest.fixture(scope="session")
def xvfb() -> Iterator[str]:
    """A private Xvfb for the whole run; its number is chosen by the server (-displayfd).

    One per session, not per test: Tk keeps its display connection after a window is
    destroyed, and an X server dying under a live connection ends the process (XIOError).
    """
    need("Xvfb")
    with screens.xvfb(f"{SCREEN[0]}x{SCREEN[1]}") as display:
        yield display


@pytest.fixture
def display(xvfb: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """DISPLAY pointing at the private Xvfb for this test (and its child processes)."""
    monkeypatch.setenv("DISPLAY", xvfb)
    return xvfb


@pytest.fixture
def panel(display: str) -> Iterator[subprocess.Popen[bytes]]:
    """trayer: a small system tray (XEMBED) docked at the top right."""
    need("trayer", "xdotool", "xwininfo")
    # trayer (GTK 2) now and then dies while starting on a bare Xvfb; give it three tries.
    for _attempt in range(3):
        trayer = subprocess.Popen(TRAYER, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and trayer.poll() is None:
            if xdotool_search("^panel$"):
                break
            time.sleep(0.1)
        if trayer.poll() is None and xdotool_search("^panel$"):
            break
        stop_process(trayer)
    else:
        pytest.fail("trayer did not show its panel in three tries")
    try:
        yield trayer
    finally:
        stop_process(trayer)


# The X system trays Debian packages that run on a bare X server (stalonetray is not in
# Debian 12): GTK's GtkSocket (trayer), tint2's own XEMBED code, a WindowMaker dock app.
TRAYS = ("trayer", "tint2", "wmsystemtray")


@pytest.fixture(params=TRAYS)
def any_tray(
    request: pytest.FixtureRequest, display: str, tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Each system tray in turn, started and owning the tray selection."""
    name: str = request.param
    need(name, "xprop", "xwininfo", "xdotool")
    if name == "trayer":
        yield request.getfixturevalue("panel")
        return
    if name == "tint2":
        # tint2 draws its panel only once a window manager has published the desktops.
        set_root_cardinal("_NET_NUMBER_OF_DESKTOPS", 1)
        set_root_cardinal("_NET_CURRENT_DESKTOP", 0)
        config = tmp_path / "tint2rc"
        config.write_text(TINT2RC, encoding="utf-8")
        command = ["tint2", "-c", str(config)]
    else:
        command = ["wmsystemtray"]
    tray = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not tray_owner():
            if tray.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{name} did not take the system tray selection")
            time.sleep(0.1)
        yield tray
    finally:
        stop_process(tray)
