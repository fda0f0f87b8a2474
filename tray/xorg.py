"""Fixes for pystray's xorg backend (the plain X11 system tray, XEMBED)."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# pystray's xorg Icon runs these in its mainloop thread; other threads ask for them with a
# ClientMessage whose type is the atom _PYSTRAY_<NAME> and wait for the answer on a queue.
_DISPATCHED = ("_show", "_hide", "_update_icon", "_update_title", "_stop")


def is_xorg(icon: Any) -> bool:
    """Whether the icon uses pystray's xorg backend."""
    return type(icon).__module__ == "pystray._xorg"


class Dispatcher:
    """Sends pystray's cross-thread requests over a connection of our own.

    pystray's own dispatcher writes the ClientMessage on the mainloop's Display from the
    calling thread. python-xlib's threaded I/O can then lose a wake-up: the mainloop waits
    for a reply that no thread reads while the caller waits for the mainloop, forever (seen
    here about once in 60 starts: `icon.visible = True` never returned, so the tray never
    polled or started the service). With a second connection only the mainloop thread uses
    the icon's Display; the X server routes our message to the window's owner, which is
    pystray's connection, since it is sent with an empty event mask.
    """

    def __init__(self, icon: Any, mainloop_ident: int) -> None:
        import Xlib.display

        self._icon = icon
        self._mainloop_ident = mainloop_ident
        self._lock = threading.Lock()  # one request in flight: answers share one queue
        self._display = Xlib.display.Display()
        for name in _DISPATCHED:
            atom = self._display.intern_atom(f"_PYSTRAY_{name.upper()}")
            setattr(icon, name, self._dispatch(getattr(icon, name), atom))

    def _dispatch(self, pystrays: Callable[[], None], atom: int) -> Callable[[], None]:
        @functools.wraps(pystrays)
        def call() -> None:
            if threading.get_ident() == self._mainloop_ident:
                pystrays()  # pystray runs it in place on its own thread
                return
            with self._lock:
                self._send(atom)
                result = self._icon._queue.get()
            if result is not True:
                raise result[1].with_traceback(result[2])

        return call

    def _send(self, atom: int) -> None:
        import Xlib.X
        from Xlib.protocol import event

        window = self._display.create_resource_object("window", self._icon._window.id)
        message = event.ClientMessage(
            type=Xlib.X.ClientMessage,
            client_type=atom,
            window=window.id,
            data=(32, (Xlib.X.CurrentTime, 0, 0, 0, 0)),
        )
        self._display.send_event(window, message, event_mask=Xlib.X.NoEventMask)
        self._display.flush()

    def close(self) -> None:
        """Close our connection (after the icon's loop has ended)."""
        self._display.close()


def install(icon: Any) -> Dispatcher | None:
    """Make an xorg icon safe to drive from other threads and clickable; call before run().

    The caller's thread must be the one that then calls icon.run().
    """
    if not is_xorg(icon):
        return None
    enable_clicks(icon)
    try:
        return Dispatcher(icon, threading.get_ident())
    except Exception:
        log.exception("could not open a second X connection; using pystray's dispatcher")
        return None


def enable_clicks(icon: Any) -> None:
    """Let the xorg icon window receive clicks (pystray 0.19 never asks for them).

    Its window selects only Exposure and StructureNotify events, so ButtonPress never
    arrives and the default action (our viewer) cannot run (pystray #151).
    """
    try:
        import Xlib.X

        icon._window.change_attributes(
            event_mask=Xlib.X.ExposureMask | Xlib.X.StructureNotifyMask | Xlib.X.ButtonPressMask
        )
        icon._display.flush()
    except Exception:
        log.exception("could not enable clicks on the xorg tray icon")
