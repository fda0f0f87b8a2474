"""The viewer's result panel: the photo, and its top-5 as bars (the tutorial's window, grown up)."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from tkinter import ttk

from PIL import Image, ImageOps, ImageTk

from dropsight.daemon.api.client import ServiceNotRunning
from dropsight.daemon.contracts import SidecarRecord
from dropsight.daemon.labels.names import display_name
from dropsight.tray import theme
from dropsight.tray.icons import model_title
from dropsight.tray.layout import ellipsize

TOP_K = 5
PHOTO_BOX_PX = (460, 360)
BAR_WIDTH_PX = 240
BAR_HEIGHT_PX = 10


@dataclass
class PredictionRow:
    """The widgets of one of the top-5 lines."""

    label: ttk.Label
    bar: tk.Canvas
    score: ttk.Label


class ResultPanel:
    """Choose a photo, see it, see what the model says about it."""

    def __init__(self, root: tk.Misc, body: ttk.Frame, choose: Callable[[], None]) -> None:
        self.root = root
        self.choose_image = choose
        self._shown_image: Path | None = None
        self._photo: ImageTk.PhotoImage | None = None
        self._full: Image.Image | None = None  # the shown photo at PHOTO_BOX_PX
        self._fitted = (0, 0)
        self._build_photo(body)
        self._build_predictions(body)

    def _build_photo(self, body: ttk.Frame) -> None:
        picker = ttk.Frame(body)
        picker.grid(row=0, column=0, columnspan=2, sticky="ew", pady=(0, 6))
        picker.columnconfigure(1, weight=1)
        self.choose_button = ttk.Button(
            picker, text="Choose image...", command=self.choose_image, name="choose"
        )
        self.choose_button.grid(row=0, column=0)
        self.file_label = ttk.Label(picker, text="No image chosen", name="file")
        self.file_label.grid(row=0, column=1, sticky="w", padx=10)

        photo_frame = self.photo_frame = ttk.Frame(body, relief="solid", borderwidth=1)
        photo_frame.grid(row=1, column=0, sticky="nsew")
        # Shrinks with the window (a 720 px screen); the photo is fitted to it when shown.
        photo_frame.bind("<Configure>", lambda _e: self._refit())
        self.photo_label = ttk.Label(
            photo_frame, anchor="center", text="Choose a photo to classify", name="photo"
        )
        self.photo_label.place(relx=0.5, rely=0.5, anchor="center")
        photo_frame.configure(width=PHOTO_BOX_PX[0], height=PHOTO_BOX_PX[1])
        photo_frame.grid_propagate(False)

    def _build_predictions(self, body: ttk.Frame) -> None:
        preds = ttk.Frame(body, padding=(16, 0, 0, 0), name="predictions")
        preds.grid(row=1, column=1, sticky="nsew")
        ttk.Label(preds, text="Top 5", style="Title.TLabel").grid(
            row=0, column=0, sticky="w", pady=(0, 2)
        )
        self.pred_rows: list[PredictionRow] = []
        for i in range(TOP_K):
            label = ttk.Label(preds, text="", style="Pred.TLabel", name=f"pred{i}_label")
            label.grid(row=1 + 2 * i, column=0, columnspan=2, sticky="w", pady=(4, 0))
            bar = tk.Canvas(
                preds,
                width=BAR_WIDTH_PX,
                height=BAR_HEIGHT_PX,
                highlightthickness=0,
                name=f"pred{i}_bar",
            )
            bar.grid(row=2 + 2 * i, column=0, sticky="w")
            score = ttk.Label(preds, text="", width=7, anchor="e", name=f"pred{i}_score")
            score.grid(row=2 + 2 * i, column=1, sticky="e", padx=(8, 0))
            self.pred_rows.append(PredictionRow(label, bar, score))
        self._colours = theme.palette(self.root)
        self._frame_bg = str(ttk.Style(self.root).lookup("TFrame", "background")) or "#ffffff"
        for row in self.pred_rows:
            row.bar.configure(background=self._frame_bg)
        self.model_label = ttk.Label(preds, text="", name="model", style="Muted.TLabel")
        self.model_label.grid(row=0, column=1, sticky="e", pady=(0, 2))  # beside "Top 5"

    def show_photo(self, path: Path) -> None:
        """Show a photo (or why it cannot be shown)."""
        self._shown_image = path
        self.file_label.configure(text=ellipsize(str(path), "TkDefaultFont", 560, middle=True))
        try:
            with Image.open(path) as img:
                img.draft("RGB", PHOTO_BOX_PX)  # JPEG: decode at reduced size, much faster
                self._full = ImageOps.exif_transpose(img).convert("RGB")
            self._full.thumbnail(PHOTO_BOX_PX, Image.Resampling.LANCZOS)
        except Exception as exc:
            self._photo = self._full = None
            self.photo_label.configure(image="", text=f"Cannot show this file:\n{exc}")
            return
        self._fitted = (0, 0)
        self._refit()

    def _refit(self) -> None:
        """Show the photo as large as its frame is now (at most PHOTO_BOX_PX)."""
        if self._full is None:
            return
        frame = self.photo_frame
        box = (max(frame.winfo_width() - 4, 40), max(frame.winfo_height() - 4, 40))
        if frame.winfo_width() <= 1:  # not laid out yet
            box = PHOTO_BOX_PX
        if box == self._fitted:
            return
        self._fitted = box
        shown = self._full.copy()
        shown.thumbnail(box, Image.Resampling.LANCZOS)
        self._photo = ImageTk.PhotoImage(shown, master=self.root)
        self.photo_label.configure(image=self._photo, text="")

    def clear(self, message: str = "") -> None:
        """Empty the top-5, with an optional message in its first line."""
        for i, row in enumerate(self.pred_rows):
            row.label.configure(text=message if i == 0 else "", style="Pred.TLabel")
            row.score.configure(text="")
            row.bar.delete("all")
            # An empty track only where a score will be drawn; none before the first result.
            row.bar.configure(background=self._frame_bg)
        self.model_label.configure(text="")

    def show_sidecar(self, sidecar: SidecarRecord) -> None:
        """Show a sidecar's top-5 (ignored when it is for a photo no longer shown)."""
        image = sidecar["image"]["path"]
        if image and self._shown_image and Path(image).name != self._shown_image.name:
            return  # an older answer for a photo that is no longer shown
        self.clear()
        if sidecar["status"] != "ok":
            error = sidecar["error"]
            self.show_error((error and error["message"]) or "the image could not be read")
            return
        for row, pred in zip(self.pred_rows, sidecar["predictions"], strict=False):
            score = pred["score"]
            row.label.configure(text=display_name(pred))
            row.score.configure(text=f"{score * 100:.1f}%")
            width = max(2, round(BAR_WIDTH_PX * min(max(score, 0.0), 1.0)))
            colours = self._colours
            colour = colours.accent_top if pred["rank"] == 1 else colours.accent
            row.bar.configure(background=colours.track)
            row.bar.create_rectangle(0, 0, width, BAR_HEIGHT_PX, fill=colour, width=0)
        if sidecar["model"]["name"]:
            self.model_label.configure(text=f"by {model_title(sidecar['model']['name'])}")

    def show_error(self, exc: BaseException | str) -> None:
        """Say why there are no labels."""
        message = str(exc)
        if isinstance(exc, ServiceNotRunning):
            message = "Dropsight is not running"
        self.clear()
        self.pred_rows[0].label.configure(
            text=f"Could not classify: {message}"[:120], style="Error.TLabel"
        )

    def predictions_shown(self) -> list[tuple[str, str]]:
        """The (label, percentage) pairs currently on screen."""
        shown = []
        for row in self.pred_rows:
            label, score = str(row.label.cget("text")), str(row.score.cget("text"))
            if score:
                shown.append((label, score))
        return shown
