"""The windows fit 1280x720 and 1366x768 screens: every key widget on screen (issue 21 item 4)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from dropsight.tray import desktop
from tests.tray.x11 import need

pytestmark = pytest.mark.gui


def inside(box: dict[str, int], outer: dict[str, int]) -> bool:
    return (
        box["x"] >= outer["x"]
        and box["y"] >= outer["y"]
        and box["x"] + box["w"] <= outer["x"] + outer["w"]
        and box["y"] + box["h"] <= outer["y"] + outer["h"]
    )


@pytest.mark.timeout(300)
@pytest.mark.parametrize("screen", ["1280x720", "1366x768"])
def test_every_window_fits_the_screen(screen: str) -> None:
    """Viewer, Find photos (after two searches) and Folders on a fresh X server of that size:
    each key widget is shown whole, inside its window and the screen; a new result set does
    not resize Find photos."""
    pytest.importorskip("tkinter", reason="Python built without Tk (python3-tk)")
    need("Xvfb", "import")
    done = subprocess.run(
        [sys.executable, "-m", "tests.tray.screens", "--screen", screen, "--json"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=desktop.working_dir(),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    width, height = (int(n) for n in screen.split("x"))
    assert report["screen"] == [width, height]
    whole = {"x": 0, "y": 0, "w": width, "h": height}
    opened, searched = report["search"].pop("opened"), report["search"]["window"]
    assert (opened["w"], opened["h"]) == (searched["w"], searched["h"]), "Find photos resized"
    problems = []
    for name in ("viewer", "search", "folders"):
        widgets = report[name]
        window = widgets.pop("window")
        if not inside(window, whole):
            problems.append(f"{name} window {window} is larger than {screen}")
        for widget, box in widgets.items():
            shown = box["mapped"] and not box["clipped"] and min(box["w"], box["h"]) >= 8
            if not shown or not inside(box, window):
                problems.append(f"{name}: {widget} {box} is not shown whole in {window}")
    assert not problems, "\n".join(problems)
