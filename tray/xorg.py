"""Fixes for pystray's xorg backend (the plain X11 system tray, XEMBED)."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

from PIL import Image

log = logging.getLogger(__name__)

# pystray's xorg Icon runs these in its mainloop thread; other threads ask for them with a
# ClientMessage whose type is the atom _PYSTRAY_<NAME> and wait for the answer on a queue.
_DISPATCHED = ("_show", "_hide", "_update_icon", "_update_title", "_stop")


# The tray's slot before the tray sizes the window; trays that do not resize keep it.
SLOT_PX = 24
# Pixels at least this opaque are drawn; the others show the panel (a 1-bit shape mask).
_OPAQUE = 128


def is_xorg(icon: Any) -> bool:
    """Whether the icon uses pystray's xorg backend."""
    return any(cls.__module__ == "pystray._xorg" for cls in type(icon).__mro__)


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
        """Close our connection (after the icon's loop has ended).

        A stop() from another thread may still be inside its send when the loop ends (the
        loop exits as soon as it has destroyed the window): wait for it, within reason.
        """
        locked = self._lock.acquire(timeout=5)
        try:
            self._display.close()
        finally:
            if locked:
                self._lock.release()


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


def icon_class(pystray_icon: type[Any]) -> type[Any]:
    """pystray's Icon, or on its xorg backend one that docks once and keeps its window.

    pystray 0.19's xorg Icon sends SYSTEM_TRAY_REQUEST_DOCK again on every image change. Trays
    then re-embed a window they already hold: trayer's GtkSocket logs GTK_IS_WIDGET criticals
    and after a few changes leaves the window 1x24 pixels, a sliver nobody can see or click
    (issue 21). The subclass docks when there is a new tray manager (at show, when the
    manager window is destroyed, when a new one announces itself with MANAGER) and otherwise
    only repaints: the image goes into a pixmap that is the window's background, and a shape
    mask from its alpha lets the panel show around the round icon.
    """
    if pystray_icon.__module__ != "pystray._xorg":
        return pystray_icon
    return _docked_class(pystray_icon)


def _docked_class(base: type[Any]) -> type[Any]:
    import Xlib.error
    import Xlib.X
    import Xlib.Xutil

    class DockedIcon(base):  # pystray has no types: base is Any
        """An xorg tray icon that docks once per tray manager and keeps its window."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._pixmap: Any = None
            self._icon_data: Image.Image | None = None
            self._docked_to: int | None = None  # the manager window id we asked to dock in
            super().__init__(*args, **kwargs)
            self._manager_atom = self._display.intern_atom("MANAGER")
            self._shape = self._display.has_extension("SHAPE")
            root = self._display.screen().root
            # A tray that starts (or restarts) later announces itself on the root window.
            root.change_attributes(event_mask=Xlib.X.StructureNotifyMask)
            handle_message = self._message_handlers[Xlib.X.ClientMessage]

            def on_client_message(event: Any) -> None:
                if event.client_type == self._manager_atom:
                    if event.data[1][1] == self._net_system_tray_sx:
                        self._redock()
                    return
                handle_message(event)

            self._message_handlers[Xlib.X.ClientMessage] = on_client_message

        def _create_window(self) -> Any:
            window = super()._create_window()
            # Tray-sized from the start, with hints that say so: a tray that reads them on
            # embedding gives a square slot, never the 1x1 the window was created with.
            window.configure(width=SLOT_PX, height=SLOT_PX)
            window.set_wm_normal_hints(
                flags=Xlib.Xutil.PSize | Xlib.Xutil.PMinSize | Xlib.Xutil.PBaseSize,
                width=SLOT_PX,
                height=SLOT_PX,
                min_width=SLOT_PX,
                min_height=SLOT_PX,
                base_width=SLOT_PX,
                base_height=SLOT_PX,
            )
            return window

        def _assert_docked(self) -> None:
            manager = self._get_systray_manager()
            if manager is None:
                self._systray_manager = None
                self._docked_to = None
                raise AssertionError("no system tray owns the selection")
            if manager.id != self._docked_to:
                self._dock_window()
                self._docked_to = manager.id
            assert self._systray_manager

        def _redock(self) -> None:
            self._docked_to = None
            try:
                self._assert_docked()
            except AssertionError:
                log.info("no system tray to dock in (yet)")

        def _on_destroy_notify(self, event: Any) -> None:
            manager = self._systray_manager
            if manager is None or event.window.id != manager.id:
                return
            self._systray_manager = None
            self._redock()

        def _update_icon(self) -> None:
            if self._systray_manager is None:
                self._redock()
            self._icon_data = None
            self._draw()
            self._icon_valid = True

        def _assert_icon_data(self, width: int, height: int) -> None:
            if self._icon_data is not None and self._icon_data.size == (width, height):
                return
            # Square and centred: a tray slot of 24x26 must not stretch the round icon.
            side = min(width, height)
            square = self._icon.convert("RGBA").resize((side, side), Image.Resampling.LANCZOS)
            image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
            image.paste(square, ((width - side) // 2, (height - side) // 2))
            self._icon_data = image

        def _draw(self) -> None:
            try:
                geometry = self._window.get_geometry()
                width, height = max(geometry.width, 1), max(geometry.height, 1)
                self._assert_icon_data(width, height)
                image = self._icon_data
                assert image is not None
                pixmap = self._window.create_pixmap(width, height, geometry.depth)
                pixmap.put_pil_image(self._gc, 0, 0, image.convert("RGB"))
                self._window.change_attributes(background_pixmap=pixmap)
                if self._pixmap is not None:
                    self._pixmap.free()
                self._pixmap = pixmap
                if self._shape:
                    self._set_shape(image, width, height)
                self._window.clear_area(0, 0, 0, 0)
                self._display.flush()
            except (Xlib.error.BadDrawable, Xlib.error.BadWindow):
                pass  # the window has been destroyed

        def _set_shape(self, image: Image.Image, width: int, height: int) -> None:
            from Xlib.ext import shape

            mask = image.getchannel("A").point(lambda a: 255 if a >= _OPAQUE else 0).convert("1")
            bitmap = self._window.create_pixmap(width, height, 1)
            gc = bitmap.create_gc(foreground=1, background=0)
            bitmap.put_pil_image(gc, 0, 0, mask)
            self._window.shape_mask(shape.SO.Set, shape.SK.Bounding, 0, 0, bitmap)
            gc.free()
            bitmap.free()

    return DockedIcon
