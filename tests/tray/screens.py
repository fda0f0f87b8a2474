"""The tray's windows on a private Xvfb of a given size, with a stand-in service and library.

`python -m tests.tray.screens --screen 1280x720 --theme dark --out build/screenshots` writes
screenshots of the tray icon, the viewer, Find photos and Folders (`make screenshots`);
`--json` prints where each window's key widgets are, for tests/tray/test_layout.py.
Everything runs under a temporary DROPSIGHT_HOME: the user's own files are never touched.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# skimage's colour photos, labelled as a classifier would: (name, class index, score).
PHOTOS = (
    ("chelsea", 285, 0.91),
    ("coffee", 967, 0.84),
    ("astronaut", 812, 0.42),
    ("rocket", 812, 0.77),
    ("camera", 759, 0.58),
)
TRAY_PANELS = {"light": "0xf2f2f2", "dark": "0x202020"}


@contextmanager
def xvfb(size: str) -> Iterator[str]:
    """A private X server of `size` ("1280x720"); yields its DISPLAY."""
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{size}x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], 20)
        number = os.read(read_fd, 64).decode().strip() if ready else ""
        if not number:
            raise RuntimeError("Xvfb did not report a display number")
        yield f":{number}"
    finally:
        os.close(read_fd)
        server.terminate()
        server.wait(10)


def build_library(folder: Path) -> list[tuple[Path, Path, str, float]]:
    """Photos with sidecars and an index, as the service leaves them."""
    import numpy as np
    from PIL import Image
    from skimage import data

    from dropsight.config.settings import Settings, WatchSettings
    from dropsight.daemon.labels.classes import categories_of, info
    from dropsight.daemon.outputs import sidecar
    from dropsight.daemon.outputs.index.library import Index
    from dropsight.daemon.outputs.index.sync import sync
    from tests.daemon.outputs.test_sidecar import FACTS, MODEL

    done = []
    for i, (name, class_index, score) in enumerate(PHOTOS):
        photo = folder / f"{name.replace('_left', '')}_{i + 1:04d}.jpg"
        photo.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(getattr(data, name)()).convert("RGB").save(photo, quality=88)
        probs = np.full(1000, (1.0 - score - 0.12) / 997, np.float32)
        probs[class_index], probs[(class_index + 3) % 1000], probs[(class_index + 9) % 1000] = (
            score,
            0.08,
            0.04,
        )
        preds = sidecar.top_predictions(probs, 5)
        record = sidecar.build(
            photo.name, FACTS, MODEL, preds, categories=categories_of(preds, 0.3)
        )
        sidecar_path = photo.with_name(photo.name + ".json")
        sidecar.write(sidecar_path, record)
        done.append((photo, sidecar_path, info(class_index).name, score))
    with Index() as index:
        sync(index, Settings(watch=WatchSettings(folders=(folder,))), [folder])
    return done


def rect(widget: Any) -> dict[str, int]:
    """Where a widget is on the screen; `clipped`: 1 if a parent cuts part of it off."""
    x, y, w, h = (
        widget.winfo_rootx(),
        widget.winfo_rooty(),
        widget.winfo_width(),
        widget.winfo_height(),
    )
    clipped = 0
    parent = widget.master
    while parent is not None:
        px, py = parent.winfo_rootx(), parent.winfo_rooty()
        if (
            x < px
            or y < py
            or x + w > px + parent.winfo_width()
            or y + h > py + parent.winfo_height()
        ):
            clipped = 1
        if parent.winfo_toplevel() is parent:
            break
        parent = parent.master
    return {
        "x": x,
        "y": y,
        "w": w,
        "h": h,
        "mapped": int(widget.winfo_ismapped()),
        "clipped": clipped,
    }


def shoot(display: str, path: Path, window: Any) -> None:
    """A PNG of one window, cut from the screen."""
    from PIL import Image

    window.update_idletasks()
    full = path.with_suffix(".full.png")
    subprocess.run(
        ["import", "-display", display, "-window", "root", str(full)],
        check=True,
        timeout=30,
        capture_output=True,
    )
    x, y = window.winfo_rootx(), window.winfo_rooty()
    with Image.open(full) as image:
        image.crop((x, y, x + window.winfo_width(), y + window.winfo_height())).save(path)
    full.unlink()


def windows(display: str, theme: str, out: Path | None) -> dict[str, Any]:
    """Open the viewer, Find photos and Folders; their key widgets' places (and shots)."""
    import tkinter as tk

    from dropsight.daemon.api.server import ControlServer
    from dropsight.tray import theme as themes
    from dropsight.tray.viewer import Viewer
    from tests.tray.fakes import FakeController

    library = Path(os.environ["DROPSIGHT_HOME"]) / "Pictures"
    photos = build_library(library)
    controller = FakeController(library)
    for photo, sidecar, label, score in reversed(photos):
        controller.add_recent(photo, sidecar, label, score)
    server = ControlServer(controller)
    server.start()
    root = tk.Tk(className="Dropsight")
    themes.apply(root, theme)
    viewer = Viewer(root)
    report: dict[str, Any] = {"screen": [root.winfo_screenwidth(), root.winfo_screenheight()]}

    def pump_until(condition: Callable[[], object], what: str, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            root.update()
            if condition():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.02)

    try:
        controls = viewer.controls
        pump_until(lambda: controls.service_button.cget("text") == "Stop service", "connected")
        pump_until(lambda: len(viewer.recent_tree.get_children()) == len(photos), "recent")
        viewer.show_result(photos[0][0], photos[0][1])
        pump_until(viewer.predictions_shown, "the top-5")
        pump_until(lambda: all(viewer.recent.has_thumb(p) for p, *_ in photos), "thumbnails")
        report["viewer"] = {
            "window": rect(root),
            **{
                name: rect(widget)
                for name, widget in {
                    "service": controls.service_button,
                    "quit": controls.quit_button,
                    "xmp": controls.xmp_check,
                    "pause": viewer.pause_button,
                    "rescan": viewer.rescan_button,
                    "choose": viewer.choose_button,
                    "photo": viewer.photo_label,
                    "recent": viewer.recent_tree,
                    "last prediction": viewer.panel.pred_rows[-1].bar,
                    "model": viewer.panel.model_label,
                }.items()
            },
        }
        if out:
            shoot(display, out / f"viewer-{theme}.png", root)

        search = controls.open_search()
        search.window.geometry("+0+0")
        pump_until(lambda: search.chip_counts, "category chips")
        opened = rect(search.window)
        search.search("cat")
        pump_until(lambda: " of \u201c" in str(search.summary.cget("text")), "results")
        search.search("animal")
        pump_until(lambda: " of \u201c" in str(search.summary.cget("text")), "results")
        search.cells[0].invoke()
        pump_until(lambda: search.detail_image.cget("image"), "the details photo")
        pump_until(lambda: all(c.cget("image") for c in search.shown_cells()), "thumbnails")
        report["search"] = {
            "window": rect(search.window),
            "opened": opened,
            **{
                name: rect(widget)
                for name, widget in {
                    "entry": search.entry,
                    "go": search.search_button,
                    "open_photo": search.open_photo,
                    "open_folder": search.open_folder,
                    "next": search.next_button,
                    "details": search.detail_text,
                    **{f"chip {n}": c for n, c in enumerate(search.chip_buttons)},
                }.items()
            },
        }
        if out:
            shoot(display, out / f"find-photos-{theme}.png", search.window)
        search.close()

        dialog = controls.open_folders()
        dialog.window.geometry("+0+0")
        pump_until(lambda: dialog.listbox.get(0, "end"), "the folder list")
        dialog.listbox.selection_set(0)
        root.update()
        report["folders"] = {
            "window": rect(dialog.window),
            **{
                name: rect(widget)
                for name, widget in {
                    "add": dialog.add_button,
                    "remove": dialog.remove_button,
                    "open": dialog.open_button,
                    "close": dialog.close_button,
                }.items()
            },
        }
        if out:
            shoot(display, out / f"folders-{theme}.png", dialog.window)
        dialog.close()
    finally:
        viewer.close()
        server.stop()
    return report


def tray_shot(display: str, theme: str, out: Path) -> None:
    """The icon in each state, docked in trayer on a light or dark panel, zoomed 4x."""
    import importlib

    from PIL import Image

    from dropsight.tray import xorg
    from dropsight.tray.icons import icon_for

    os.environ["PYSTRAY_BACKEND"] = "xorg"
    pystray = importlib.import_module("pystray")
    states: list[Any] = [
        {"state": "idle", "done": 5},
        {"state": "working", "done": 40, "queued": 60},
        {"state": "paused", "queued": 3},
        {"state": "error", "errors": [{"message": "disk full"}]},
        None,
    ]
    width = 32 * len(states)
    trayer = subprocess.Popen(
        [
            "trayer",
            "--edge",
            "top",
            "--align",
            "left",
            "--widthtype",
            "pixel",
            "--width",
            str(width),
            "--heighttype",
            "pixel",
            "--height",
            "32",
            "--tint",
            TRAY_PANELS[theme],
            "--transparent",
            "true",
            "--alpha",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    icons = []
    try:
        time.sleep(1.5)  # trayer has no "ready" signal; it takes the selection within this
        for n, state in enumerate(states):
            icon = xorg.icon_class(pystray.Icon)(f"shot{n}", icon=icon_for(state), title="x")
            icons.append(icon)
            icon.run_detached()
        time.sleep(0.5)
        for icon in icons:
            icon.visible = True
        time.sleep(1.5)
        full = out / "tray.full.png"
        subprocess.run(
            ["import", "-display", display, "-window", "root", str(full)],
            check=True,
            timeout=30,
            capture_output=True,
        )
        with Image.open(full) as image:
            panel = image.crop((0, 0, width, 32))
            panel.resize((width * 4, 128), Image.Resampling.NEAREST).save(out / f"tray-{theme}.png")
        full.unlink()
    finally:
        trayer.terminate()
        trayer.wait(10)
        # The icons' loops end with their X server; this throw-away process need not wait.
        os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.tray.screens")
    parser.add_argument("--screen", default="1280x720")
    parser.add_argument("--theme", choices=("light", "dark"), default="light")
    parser.add_argument("--out", type=Path, help="write screenshots here")
    parser.add_argument("--json", action="store_true", help="print the widgets' places")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.inner:  # a fresh X server and a throw-away home for the windows
        with xvfb(args.screen) as display, tempfile.TemporaryDirectory() as home:
            env = {**os.environ, "DISPLAY": display, "DROPSIGHT_HOME": home}
            env["XDG_CONFIG_HOME"] = str(Path(home) / "xdg-config")
            if args.out:
                args.out.mkdir(parents=True, exist_ok=True)
                subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        f"from tests.tray.screens import tray_shot; "
                        f"from pathlib import Path; tray_shot({display!r}, {args.theme!r}, "
                        f"Path({str(args.out)!r}))",
                    ],
                    env=env,
                    check=True,
                    timeout=120,
                )
            command = [
                sys.executable,
                "-m",
                "tests.tray.screens",
                "--inner",
                *(argv or sys.argv[1:]),
            ]
            return subprocess.run(command, env=env, check=False, timeout=300).returncode
    report = windows(os.environ["DISPLAY"], args.theme, args.out)
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
