"""pystray's xorg icon driven from another thread, docked in a real tray under Xvfb."""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
from typing import Any

import pytest
from PIL import Image

from dropsight.tray import xorg
from tests.tray.x11 import wait_for, window_named

pytestmark = pytest.mark.gui


def xorg_icon(monkeypatch: pytest.MonkeyPatch, title: str) -> Any:
    """A real pystray icon on the xorg backend (pystray picks its backend at import)."""
    monkeypatch.setenv("PYSTRAY_BACKEND", "xorg")
    for name in [m for m in sys.modules if m == "pystray" or m.startswith("pystray.")]:
        monkeypatch.delitem(sys.modules, name)
    pystray = importlib.import_module("pystray")
    return pystray.Icon("dropsight-test", icon=Image.new("RGB", (32, 32), "red"), title=title)


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
