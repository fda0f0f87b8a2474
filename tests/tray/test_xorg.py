"""pystray's xorg icon driven from another thread, docked in a real tray under Xvfb."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from PIL import Image

from dropsight.tray import xorg
from dropsight.tray.icons import icon_for
from tests.tray.x11 import wait_for, window_named, window_tree

pytestmark = pytest.mark.gui


def xorg_pystray(monkeypatch: pytest.MonkeyPatch) -> Any:
    """pystray on its xorg backend (pystray picks its backend at import)."""
    monkeypatch.setenv("PYSTRAY_BACKEND", "xorg")
    for name in [m for m in sys.modules if m == "pystray" or m.startswith("pystray.")]:
        monkeypatch.delitem(sys.modules, name)
    return importlib.import_module("pystray")


def xorg_icon(monkeypatch: pytest.MonkeyPatch, title: str) -> Any:
    """A real pystray icon on the xorg backend, as the tray makes it."""
    pystray = xorg_pystray(monkeypatch)
    icon_class = xorg.icon_class(pystray.Icon)
    return icon_class("dropsight-test", icon=Image.new("RGB", (32, 32), "red"), title=title)


def icon_size(title: str) -> tuple[int, int] | None:
    """The icon window's size as `xwininfo -root -tree` lists it (the issue's repro)."""
    for line in window_tree().splitlines():
        if f'"{title}"' in line and "dropsight-testSystemTrayIcon" in line:
            found = re.search(r"\)\s+(\d+)x(\d+)[+-]", line)
            if found:
                return int(found.group(1)), int(found.group(2))
    return None


def docked(icon: Any) -> bool:
    """Whether the icon window is mapped in a tray (a window other than the root)."""
    import Xlib.display
    import Xlib.X

    display = Xlib.display.Display()
    try:
        window = display.create_resource_object("window", icon._window.id)
        parent = window.query_tree().parent
        mapped = window.get_attributes().map_state != Xlib.X.IsUnmapped
        return bool(mapped and parent.id != display.screen().root.id)
    finally:
        display.close()


@pytest.mark.timeout(120)
def test_the_icon_keeps_its_size_through_twenty_state_changes(
    any_tray: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paused, idle, paused... 20 times: the docked window stays tray-sized (issue 21 item 1).

    pystray re-docked on every image change; trayer then shrank the window to 1x24.
    """
    icon = xorg_icon(monkeypatch, "Dropsight: starting")
    dispatcher = xorg.install(icon)
    assert dispatcher is not None
    states: list[Any] = [{"state": "paused", "queued": 3}, {"state": "idle", "done": 5}]
    sizes: list[tuple[int, int] | None] = []
    failures: list[BaseException] = []

    def setup(icon: Any) -> None:
        try:
            icon.visible = True
            wait_for(lambda: docked(icon), 15, "the icon to dock", window_tree)
            title = "Dropsight: starting"
            wait_for(lambda: (icon_size(title) or (0, 0))[0] >= 16, 10, "a tray-sized slot")
            sizes.append(icon_size(title))
            for change in range(20):
                icon.icon = icon_for(states[change % 2])
                title = f"Dropsight: change {change + 1}"
                icon.title = title
                wait_for(lambda: window_named(title), 10, "the new title")  # noqa: B023
                # No tray says "done re-embedding": give a broken one time to shrink it.
                time.sleep(0.4)
                sizes.append(icon_size(title))
            assert docked(icon), window_tree()
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)
        finally:
            icon.stop()

    try:
        icon.run(setup=setup)
    finally:
        dispatcher.close()
    assert not failures, failures
    first = sizes[0]
    assert first is not None and min(first) >= 16, first
    changed = [(n, size) for n, size in enumerate(sizes) if size != first]
    assert not changed, f"the icon window was {first}, then (change, size): {changed}"


@pytest.mark.timeout(60)  # a lost wake-up hangs for good
def test_other_threads_never_use_the_icons_own_connection(
    display: str, panel: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Show, redraw and retitle from the setup thread: all X I/O stays on the mainloop thread.

    python-xlib loses wake-ups when two threads share a connection; pystray's own dispatcher
    wrote from the caller's thread and hung `icon.visible = True` about once in 60 starts.
    """
    icon = xorg_icon(monkeypatch, "Dropsight: starting")
    protocol = icon._display.display
    io_threads: set[str] = set()
    original = protocol.send_and_recv

    def recording(*args: Any, **kwargs: Any) -> Any:
        io_threads.add(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(protocol, "send_and_recv", recording)
    dispatcher = xorg.install(icon)
    assert dispatcher is not None
    finished = threading.Event()
    failures: list[BaseException] = []

    def setup(icon: Any) -> None:
        try:
            icon.visible = True
            icon.icon = Image.new("RGB", (32, 32), "blue")
            icon.title = "Dropsight: idle, 3 done"
            finished.set()
            wait_for(lambda: window_named("Dropsight: idle, 3 done"), 10, "the new title")
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)
        finally:
            icon.stop()

    try:
        icon.run(setup=setup)
    finally:
        dispatcher.close()
    assert finished.is_set(), "a request from the setup thread never came back"
    assert not failures, failures
    assert io_threads == {threading.current_thread().name}


def test_install_leaves_other_backends_alone() -> None:
    """Only pystray's xorg icons are patched."""

    class OtherIcon:
        pass

    assert xorg.install(OtherIcon()) is None


@pytest.mark.timeout(90)
def test_the_icon_docks_again_in_a_tray_that_restarts(
    display: str, panel: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The panel restarts (a desktop session reloading its panel): the icon docks in the new
    tray manager, which announces itself with a MANAGER message, and only then."""
    from tests.tray.x11 import TRAYER, stop_process, tray_owner

    icon = xorg_icon(monkeypatch, "Dropsight: idle")
    dispatcher = xorg.install(icon)
    assert dispatcher is not None
    failures: list[BaseException] = []
    restarted: list[subprocess.Popen[bytes]] = []

    def setup(icon: Any) -> None:
        try:
            icon.visible = True
            wait_for(lambda: docked(icon), 15, "the icon to dock", window_tree)
            stop_process(panel)
            wait_for(lambda: not tray_owner(), 10, "no tray")
            wait_for(lambda: not docked(icon), 10, "the icon back on the root window")
            for _attempt in range(3):  # trayer (GTK 2) now and then dies while starting
                tray = subprocess.Popen(
                    TRAYER, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                restarted.append(tray)
                deadline = time.monotonic() + 10
                while tray.poll() is None and time.monotonic() < deadline:
                    if tray_owner():  # (X may give the new one the old window's id)
                        break
                    time.sleep(0.1)
                if tray.poll() is None and tray_owner():
                    break
                stop_process(tray)
            else:
                pytest.fail("trayer did not start again in three tries")
            wait_for(lambda: docked(icon), 15, "the icon docked in the new tray", window_tree)
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)
        finally:
            icon.stop()

    try:
        icon.run(setup=setup)
    finally:
        dispatcher.close()
        for tray in restarted:
            stop_process(tray)
    assert not failures, failures
