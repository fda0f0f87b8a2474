"""X11 helpers for the GUI tests: a private Xvfb, a system tray, window look-ups."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

SCREEN = (1024, 768)


def need(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(
            f"needs {', '.join(missing)} on PATH "
            "(apt-get install xvfb xdotool trayer tint2 wmsystemtray imagemagick x11-utils)"
        )


def wait_for(
    condition: Callable[[], object],
    timeout_s: float,
    what: str,
    details: Callable[[], str] = lambda: "",
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{details()}")
        time.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout_s)


def screenshot(path: Path, display: str, box: tuple[int, int, int, int] | None = None) -> None:
    """The whole screen via ImageMagick's import (Pillow's ImageGrab as a fallback)."""
    if shutil.which("import"):
        subprocess.run(
            ["import", "-display", display, "-window", "root", str(path)],
            check=True,
            timeout=30,
            capture_output=True,
        )
    else:
        from PIL import ImageGrab

        ImageGrab.grab(xdisplay=display).save(path)
    if box is not None:
        with Image.open(path) as full:
            full.crop(box).save(path)
    with Image.open(path) as shot:
        extrema = shot.convert("L").getextrema()
        assert isinstance(extrema, tuple)
        assert extrema[0] != extrema[1], "blank screenshot"


def window_shot(path: Path, display: str, window: Any) -> None:
    """A screenshot of one Tk window (laid out first)."""
    window.update_idletasks()
    x, y = window.winfo_rootx(), window.winfo_rooty()
    screenshot(path, display, (x, y, x + window.winfo_width(), y + window.winfo_height()))


def xdotool_search(name_regex: str) -> list[str]:
    found = subprocess.run(
        ["xdotool", "search", "--name", name_regex],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,  # exit 1 just means "no such window yet"
    )
    return found.stdout.split()


def window_named(name: str) -> bool:
    """Whether a window with exactly this name exists."""
    return bool(xdotool_search(f"^{re.escape(name)}$"))


def window_tree() -> str:
    return subprocess.run(
        ["xwininfo", "-root", "-tree"], capture_output=True, text=True, timeout=10, check=True
    ).stdout


TRAYER = [
    "trayer",
    "--SetDockType",
    "true",
    "--edge",
    "top",
    "--align",
    "right",
    "--widthtype",
    "pixel",
    "--width",
    "64",
    "--heighttype",
    "pixel",
    "--height",
    "28",
    "--tint",
    "0x303030",
    "--transparent",
    "true",
    "--alpha",
    "0",
]


TINT2RC = """\
panel_items = S
panel_size = 100% 30
panel_position = top center horizontal
systray_padding = 2 2 2
systray_icon_size = 24
"""


def set_root_cardinal(name: str, value: int) -> None:
    """Set a CARDINAL property on the root window (what a window manager would publish)."""
    subprocess.run(
        ["xprop", "-root", "-f", name, "32c", "-set", name, str(value)],
        check=True,
        timeout=10,
        capture_output=True,
    )


def tray_owner() -> int:
    """The window owning the system tray selection of screen 0 (0: none)."""
    import Xlib.display

    display = Xlib.display.Display()
    try:
        owner = display.get_selection_owner(display.intern_atom("_NET_SYSTEM_TRAY_S0"))
        return 0 if owner == 0 else int(owner.id)
    finally:
        display.close()
