"""The viewer's "Recent results" list: the last photos the service labelled, with thumbnails."""

from __future__ import annotations

import datetime as dt
import tkinter as tk
from collections.abc import Callable
from pathlib import Path
from tkinter import ttk
from typing import Any

from PIL import Image, ImageTk

from dropsight.daemon.contracts import RecentResult
from dropsight.daemon.labels.names import friendly
from dropsight.tray import theme
from dropsight.tray.thumbs import thumbnail

THUMB_PX = 44
ROWS = 7
MAX_ENTRIES = 40  # the service's recent results, then the library's latest

Submit = Callable[[str, Callable[[], Any]], bool]  # background work; result comes back by kind
OnSelect = Callable[[Path, Path | None], None]  # a photo and its sidecar


class RecentList:
    """A list of recent results; thumbnails are made off the UI thread as they are needed."""

    def __init__(
        self, parent: tk.Misc, submit: Submit, on_select: OnSelect, rows: int = ROWS // 2
    ) -> None:
        self._submit = submit
        self._on_select = on_select
        self.frame = ttk.LabelFrame(parent, text="Recent results", padding=(8, 4), name="recent")
        self.frame.columnconfigure(0, weight=1)
        self.frame.rowconfigure(0, weight=1)
        self.tree = ttk.Treeview(
            self.frame,
            columns=("result", "score", "time"),
            height=rows,
            style="Recent.Treeview",
            name="recent_tree",
        )
        tree = self.tree
        for column, title in (("#0", "Photo"), ("result", "Result"), ("score", "Score")):
            tree.heading(column, text=title)
        tree.heading("time", text="Time")
        tree.column("#0", width=260, stretch=True)
        tree.column("result", width=260, stretch=True)
        tree.column("score", width=70, anchor="e", stretch=False)
        tree.column("time", width=170, stretch=False)
        tree.grid(row=0, column=0, sticky="nsew")
        scroll = ttk.Scrollbar(self.frame, orient="vertical", command=tree.yview)
        scroll.grid(row=0, column=1, sticky="ns")
        tree.configure(yscrollcommand=scroll.set)
        tree.bind("<<TreeviewSelect>>", self._selected)
        self.placeholder = ImageTk.PhotoImage(
            Image.new("RGB", (THUMB_PX, THUMB_PX), theme.palette(parent).track), master=parent
        )
        self._thumbs: dict[str, ImageTk.PhotoImage] = {}
        self._requested: set[str] = set()
        self._key: tuple[Any, ...] = ()
        self._rows: dict[str, RecentResult] = {}
        self._service: list[RecentResult] = []
        self._library: list[RecentResult] = []

    def set_library(self, latest: list[RecentResult]) -> None:
        """The library index's latest results: shown after the service's own, so the list
        is full at start (the service's list begins empty at each restart)."""
        self._library = latest
        self.update(self._service)

    def update(self, recent: list[RecentResult]) -> None:
        """Show these results (the service's `recent`, newest first), then the library's."""
        self._service = recent
        seen = {e["image"] for e in recent}
        more = [e for e in self._library if e["image"] not in seen]
        entries = [e for e in [*recent, *more] if e["image"]][:MAX_ENTRIES]
        key = tuple((e["image"], e["time"], e["status"]) for e in entries)
        if key == self._key:
            return
        self._key = key
        self.tree.delete(*self.tree.get_children())
        self._rows = {}
        for i, entry in enumerate(entries):
            image = entry["image"]
            iid = f"r{i}"
            self._rows[iid] = entry
            score = entry["score"]
            self.tree.insert(
                "",
                "end",
                iid=iid,
                text="  " + Path(image).name,
                image=self._thumbs.get(image, self.placeholder),
                values=(
                    friendly(entry["label"] or "?")
                    if entry["status"] == "ok"
                    else "could not be read",
                    f"{score * 100:.1f}%" if score is not None else "",
                    local_time(entry["time"]),
                ),
            )
            if image not in self._thumbs and image not in self._requested:
                self._requested.add(image)
                self._submit("thumb", _thumbnail_task(image))

    def set_thumb(self, value: tuple[str, Image.Image | None]) -> None:
        """A thumbnail made in the background arrived."""
        image, thumb = value
        if thumb is None:
            return
        self._thumbs[image] = ImageTk.PhotoImage(thumb, master=self.frame)
        for iid, entry in self._rows.items():
            if entry["image"] == image:
                self.tree.item(iid, image=self._thumbs[image])

    def has_thumb(self, image: Path) -> bool:
        """Whether the thumbnail of this photo is shown."""
        return str(image) in self._thumbs

    def _selected(self, _event: object = None) -> None:
        selected = self.tree.selection()
        entry = self._rows.get(selected[0]) if selected else None
        if entry is None:
            return
        sidecar = entry["sidecar"]
        self._on_select(Path(entry["image"]), Path(sidecar) if sidecar else None)


def local_time(value: object) -> str:
    """An ISO timestamp from the service, shown in local time."""
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value or "")
    if moment.tzinfo is not None:
        moment = moment.astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _thumbnail_task(image: str) -> Callable[[], tuple[str, Image.Image | None]]:
    return lambda: (image, thumbnail(Path(image), THUMB_PX))
