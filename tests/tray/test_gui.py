"""The real viewer and the real tray icon under a private Xvfb, with screenshots."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from dropsight.daemon.api.client import ServiceClient
from dropsight.daemon.api.server import ControlServer, control_file
from dropsight.tray import desktop
from dropsight.tray.icons import tooltip_for
from tests.tray.fakes import TOP5, FakeController, sidecar_for
from tests.tray.x11 import (
    SCREEN,
    need,
    screenshot,
    stop_process,
    wait_for,
    window_named,
    window_shot,
    window_tree,
    xdotool_search,
)

pytestmark = pytest.mark.gui

TRAY_TITLE = "Dropsight: 13 of 340, 1 failed"


@pytest.fixture(autouse=True)
def collect_tk_in_the_main_thread() -> Iterator[None]:
    """Free a closed window's Tk objects here: if a later test's worker thread (a service's
    inference lane, say) happened to run the garbage collector over them, Tcl would abort
    the whole process ("async handler deleted by the wrong thread")."""
    yield
    gc.collect()


@pytest.fixture
def gui_photos(tmp_path: Path) -> dict[str, Path]:
    from skimage import data

    folder = tmp_path / "photos"
    folder.mkdir()
    out = {}
    for name in ("chelsea", "coffee", "astronaut"):
        path = folder / f"{name}.jpg"
        Image.fromarray(getattr(data, name)()).save(path, quality=90)
        out[name] = path
    return out


def test_viewer_classifies_a_photo(
    display: str, gui_photos: dict[str, Path], tmp_path: Path
) -> None:
    tk = pytest.importorskip("tkinter", reason="Python built without Tk (python3-tk)")

    from dropsight.daemon.labels.names import friendly
    from dropsight.tray.viewer import Viewer

    fake = FakeController(gui_photos["chelsea"].parent)
    for name, label, score in (("astronaut", "space_suit", 0.412), ("coffee", "espresso", 0.873)):
        sidecar = gui_photos[name].with_name(gui_photos[name].name + ".json")
        sidecar.write_text(json.dumps(sidecar_for(gui_photos[name])))
        fake.add_recent(gui_photos[name], sidecar, label, score)

    with ControlServer(fake):
        root = tk.Tk(className="Dropsight")
        root.geometry("+0+0")
        viewer = Viewer(root, choose_file=lambda: str(gui_photos["chelsea"]))
        try:

            def pump_until(condition: Callable[[], object], what: str) -> None:
                def check() -> object:
                    root.update()
                    return condition()

                wait_for(check, 20, what)

            pump_until(lambda: "13 of 340" in str(viewer.status_label.cget("text")), "status")
            pump_until(lambda: len(viewer.recent_tree.get_children()) == 2, "recent list")

            viewer.choose_button.invoke()
            pump_until(lambda: len(viewer.predictions_shown()) == 5, "top-5")
            # Read the labels off the widgets themselves, by their names.
            shown = [
                (
                    str(root.nametowidget(f".body.predictions.pred{i}_label").cget("text")),
                    str(root.nametowidget(f".body.predictions.pred{i}_score").cget("text")),
                )
                for i in range(5)
            ]
            assert shown == [(friendly(label), f"{score * 100:.1f}%") for *_, label, score in TOP5]
            assert shown[0] == ("Egyptian cat", "61.2%")
            assert viewer.photo_label.cget("image")  # the photo is on screen
            # A long path is cut in the middle (an ellipsis); its file name stays whole.
            shown_path = str(viewer.file_label.cget("text"))
            assert shown_path.endswith("chelsea.jpg") and shown_path.startswith("/tmp")

            rows = [viewer.recent_tree.item(iid) for iid in viewer.recent_tree.get_children()]
            assert [r["text"].strip() for r in rows] == ["coffee.jpg", "astronaut.jpg"]
            assert [r["values"][0] for r in rows] == ["espresso", "space suit"]
            pump_until(
                lambda: all(
                    viewer.recent_tree.item(iid, "image")
                    and viewer.recent_tree.item(iid, "image")[0] != str(viewer.recent.placeholder)
                    for iid in viewer.recent_tree.get_children()
                ),
                "thumbnails",
            )
            window_shot(tmp_path / "viewer.png", display, root)

            viewer.pause_button.invoke()
            pump_until(lambda: viewer.pause_button.cget("text") == "Resume", "paused state")
            assert fake.calls == ["pause"]
            viewer.rescan_button.invoke()
            pump_until(lambda: "rescan" in fake.calls, "rescan")

            # A recent entry shows its stored result without classifying again.
            viewer.recent_tree.selection_set(viewer.recent_tree.get_children()[0])
            pump_until(lambda: "coffee.jpg" in str(viewer.file_label.cget("text")), "selection")
            pump_until(lambda: len(viewer.predictions_shown()) == 5, "stored top-5")
        finally:
            viewer.close()


def test_viewer_without_service(display: str, tmp_path: Path) -> None:
    tk = pytest.importorskip("tkinter", reason="Python built without Tk (python3-tk)")

    from dropsight.tray.viewer import Viewer

    root = tk.Tk(className="Dropsight")
    viewer = Viewer(root)
    try:
        deadline = time.monotonic() + 10
        while "not running" not in str(viewer.status_label.cget("text")).lower():
            assert time.monotonic() < deadline
            root.update()
            time.sleep(0.05)
        assert str(viewer.pause_button.cget("state")) == "disabled"
        assert "not running" in str(viewer.banner.cget("text"))
        screenshot(
            tmp_path / "viewer-offline.png",
            display,
            (0, 0, root.winfo_width(), root.winfo_height()),
        )
    finally:
        viewer.close()


@pytest.fixture
def fake_service(display: str, gui_photos: dict[str, Path]) -> Iterator[subprocess.Popen[bytes]]:
    """The stand-in service in its own process, as the tray would find a real one."""
    service = subprocess.Popen(
        [sys.executable, "-m", "tests.tray.fakes", str(gui_photos["chelsea"].parent)],
        cwd=desktop.working_dir(),
    )
    try:
        wait_for(control_file().exists, 20, "control.json")
        yield service
    finally:
        stop_process(service)


def zoomed_tray_shot(path: Path, display: str) -> None:
    """The panel corner, enlarged so the 24 px icon can be looked at."""
    screenshot(path, display, (SCREEN[0] - 96, 0, SCREEN[0], 32))
    with Image.open(path) as shot:
        shot.resize((shot.width * 4, shot.height * 4), Image.Resampling.NEAREST).save(path)


def test_tray_docks_updates_and_opens_viewer_on_click(
    display: str,
    panel: subprocess.Popen[bytes],
    fake_service: subprocess.Popen[bytes],
    tmp_path: Path,
) -> None:
    env = dict(os.environ, PYSTRAY_BACKEND="xorg", DISPLAY=display)
    started = time.monotonic()
    tray = subprocess.Popen(
        [sys.executable, "-m", "dropsight.tray", "--no-start-service"],
        cwd=desktop.working_dir(),
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: xdotool_search(f"^{TRAY_TITLE}$"), 20, "the tray icon window")
        startup_s = time.monotonic() - started
        icon_window = xdotool_search(f"^{TRAY_TITLE}$")[0]
        # Docked: trayer reparented the icon window into its panel.
        tree = window_tree()
        panel_block = tree[tree.index('"panel"') :]
        assert f'"{TRAY_TITLE}"' in panel_block
        geometry = subprocess.run(
            ["xdotool", "getwindowgeometry", icon_window],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "Position" in geometry

        time.sleep(0.5)  # let the icon paint
        zoomed_tray_shot(tmp_path / "tray.png", display)

        # A change in the service shows in the icon's title within a poll or two.
        ServiceClient.connect().pause()
        wait_for(
            lambda: xdotool_search("^Dropsight: paused, 327 waiting, 1 failed$"), 10, "paused title"
        )
        zoomed_tray_shot(tmp_path / "tray-paused.png", display)
        ServiceClient.connect().resume()
        wait_for(lambda: xdotool_search(f"^{TRAY_TITLE}$"), 10, "working title")

        # The xorg backend has no menu: a left click opens the viewer window.
        subprocess.run(
            ["xdotool", "mousemove", "--window", icon_window, "8", "8", "click", "1"],
            check=True,
            timeout=10,
        )
        wait_for(lambda: xdotool_search("^Dropsight$"), 30, "the viewer window")
        time.sleep(2)  # let the viewer fetch its status and thumbnails, and paint
        screenshot(tmp_path / "tray-click-viewer.png", display)

        tray.send_signal(signal.SIGTERM)
        assert tray.wait(20) == 0
        # The tray closes the viewer it opened and leaves the service it did not start.
        wait_for(lambda: not xdotool_search("^Dropsight$"), 10, "viewer to close")
        assert fake_service.poll() is None
    finally:
        stop_process(tray)
        stderr = tray.stderr.read().decode() if tray.stderr else ""
        tray.stderr and tray.stderr.close()
    assert "Traceback" not in stderr, stderr
    assert startup_s < 10


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`dropsight ARGS` from the source tree."""
    return subprocess.run(
        [sys.executable, "-m", "dropsight.daemon", *args],
        cwd=desktop.working_dir(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_real_tray_starts_the_service_and_shows_a_new_photo(
    display: str, panel: subprocess.Popen[bytes], app_home: Path, tmp_path: Path
) -> None:
    """`dropsight tray` under Xvfb: icon, a real service started, a dropped photo counted."""
    from skimage import data

    from dropsight.daemon.core import paths

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = paths.config_file()
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f'[watch]\nfolders = [{json.dumps(str(inbox))}]\n\n[model]\nname = "efficientnet-lite0"\n',
        encoding="utf-8",
    )
    service_log = paths.log_dir() / "dropsight.log"
    env = dict(os.environ, PYSTRAY_BACKEND="xorg", DISPLAY=display)
    tray = subprocess.Popen(
        [sys.executable, "-m", "dropsight.tray"], cwd=desktop.working_dir(), env=env
    )

    def log_tail() -> str:
        tray.send_signal(signal.SIGUSR1)  # the tray dumps its threads' stacks
        time.sleep(0.5)
        stacks = paths.log_dir() / "tray-stacks.log"
        stack_text = stacks.read_text(errors="replace") if stacks.exists() else "(none)"
        text = service_log.read_text(errors="replace") if service_log.exists() else "(no log)"
        tray_log = paths.log_dir() / "tray.log"
        tray_text = tray_log.read_text(errors="replace") if tray_log.exists() else "(no log)"
        windows = [line for line in window_tree().splitlines() if "Dropsight" in line]
        return (
            f"windows: {windows}\nstatus: {run_cli('status', '--json').stdout[-1500:]}\n"
            f"tray log: {tray_text[-2000:]}\nservice log: {text[-2000:]}\n"
            f"tray stacks: {stack_text[-4000:]}"
        )

    try:
        wait_for(lambda: xdotool_search("^Dropsight: "), 20, "the tray icon window")
        wait_for(control_file().exists, 120, "the service the tray started", log_tail)
        service_pid = json.loads(control_file().read_text())["pid"]
        assert service_pid != tray.pid

        def state() -> str:
            answer = run_cli("status", "--json")
            return json.loads(answer.stdout)["state"] if answer.returncode == 0 else "down"

        # The model may need converting once (cached for the rest of the run).
        deadline = time.monotonic() + 300
        while state() != "idle":
            assert time.monotonic() < deadline, log_tail()
            assert tray.poll() is None, log_tail()
            time.sleep(1)
        wait_for(lambda: window_named("Dropsight: idle, 0 done"), 30, "idle title", log_tail)

        # Drop a photo the way a browser would: a partial name, then a rename.
        partial = inbox / "chelsea.jpg.part"
        Image.fromarray(data.chelsea()).save(partial, format="JPEG", quality=90)
        partial.rename(inbox / "chelsea.jpg")

        def counted() -> bool:
            answer = run_cli("status", "--json")
            return answer.returncode == 0 and json.loads(answer.stdout)["done"] == 1

        wait_for(counted, 120, "the photo in `dropsight status --json`")

        def tray_agrees_with_cli() -> bool:
            # The tray's title is the tooltip of what `dropsight status --json` reports.
            answer = run_cli("status", "--json")
            status = json.loads(answer.stdout) if answer.returncode == 0 else None
            expected = tooltip_for(status)
            return bool(status and status["done"] == 1 and window_named(expected))

        wait_for(tray_agrees_with_cli, 30, "the tray title to show the new photo", log_tail)
        human = run_cli("status")
        assert human.returncode == 0
        assert "1 done" in human.stdout
        assert (inbox / "chelsea.jpg.json").exists()
        sidecar = json.loads((inbox / "chelsea.jpg.json").read_text())
        assert sidecar["predictions"][0]["label"] in {"tabby", "tiger_cat", "Egyptian_cat"}
        time.sleep(0.5)
        zoomed_tray_shot(tmp_path / "tray-real-service.png", display)

        # Quit (SIGTERM takes the same path): the tray stops the service it started.
        tray.send_signal(signal.SIGTERM)
        assert tray.wait(60) == 0
        assert not control_file().exists()
        not_running = run_cli("status")
        assert not_running.returncode == 3
        assert "Dropsight is not running" in not_running.stderr
    finally:
        stop_process(tray)
        # Never leave the service behind, even when the tray failed to stop it.
        if control_file().exists():
            pid = json.loads(control_file().read_text()).get("pid")
            if isinstance(pid, int) and pid != os.getpid():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def test_viewer_controls_drive_a_real_service(
    display: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every tray menu action from the viewer alone (X11 trays have no menus), against a real
    in-process service: stop, start, folders, settings, log, start at login, XMP, quit."""
    tk = pytest.importorskip("tkinter", reason="Python built without Tk (python3-tk)")

    from dropsight.config.settings import DEFAULT_TOML, load
    from dropsight.daemon.core import paths
    from dropsight.daemon.service import startfail
    from dropsight.daemon.service.service import Service
    from dropsight.tray.viewer import Viewer
    from tests.daemon.helpers import FakeClassifier, make_photo

    opened: list[Path] = []
    spawned: list[list[str]] = []
    monkeypatch.setattr(desktop, "open_path", opened.append)
    monkeypatch.setattr(desktop, "spawn", spawned.append)
    first, second = tmp_path / "Phone", tmp_path / "Camera"
    first.mkdir()
    second.mkdir()
    config = paths.config_file()
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'[watch]\nfolders = ["{first}"]\nsettle_time_s = 0.3\n', "utf-8")
    service = Service(
        load(config),
        classifier_factory=lambda _s: FakeClassifier(),
        reload_settings=lambda: load(config),
    )
    server = ControlServer(service)
    service.start()
    server.start()
    root = tk.Tk(className="Dropsight")
    root.geometry("+0+0")
    viewer = Viewer(root)
    controls = viewer.controls

    def pump_until(condition: Callable[[], object], what: str, timeout_s: float = 20) -> None:
        def check() -> object:
            root.update()
            return condition()

        wait_for(check, timeout_s, what)

    def shot(name: str, window: Any = None) -> None:
        window_shot(tmp_path / name, display, window or root)

    try:
        pump_until(lambda: controls.service_button.cget("text") == "Stop service", "connected")
        shot("viewer-controls.png")

        # Folders: add one with the picker, and the running service watches it.
        dialog = controls.open_folders()
        dialog.choose_folder = lambda: str(second)
        pump_until(lambda: dialog.listbox.get(0, "end") == (str(first),), "the folder list")
        dialog.add_button.invoke()
        assert dialog.listbox.get(0, "end") == (str(first), str(second))
        pump_until(lambda: len(service.status()["folders"]) == 2, "the service watching both")
        make_photo(second / "new.jpg")
        pump_until((second / "new.jpg.json").exists, "a photo in the added folder labelled")
        shot("viewer-folders.png", dialog.window)
        dialog.listbox.selection_set(0)
        dialog.open_button.invoke()
        assert opened[-1] == first
        dialog.remove_button.invoke()
        pump_until(lambda: len(service.status()["folders"]) == 1, "the folder dropped")
        assert load(config).watch.folders == (second,)
        dialog.close_button.invoke()
        assert not dialog.alive
        dialog = controls.open_folders()  # Escape closes it too
        dialog.window.focus_force()
        pump_until(lambda: dialog.window.winfo_viewable(), "the folders dialog again")
        dialog.window.event_generate("<Escape>")
        pump_until(lambda: not dialog.alive, "Escape to close the dialog")

        # Settings, log, start at login, XMP.
        controls.settings_button.invoke()
        assert opened[-1] == config
        controls.log_button.invoke()
        assert opened[-1].name in ("dropsight.log", "log")
        controls.login_check.invoke()
        assert controls.login_check.instate(["selected"])
        controls.login_check.invoke()
        assert not controls.login_check.instate(["selected"])
        controls.xmp_check.invoke()
        assert load(config).output.xmp == "beside"
        pump_until(lambda: service.status()["output"]["xmp"] == "beside", "XMP on")
        pump_until(lambda: (second / "new.jpg.xmp").exists(), "the caught-up XMP file")

        # Stop: the service ends, the viewer offers Start, which starts one.
        controls.service_button.invoke()
        assert service.wait(10)
        server.stop()
        service.join()
        pump_until(lambda: controls.service_button.cget("text") == "Start service", "offline")
        controls.service_button.invoke()
        assert spawned == [desktop.service_command()]

        # The Start message goes as soon as the outcome shows (here: a failed start).
        assert "Starting the service" in str(viewer.banner.cget("text"))
        good = config.read_text("utf-8")
        config.write_text(good + "\n[model]\ntop_k = 0\n", "utf-8")
        width = root.winfo_width()
        reason = f"config error: {config}: model.top_k = 0 is invalid; expected 1 to 1000"
        startfail.record(reason)
        # The reason, in a banner that does not widen the window.
        pump_until(lambda: reason in str(viewer.banner.cget("text")), "the start failure")
        root.update_idletasks()
        assert root.winfo_width() == width
        shot("viewer-start-failed.png")
        # Fixed in the file: the banner says so without a click on Start.
        config.write_text(good, "utf-8")
        pump_until(lambda: "fixed" in str(viewer.banner.cget("text")), "the fixed config")

        controls.quit_button.invoke()
        assert viewer._closed
        assert DEFAULT_TOML.exists()
    finally:
        viewer.close()
        server.stop()
        service.join()


def test_clicking_the_icon_again_raises_the_one_viewer(
    display: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second click brings the open viewer forward instead of starting another process."""
    need("xdotool")
    from dropsight.tray import app as tray_app

    monkeypatch.setattr(tray_app, "VIEWER_DEBOUNCE_S", 0.0)
    app = tray_app.TrayApp(start_service=False)
    try:
        app.open_viewer()
        wait_for(lambda: window_named("Dropsight"), 30, "the viewer window")
        (window,) = xdotool_search("^Dropsight$")
        subprocess.run(["xdotool", "windowunmap", "--sync", window], check=True, timeout=10)
        assert not visible(window)
        app.open_viewer()
        wait_for(lambda: visible(window), 10, "the same viewer shown again")
        assert len(app._viewers) == 1
        assert app._viewers[0].poll() is None
        assert xdotool_search("^Dropsight$") == [window]
    finally:
        app.shutdown()


def visible(window: str) -> bool:
    info = subprocess.run(
        ["xwininfo", "-id", window], capture_output=True, text=True, timeout=10, check=False
    ).stdout
    return "IsViewable" in info


def test_viewer_first_run_offers_vgg16_and_shows_the_download(display: str, tmp_path: Path) -> None:
    tk = pytest.importorskip("tkinter", reason="Python built without Tk (python3-tk)")

    from dropsight.tray.viewer import Viewer

    fake = FakeController()
    fake.fallback = True
    fake.model_extra = {"missing": {"name": "vgg16", "download_bytes": 553_467_096}, "fetch": None}
    with ControlServer(fake):
        root = tk.Tk(className="Dropsight")
        root.geometry("+0+0")
        viewer = Viewer(root)
        button = viewer.controls.download_button
        try:

            def pump_until(condition: Callable[[], object], what: str) -> None:
                def check() -> object:
                    root.update()
                    return condition()

                wait_for(check, 20, what)

            pump_until(lambda: button.winfo_ismapped(), "the download offer")
            assert button.cget("text") == "Download VGG16 (553 MB)\u2026"
            assert "until VGG16 is downloaded" in str(viewer.banner.cget("text"))
            root.update_idletasks()
            box = (0, 0, root.winfo_width(), root.winfo_height())
            screenshot(tmp_path / "viewer-first-run.png", display, box)
            button.invoke()
            pump_until(lambda: "get_model vgg16" in fake.calls, "the download asked for")
            fake.model_extra = dict(
                fake.model_extra,
                fetch={
                    "name": "vgg16",
                    "stage": "downloading",
                    "done_bytes": 277_000_000,
                    "total_bytes": 553_467_096,
                    "rate_bps": 11_000_000.0,
                    "eta_s": 25.0,
                    "elapsed_s": 25.0,
                    "error": None,
                },
            )
            viewer._message = ("", 0.0, None)
            pump_until(
                lambda: str(viewer.banner.cget("text")).startswith("Downloading VGG16: 50%"),
                "the progress",
            )
            pump_until(lambda: not button.winfo_ismapped(), "the offer hidden while busy")
            screenshot(tmp_path / "viewer-downloading.png", display, box)
        finally:
            viewer.close()


def test_find_photos_window(display: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Search box, category chips with counts, a paged thumbnail grid, details, open buttons."""
    tk = pytest.importorskip("tkinter", reason="Python built without Tk (python3-tk)")

    from dropsight.config.settings import Settings, WatchSettings
    from dropsight.daemon.labels.classes import categories_of
    from dropsight.daemon.outputs import sidecar
    from dropsight.daemon.outputs.index.library import Index
    from dropsight.daemon.outputs.index.sync import sync
    from dropsight.tray.viewer import Viewer
    from tests.daemon.helpers import make_photo
    from tests.daemon.outputs.test_sidecar import FACTS, MODEL, probs_with

    opened: list[Path] = []
    monkeypatch.setattr(desktop, "open_path", opened.append)
    library = tmp_path / "library"
    for i in range(20):  # twenty dogs of different breeds, best first by score
        photo = make_photo(library / "dogs" / f"dog{i:02d}.jpg", seed=i, size=(160, 120))
        # The last dog also has a cat among its labels, at 10%: found by "cat" (and counted).
        top = {151 + i: 0.95 - i * 0.02, **({283: 0.1} if i == 19 else {})}
        preds = sidecar.top_predictions(probs_with(top), 5)
        record = sidecar.build(
            photo.name, FACTS, MODEL, preds, categories=categories_of(preds, 0.3)
        )
        sidecar.write(photo.with_name(photo.name + ".json"), record)
    for i, cls in enumerate((281, 282, 817)):  # two cats and a sports car
        photo = make_photo(library / "other" / f"o{i}.jpg", seed=100 + i, size=(160, 120))
        preds = sidecar.top_predictions(probs_with({cls: 0.8}), 5)
        record = sidecar.build(
            photo.name, FACTS, MODEL, preds, categories=categories_of(preds, 0.3)
        )
        sidecar.write(photo.with_name(photo.name + ".json"), record)
    with Index() as index:
        sync(index, Settings(watch=WatchSettings(folders=(library,))), [library])

    root = tk.Tk(className="Dropsight")
    root.geometry("+0+0")
    viewer = Viewer(root)
    try:
        window = viewer.controls.open_search()

        def pump_until(condition: Callable[[], object], what: str) -> None:
            def check() -> object:
                root.update()
                return condition()

            wait_for(check, 20, what)

        pump_until(lambda: window.chips.winfo_children(), "category chips")
        chips = {str(c.cget("text")) for c in window.chips.winfo_children()}
        # Counted as a click searches (labels at least 30% sure, as `dropsight search`):
        # dog19's cat at 10% and every photo's fish at 0.x% count for neither.
        assert {"Dogs 20", "Cats 2", "Animals 22", "Cars 1"} <= chips, chips
        for name, count in window.chip_counts.items():  # a click opens what the chip says
            window.search(name)
            pump_until(
                lambda: str(window.summary.cget("text")).startswith(f"{count:,} photo"),  # noqa: B023
                f"{count} photos for the {name} chip",
            )
        window.entry.delete(0, "end")
        window.entry.insert(0, "dog")
        window.search_button.invoke()
        pump_until(lambda: "20 photos" in str(window.summary.cget("text")), "20 dogs")
        page = window.page_size  # as many as the window holds
        assert page >= 6
        pages = -(-20 // page)
        assert f"page 1 of {pages}" in str(window.summary.cget("text"))
        shown = [c for c in window.cells if c.winfo_ismapped()]
        assert len(shown) == page
        assert str(shown[0].cget("text")).startswith(window._hits[0].name)
        pump_until(lambda: all(c.cget("image") for c in shown), "thumbnails")
        window.cells[0].invoke()
        assert "dog00.jpg" in str(window.detail_title.cget("text"))
        assert window._hits[0].name in str(window.detail_text.cget("text"))
        pump_until(lambda: window.detail_image.cget("image"), "the larger photo")
        window.open_folder.invoke()
        assert opened == [library / "dogs"]
        w = window.window
        w.lift()
        pump_until(lambda: w.winfo_viewable(), "the search window on top")
        window_shot(tmp_path / "find-photos.png", display, w)
        window.next_button.invoke()
        assert f"page 2 of {pages}" in str(window.summary.cget("text"))
        assert len([c for c in window.cells if c.winfo_ismapped()]) == min(page, 20 - page)
        chip = root.nametowidget(f"{window.chips}.chip_cat")
        chip.invoke()
        # A new search empties the details panel (it showed dog00 until now).
        assert str(window.detail_title.cget("text")) == ""
        assert not window.detail_image.cget("image")
        pump_until(lambda: "2 photos" in str(window.summary.cget("text")), "the cats chip")
        # The same words as `dropsight search`, and the reason when nothing is found.
        window.search("puppies")
        pump_until(lambda: "20 photos" in str(window.summary.cget("text")), "puppies: dogs")
        assert "puppies: showing every dog" in str(window.summary.cget("text"))
        window.search("sunset")
        pump_until(lambda: "0 photos" in str(window.summary.cget("text")), "no sunsets")
        assert "no ImageNet class or category covers 'sunset'" in str(window.summary.cget("text"))
        window.search("zebra")
        pump_until(lambda: "none yet (23 photos" in str(window.summary.cget("text")), "no zebras")
    finally:
        viewer.close()


def test_the_xmp_box_shows_what_the_service_does(
    display: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After each click and after a hand edit of config.toml the box equals the service's
    XMP setting, never the half-checked look (issue 21 item 2)."""
    tk = pytest.importorskip("tkinter", reason="Python built without Tk (python3-tk)")

    from dropsight.config.settings import load
    from dropsight.daemon.core import paths
    from dropsight.daemon.service.service import Service
    from dropsight.tray.viewer import Viewer
    from tests.daemon.helpers import FakeClassifier

    monkeypatch.setattr(desktop, "spawn", lambda _command: None)
    folder = tmp_path / "Phone"
    folder.mkdir()
    config = paths.config_file()
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'[watch]\nfolders = ["{folder}"]\n\n[output]\nxmp = "off"\n', "utf-8")
    service = Service(
        load(config),
        classifier_factory=lambda _s: FakeClassifier(),
        reload_settings=lambda: load(config),
    )
    server = ControlServer(service)
    service.start()
    server.start()
    root = tk.Tk(className="Dropsight")
    viewer = Viewer(root)
    box = viewer.controls.xmp_check

    def pump_until(condition: Callable[[], object], what: str, timeout_s: float = 15) -> None:
        def check() -> object:
            root.update()
            return condition()

        wait_for(check, timeout_s, what)

    def service_xmp() -> bool:
        return service.status()["output"]["xmp"] == "beside"

    def box_agrees() -> bool:
        assert not box.instate(["alternate"]), "the half-checked look"
        return box.instate(["selected"]) == service_xmp() and not box.instate(["disabled"])

    try:
        pump_until(box_agrees, "the box to show XMP off")
        assert not box.instate(["selected"])
        for wanted in (True, False, True, False):
            box.invoke()
            pump_until(lambda: service_xmp() == wanted, f"the service to apply XMP {wanted}")  # noqa: B023
            pump_until(box_agrees, f"the box to show XMP {wanted}")
            assert box.instate(["selected"]) == wanted
        # By hand, while the viewer is open: the box follows the file the service reads.
        text = config.read_text("utf-8").replace('xmp = "off"', 'xmp = "beside"')
        config.write_text(text, "utf-8")
        pump_until(service_xmp, "the service to read the edited file")
        pump_until(box_agrees, "the box to follow the edited file")
        assert box.instate(["selected"])
    finally:
        viewer.close()
        server.stop()
        service.stop()
        service.join()


def test_viewer_fills_recent_results_from_the_library_and_shows_progress(
    display: str, tmp_path: Path
) -> None:
    """At start the recent list holds the library's latest results (the service's own list
    starts empty); a working service's progress is a real progress bar (issue 21 item 7)."""
    tk = pytest.importorskip("tkinter", reason="Python built without Tk (python3-tk)")

    from dropsight.tray.viewer import Viewer
    from tests.tray.screens import build_library

    photos = build_library(tmp_path / "Pictures")
    controller = FakeController()  # working: 13 of 340, and no recent results of its own
    server = ControlServer(controller)
    server.start()
    root = tk.Tk(className="Dropsight")
    viewer = Viewer(root)
    try:

        def pump_until(condition: Callable[[], object], what: str) -> None:
            def check() -> object:
                root.update()
                return condition()

            wait_for(check, 20, what)

        tree = viewer.recent_tree
        pump_until(lambda: len(tree.get_children()) == len(photos), "the library's results")
        newest_first = [str(tree.item(iid, "text")).strip() for iid in tree.get_children()]
        assert sorted(newest_first) == sorted(p.name for p, *_ in photos)
        bar = viewer.header.progress
        pump_until(bar.winfo_ismapped, "the progress bar")
        assert float(bar.cget("value")) == pytest.approx(13 / 340)
        controller.state = "idle"
        pump_until(lambda: not bar.winfo_ismapped(), "the bar hidden when idle")
    finally:
        viewer.close()
        server.stop()


@pytest.mark.timeout(180)
def test_the_real_tray_keeps_its_icon_through_twenty_pauses_and_resumes(
    display: str,
    any_tray: subprocess.Popen[bytes],
    fake_service: subprocess.Popen[bytes],
) -> None:
    """`dropsight tray` in trayer, tint2 and wmsystemtray: after each of 20 state changes of
    the service (pause, resume, ...) its icon window keeps its size (issue 21 item 1: the
    repro left it 1x24 after two pause/resume cycles)."""
    import re

    env = dict(os.environ, PYSTRAY_BACKEND="xorg", DISPLAY=display)
    tray = subprocess.Popen(
        [sys.executable, "-m", "dropsight.tray", "--no-start-service"],
        cwd=desktop.working_dir(),
        env=env,
        stderr=subprocess.PIPE,
    )
    paused_title = "Dropsight: paused, 327 waiting, 1 failed"

    def size(title: str) -> tuple[int, int] | None:
        for line in window_tree().splitlines():
            if f'"{title}"' in line and "SystemTrayIcon" in line:
                found = re.search(r"\)\s+(\d+)x(\d+)[+-]", line)
                return (int(found.group(1)), int(found.group(2))) if found else None
        return None

    try:
        wait_for(lambda: (size(TRAY_TITLE) or (0, 0))[0] >= 16, 20, "the docked icon")
        first = size(TRAY_TITLE)
        client = ServiceClient.connect()
        sizes = []
        for change in range(20):
            paused = change % 2 == 0
            client.pause() if paused else client.resume()
            title = paused_title if paused else TRAY_TITLE
            wait_for(lambda: window_named(title), 10, title)  # noqa: B023
            time.sleep(0.4)  # no tray says "done re-embedding": give a broken one time
            sizes.append(size(title))
        changed = [(n + 1, s) for n, s in enumerate(sizes) if s != first]
        assert not changed, f"the icon was {first}, then (change, size): {changed}"
        tray.send_signal(signal.SIGTERM)
        assert tray.wait(20) == 0
    finally:
        stop_process(tray)
        stderr = tray.stderr.read().decode() if tray.stderr else ""
        tray.stderr and tray.stderr.close()
    assert "Traceback" not in stderr, stderr


def test_the_starting_message_goes_when_the_start_fails(
    display: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service that exits at once: "Starting the service..." goes at the next status poll,
    not seconds later (issue 21 item 3)."""
    tk = pytest.importorskip("tkinter", reason="Python built without Tk (python3-tk)")

    from dropsight.tray.viewer import Viewer

    monkeypatch.setattr(
        desktop, "service_command", lambda: [sys.executable, "-c", "raise SystemExit(3)"]
    )
    root = tk.Tk(className="Dropsight")
    viewer = Viewer(root)
    try:

        def pump_until(condition: Callable[[], object], what: str, timeout_s: float) -> None:
            def check() -> object:
                root.update()
                return condition()

            wait_for(check, timeout_s, what)

        button = viewer.controls.service_button
        pump_until(lambda: button.cget("text") == "Start service", "offline", 10)
        button.invoke()
        assert "Starting the service" in str(viewer.banner.cget("text"))
        # The process ends within a second; the next poll (every second) drops the message.
        pump_until(lambda: "Starting" not in str(viewer.banner.cget("text")), "the message gone", 4)
        assert "not running" in str(viewer.banner.cget("text"))
    finally:
        viewer.close()
