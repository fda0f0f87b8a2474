"""The viewer's status line: state icon, summary, pause and rescan, and the banner below."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from PIL import Image, ImageTk

from dropsight.daemon.contracts import Status
from dropsight.daemon.service import startfail
from dropsight.tray.attention import ConfigCheck, config_path, reason_first, window_wording
from dropsight.tray.icons import (
    fetch_text,
    fetching,
    icon_for,
    is_fallback,
    model_of,
    model_title,
    progress,
    summary,
    visual_state,
)

BANNER_WRAP_PX = 720
ICON_PX = 22


class StatusHeader:
    """Says what the service does; the banner says what needs attention (or what just happened)."""

    def __init__(
        self, root: tk.Misc, on_pause: Callable[[], None], on_rescan: Callable[[], None]
    ) -> None:
        self.root = root
        self.frame = ttk.Frame(root, padding=(12, 10, 12, 4), name="header")
        self.frame.columnconfigure(1, weight=1)
        self._state_icon = ttk.Label(self.frame)
        self._state_icon.grid(row=0, column=0, padx=(0, 8))
        self._state_icon_image: ImageTk.PhotoImage | None = None
        self.status_label = ttk.Label(
            self.frame, text="Connecting to Dropsight\u2026", style="Status.TLabel", name="status"
        )
        self.status_label.grid(row=0, column=1, sticky="w")
        self.pause_button = ttk.Button(
            self.frame, text="Pause", command=on_pause, name="pause", width=9
        )
        self.pause_button.grid(row=0, column=2, padx=4)
        self.rescan_button = ttk.Button(
            self.frame, text="Rescan now", command=on_rescan, name="rescan"
        )
        self.rescan_button.grid(row=0, column=3)
        # The work in hand (a burst of photos, a model download) as a bar under the line.
        self.progress = ttk.Progressbar(
            self.frame, mode="determinate", maximum=1.0, name="progress"
        )
        self.progress.grid(row=1, column=0, columnspan=4, sticky="ew", pady=(6, 0))
        self.progress.grid_remove()
        # Wrapped, so a long message (a config error) never widens the window.
        self.banner = ttk.Label(root, style="Warn.TLabel", name="banner", wraplength=BANNER_WRAP_PX)

    def show(self, status: Status | None) -> None:
        """The status line, its icon and which buttons work."""
        text = summary(status)
        if visual_state(status) == "working":
            text = f"Working: {text}"
        model = model_of(status)
        if model and model.get("name"):
            text += f"  \u00b7  {model_title(model['name'])}"
        self.status_label.configure(text=text[:1].upper() + text[1:])
        icon = icon_for(status).resize((ICON_PX, ICON_PX), Image.Resampling.LANCZOS)
        self._state_icon_image = ImageTk.PhotoImage(icon, master=self.root)
        self._state_icon.configure(image=self._state_icon_image)
        connected = status is not None
        paused = visual_state(status) == "paused"
        self.pause_button.configure(
            text="Resume" if paused else "Pause", state="normal" if connected else "disabled"
        )
        self.rescan_button.configure(state="normal" if connected else "disabled")
        fraction = progress_fraction(status)
        if fraction is None:
            self.progress.grid_remove()
        else:
            self.progress.configure(value=fraction)
            self.progress.grid()

    def show_banner(self, text: str | None) -> None:
        """Show a line under the controls (None: hide it)."""
        if text is None:
            self.banner.grid_remove()
            return
        self.banner.configure(text=text)
        self.banner.grid()


def progress_fraction(status: Status | None) -> float | None:
    """How far the current work is (0..1): a model download, else the photos; None: none."""
    fetch = fetching(status)
    if fetch:
        total = int(fetch.get("total_bytes") or 0)
        return min(int(fetch.get("done_bytes") or 0) / total, 1.0) if total else None
    counts = progress(status) if visual_state(status) == "working" else None
    return counts[0] / counts[1] if counts else None


def banner_for(
    status: Status | None, config_problem: str | None = None, config: ConfigCheck | None = None
) -> str | None:
    """What needs attention: no service, a config not applied, a model download, a stand-in
    model; else None."""
    if status is None:
        failure = startfail.read()
        if failure and config is not None and config.fixed(failure.message, config_path(None)):
            return "Dropsight is not running. The config file is fixed: click Start service."
        return (
            f"The service could not start: {window_wording(failure.message)}"
            if failure
            else "Dropsight is not running: click Start service to start it."
        )
    if config_problem:
        return (
            f"The config file was changed but cannot be applied: {reason_first(config_problem)}. "
            f"The service keeps its previous settings. Fix {config_path(status)} and save it."
        )
    model = model_of(status)
    fetch = fetching(status)
    if fetch:
        return fetch_text(fetch)
    if model and is_fallback(status) and model.get("missing"):
        last = model.get("fetch")
        failed = (
            f" The last try failed: {window_wording(last['error'] or '')}"
            if last and last["stage"] == "failed"
            else ""
        )
        return (
            f"Labelling with {model_title(model.get('name'))} until "
            f"{model_title(model.get('requested'))} is downloaded." + failed
        )
    if model and is_fallback(status):
        return (
            f"Using the fallback model {model.get('name', '?')}: "
            f"{model.get('requested', '?')} could not be loaded (see the log)."
        )
    return None
