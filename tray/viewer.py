"""The viewer window (Tkinter): pick a photo, see it and its top-5; recent results; controls."""

from __future__ import annotations

import argparse
import logging
import queue
import signal
import sys
import time
import tkinter as tk
from collections.abc import Callable
from pathlib import Path
from tkinter import filedialog, ttk
from types import TracebackType
from typing import Any

from dropsight.config.settings import WatchSettings
from dropsight.daemon.api.client import ServiceClient, ServiceError
from dropsight.daemon.api.wire import read_sidecar
from dropsight.daemon.contracts import ExitCode, RecentResult, Status
from dropsight.daemon.outputs.index import library
from dropsight.tray import logsetup, theme
from dropsight.tray.attention import ConfigCheck, config_not_applied, config_path, with_problem
from dropsight.tray.controls import Actions, ControlBar, Done
from dropsight.tray.header import StatusHeader, banner_for
from dropsight.tray.icons import visual_state
from dropsight.tray.layout import fit_window
from dropsight.tray.recent import MAX_ENTRIES, RecentList
from dropsight.tray.recent import THUMB_PX as RECENT_THUMB_PX
from dropsight.tray.result_panel import ResultPanel
from dropsight.tray.worker import Worker

log = logging.getLogger(__name__)

WINDOW_PX = (920, 860)  # wanted; fit_window keeps it on smaller screens
MIN_WINDOW_PX = (680, 500)
STATUS_POLL_MS = 1000
RESULT_POLL_MS = 50
MESSAGE_HOLD_S = 6.0
# An action's message ("Starting the service...") goes when its outcome shows; at the latest:
ACTION_HOLD_S = 30.0


class Viewer:
    """The window's widgets and behaviour; talks to the service only through the client."""

    def __init__(
        self,
        root: tk.Tk,
        connect: Callable[[], ServiceClient] = ServiceClient.connect,
        choose_file: Callable[[], str | None] | None = None,
        actions: Actions | None = None,
    ) -> None:
        self.root = root
        self.actions = actions or Actions(lambda: self._status, self._stop_service, self._get_model)
        self._message: tuple[str, float, Done | None] = ("", 0.0, None)
        self._config = ConfigCheck()
        self._raise_requested = False
        self._connect = connect
        self._choose_file = choose_file or self._ask_file
        self._client: ServiceClient | None = None
        self._status: Status | None = None
        self._results: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._worker = Worker(self._results, name="dropsight-viewer")
        self._status_pending = False
        self._closed = False
        self._after_ids: list[str] = []
        self._build()
        root.protocol("WM_DELETE_WINDOW", self.close)
        self._schedule(0, self._poll_status)
        self._worker.submit("library", latest_in_library)
        self._schedule(RESULT_POLL_MS, self._drain_results)

    # --- layout -------------------------------------------------------------------------------

    def _build(self) -> None:
        root = self.root
        root.title("Dropsight")
        fit_window(root, WINDOW_PX, MIN_WINDOW_PX)
        self._build_style()
        root.columnconfigure(0, weight=1)
        # The photo takes what the screen leaves (720 px screens too); the recent list keeps
        # its rows (more of them on a taller screen).
        root.rowconfigure(3, weight=1)
        self.header = StatusHeader(root, self.toggle_pause, self.rescan)
        self.header.frame.grid(row=0, column=0, sticky="ew")
        # Read by tests and accessibility tools.
        self.status_label, self.banner = self.header.status_label, self.header.banner
        self.pause_button, self.rescan_button = self.header.pause_button, self.header.rescan_button
        self.controls = ControlBar(root, self.actions, on_message=self.say, on_quit=self.close)
        self.controls.frame.grid(row=1, column=0, sticky="ew")
        self.banner.grid(row=2, column=0, sticky="ew", padx=12)
        self.banner.grid_remove()
        body = ttk.Frame(root, padding=(12, 6), name="body")
        body.grid(row=3, column=0, sticky="nsew")
        body.columnconfigure(0, weight=1)
        body.rowconfigure(1, weight=1)
        self.panel = ResultPanel(self.root, body, self.choose_image)
        # Read by tests and accessibility tools.
        self.choose_button, self.file_label = self.panel.choose_button, self.panel.file_label
        self.photo_label = self.panel.photo_label
        self._build_recent()

    def _build_style(self) -> None:
        colours = theme.ensure(self.root)
        style = ttk.Style(self.root)
        style.configure("Status.TLabel", font=("TkDefaultFont", 11, "bold"))
        style.configure("Title.TLabel", font=("TkDefaultFont", 12, "bold"))
        style.configure("Pred.TLabel", font=("TkDefaultFont", 11))
        style.configure(
            "Warn.TLabel",
            background=colours.warn_bg,
            foreground=colours.warn_fg,
            padding=(10, 6),
        )
        style.configure("Error.TLabel", foreground=colours.error)
        style.configure("Muted.TLabel", foreground=colours.muted)
        style.configure("Recent.Treeview", rowheight=RECENT_THUMB_PX + 8)

    def _build_recent(self) -> None:
        rows = 3 if self.root.winfo_screenheight() < 900 else 5
        self.recent = RecentList(self.root, self._worker.submit, self.show_result, rows)
        self.recent.frame.grid(row=4, column=0, sticky="nsew", padx=12, pady=(6, 12))
        self.recent_tree = self.recent.tree  # read by tests and accessibility tools

    # --- scheduling ---------------------------------------------------------------------------

    def _schedule(self, delay_ms: int, callback: Callable[[], None]) -> None:
        if not self._closed:
            self._after_ids.append(self.root.after(delay_ms, callback))
            # Keep the list short: ids of callbacks that already ran are harmless to cancel.
            del self._after_ids[:-8]

    def _drain_results(self) -> None:
        if self._raise_requested:
            self._raise_requested = False
            self.root.deiconify()
            self.root.lift()
            self.root.focus_force()
        while True:
            try:
                kind, value = self._results.get_nowait()
            except queue.Empty:
                break
            try:
                self._handle_result(kind, value)
            except Exception:
                log.exception("viewer could not show a %s result", kind)
        self._schedule(RESULT_POLL_MS, self._drain_results)

    def _handle_result(self, kind: str, value: Any) -> None:
        handlers: dict[str, Callable[[Any], None]] = {
            "status": self._show_status,
            "status!": lambda _exc: self._show_status(None),
            "classify": self.panel.show_sidecar,
            "classify!": self.panel.show_error,
            "sidecar": self.panel.show_sidecar,
            "sidecar!": self.panel.show_error,
            "thumb": self.recent.set_thumb,
            "library": self.recent.set_library,
            "command": lambda _none: self._poll_status(),
            "command!": self._show_command_error,
        }
        handler = handlers.get(kind)
        if handler is not None:
            handler(value)

    # --- status -------------------------------------------------------------------------------

    def _poll_status(self) -> None:
        if not self._status_pending:
            self._status_pending = self._worker.submit("status", self._fetch_status)
        self._schedule(STATUS_POLL_MS, self._poll_status)

    def _fetch_status(self) -> Status | None:
        try:
            if self._client is None:
                self._client = self._connect()
            return self._client.status()
        except ServiceError:
            self._client = None
            return None

    def _show_status(self, status: Status | None) -> None:
        self._status_pending = False
        self._status = status
        problem = self._config.problem(config_path(status)) if status is not None else None
        shown = with_problem(status, config_not_applied(problem)) if status and problem else status
        self.header.show(shown)
        self.choose_button.configure(state="normal" if status is not None else "disabled")
        self.controls.show(status)
        text, until, done = self._message
        held = text and time.monotonic() < until and not (done and done(status))
        if not held:
            self._message = ("", 0.0, None)
        self.header.show_banner(text if held else banner_for(status, problem, self._config))
        self.recent.update(status["recent"] if status else [])

    def say(self, text: str, done: Done | None = None) -> None:
        """Show a short message (what a button just did) for a few seconds, or until a
        status satisfies `done` (the outcome is on screen: no stale "Starting...")."""
        hold = MESSAGE_HOLD_S if done is None else ACTION_HOLD_S
        self._message = (text, time.monotonic() + hold, done)
        self.header.show_banner(text)

    def _get_model(self, name: str) -> None:
        client = self._client
        if client is not None:
            self._worker.submit("command", lambda: client.get_model(name))

    def _stop_service(self) -> None:
        client = self._client
        if client is not None:
            self._worker.submit("command", client.stop)

    def request_raise(self) -> None:
        """Bring the window to the front at the next chance (safe from a signal handler)."""
        self._raise_requested = True

    # --- commands -----------------------------------------------------------------------------

    def toggle_pause(self) -> None:
        """Pause or resume the service."""
        name = "resume" if visual_state(self._status) == "paused" else "pause"
        self._command(name)

    def rescan(self) -> None:
        """Ask the service to rescan its folders."""
        self._command("rescan")

    def _command(self, name: str) -> None:
        client = self._client
        if client is None:
            return
        self._worker.submit("command", getattr(client, name))

    def _show_command_error(self, exc: BaseException) -> None:
        self.status_label.configure(text=f"Command failed: {exc}")

    # --- classifying --------------------------------------------------------------------------

    def _ask_file(self) -> str | None:
        folders = self.actions.folders()
        chosen = filedialog.askopenfilename(
            parent=self.root,
            title="Choose an image",
            initialdir=str(folders[0]) if folders else None,
            filetypes=[("Photos", image_patterns()), ("All files", "*")],
        )
        return chosen or None

    def choose_image(self) -> None:
        """Ask for a photo, show it and classify it through the service."""
        chosen = self._choose_file()
        if chosen:
            self.classify(Path(chosen))

    def classify(self, path: Path) -> None:
        """Show `path` and ask the service for its top-5."""
        self.panel.show_photo(path)
        self.panel.clear("Classifying\u2026")
        client = self._client
        if client is None:
            try:
                client = self._client = self._connect()
            except ServiceError as exc:
                self.panel.show_error(exc)
                return
        self._worker.submit("classify", lambda: client.classify(path))

    def show_result(self, image: Path, sidecar: Path | None) -> None:
        """Show a photo with the predictions its sidecar already holds (no new work)."""
        if sidecar is None:
            self.classify(image)
            return
        self.panel.show_photo(image)
        self.panel.clear("Reading the result\u2026")
        self._worker.submit("sidecar", lambda: read_sidecar(sidecar))

    def predictions_shown(self) -> list[tuple[str, str]]:
        """The (label, percentage) pairs currently on screen."""
        return self.panel.predictions_shown()

    # --- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the worker and destroy the window."""
        if self._closed:
            return
        self._closed = True
        if self.controls.search is not None:
            self.controls.search.close()
        for after_id in self._after_ids:
            self.root.after_cancel(after_id)
        self._worker.stop()
        self.root.destroy()


def latest_in_library() -> list[RecentResult]:
    """The library index's latest results (none when there is no index yet)."""
    if not library.default_path().exists():
        return []
    with library.Index() as index:
        return index.latest(MAX_ENTRIES)


def image_patterns(platform: str = sys.platform) -> str:
    """The file dialog's filter for the photos Dropsight reads, in either case.

    Tk's own dialog (Linux) matches case-sensitively, so "*.jpg" hid camera files named
    DSC_0001.JPG; there each pattern is written case-free ("*.[jJ][pP][gG]"). The native
    dialogs of Windows and macOS ignore case already and take plain patterns.
    """
    extensions = sorted(WatchSettings().extensions)
    if platform in ("win32", "darwin"):
        return " ".join(f"*.{ext}" for ext in extensions)
    return " ".join(
        "*." + "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in ext)
        for ext in extensions
    )


def _report_callback_exception(
    exc: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    # Tk's default prints to stderr, which frozen windowed builds do not have.
    log.error("viewer callback failed", exc_info=(exc, value, tb))


def main(argv: list[str] | None = None) -> int:
    """Open the viewer window; returns when it is closed."""
    parser = argparse.ArgumentParser(prog="dropsight tray --viewer")
    parser.add_argument("--choose", action="store_true", help="ask for an image at once")
    parser.add_argument("--search", action="store_true", help="open the find-photos window")
    parser.add_argument("--image", type=Path, help="show this photo")
    parser.add_argument("--sidecar", type=Path, help="with --image: its existing result")
    args = parser.parse_args(argv)
    logsetup.setup("viewer")
    try:
        root = tk.Tk(className="Dropsight")
    except tk.TclError as exc:
        log.error("cannot open the viewer window: %s", exc)
        return ExitCode.FAILED
    root.report_callback_exception = _report_callback_exception
    viewer = Viewer(root)
    if hasattr(signal, "SIGUSR1"):  # the tray asks an open viewer to come forward
        signal.signal(signal.SIGUSR1, lambda *_: viewer.request_raise())
    if args.image:
        root.after(300, lambda: viewer.show_result(args.image, args.sidecar))
    elif args.choose:
        root.after(300, viewer.choose_image)
    elif args.search:
        root.after(300, viewer.controls.open_search)
    root.mainloop()
    viewer.close()
    return ExitCode.OK
