"""The viewer's "Find photos" window: search box, category chips, thumbnail grid, details."""

from __future__ import annotations

import logging
import queue
import tkinter as tk
from collections.abc import Callable
from pathlib import Path
from tkinter import ttk
from typing import Any

from PIL import Image, ImageTk

from dropsight.daemon.api.wire import read_sidecar
from dropsight.daemon.labels import query
from dropsight.daemon.labels.classes import categories, info
from dropsight.daemon.labels.names import display_name
from dropsight.daemon.outputs.index.library import Hit, Index
from dropsight.tray import desktop
from dropsight.tray.thumbs import thumbnail
from dropsight.tray.worker import Worker, is_open

log = logging.getLogger(__name__)

COLUMNS, ROWS = 4, 3
PAGE = COLUMNS * ROWS
THUMB_PX = 120
DETAIL_PX = 280
CHIPS = 10
POLL_MS = 50


class SearchWindow:
    """Search the library index (works whether or not the service runs)."""

    def __init__(self, parent: tk.Misc, index_path: Path | None = None) -> None:
        self._index_path = index_path
        self.window = tk.Toplevel(parent, name="search")
        self.window.title("Dropsight: find photos")
        self.window.minsize(900, 600)
        self._results: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._worker = Worker(self._results, name="search-worker", backlog=1000)
        self._thumbs: dict[str, ImageTk.PhotoImage] = {}
        self._hits: list[Hit] = []
        self._page = 0
        self._query: list[str] = []
        self._note = ""  # what was searched, or why nothing was found
        self.selected: Hit | None = None
        self._detail_photo: ImageTk.PhotoImage | None = None
        self._build()
        self.window.protocol("WM_DELETE_WINDOW", self.close)
        self._after = self.window.after(POLL_MS, self._drain)
        self._submit("counts", self._count_categories)

    # --- layout --------------------------------------------------------------------------

    def _build(self) -> None:
        w = self.window
        w.columnconfigure(0, weight=1)
        w.rowconfigure(2, weight=1)
        bar = ttk.Frame(w, padding=(12, 12, 12, 4))
        bar.grid(row=0, column=0, columnspan=2, sticky="ew")
        bar.columnconfigure(0, weight=1)
        self.entry = ttk.Entry(bar, name="query", font=("TkDefaultFont", 12))
        self.entry.grid(row=0, column=0, sticky="ew")
        self.entry.bind("<Return>", lambda _e: self.search())
        self.search_button = ttk.Button(bar, text="Search", command=self.search, name="go")
        self.search_button.grid(row=0, column=1, padx=(6, 0))
        self.chips = ttk.Frame(w, padding=(12, 0, 12, 6), name="chips")
        self.chips.grid(row=1, column=0, columnspan=2, sticky="ew")
        self.grid = ttk.Frame(w, padding=(12, 0), name="grid")
        self.grid.grid(row=2, column=0, sticky="nsew")
        self.cells: list[ttk.Button] = []
        for i in range(PAGE):
            cell = ttk.Button(self.grid, compound="top", width=16, command=self._selector(i))
            cell.grid(row=i // COLUMNS, column=i % COLUMNS, padx=3, pady=3, sticky="n")
            self.cells.append(cell)
        nav = ttk.Frame(w, padding=(12, 4, 12, 12))
        nav.grid(row=3, column=0, sticky="ew")
        nav.columnconfigure(1, weight=1)
        self.prev_button = ttk.Button(nav, text="\u2190 Previous", command=self.previous)
        self.prev_button.grid(row=0, column=0)
        self.summary = ttk.Label(nav, text="Type what to look for: dog, beach, car\u2026")
        self.summary.grid(row=0, column=1)
        self.next_button = ttk.Button(nav, text="Next \u2192", command=self.next)
        self.next_button.grid(row=0, column=2)
        self._build_details()
        self._show_page()

    def _build_details(self) -> None:
        side = ttk.Frame(self.window, padding=(0, 0, 12, 0), name="details")
        side.grid(row=2, column=1, rowspan=2, sticky="nsew")
        self.detail_image = ttk.Label(side, name="photo")
        self.detail_image.grid(row=0, column=0, columnspan=2, sticky="w")
        self.detail_title = ttk.Label(side, font=("TkDefaultFont", 12, "bold"), name="title")
        self.detail_title.grid(row=1, column=0, columnspan=2, sticky="w", pady=(8, 2))
        self.detail_text = ttk.Label(side, wraplength=DETAIL_PX, justify="left", name="text")
        self.detail_text.grid(row=2, column=0, columnspan=2, sticky="w")
        self.open_photo = ttk.Button(side, text="Open photo", command=self._open_photo)
        self.open_folder = ttk.Button(side, text="Open folder", command=self._open_folder)
        self.open_photo.grid(row=3, column=0, sticky="w", pady=(8, 0))
        self.open_folder.grid(row=3, column=1, sticky="w", pady=(8, 0))
        for button in (self.open_photo, self.open_folder):
            button.state(["disabled"])

    def _selector(self, cell: int) -> Callable[[], None]:
        return lambda: self.select(cell)

    # --- searching -----------------------------------------------------------------------

    def search(self, text: str | None = None) -> None:
        """Search for the words in the box (or `text`)."""
        if text is not None:
            self.entry.delete(0, "end")
            self.entry.insert(0, text)
        words = self.entry.get().split()
        if not words:
            return
        self._query = words
        self.summary.configure(text="Searching\u2026")
        self._submit("hits", lambda: self._with_index(lambda ix: _find(ix, words)))

    def _show_hits(self, found: tuple[list[Hit], str]) -> None:
        (self._hits, self._note), self._page = found, 0
        self._show_page()

    def _show_page(self) -> None:
        page = self._hits[self._page * PAGE : (self._page + 1) * PAGE]
        for i, cell in enumerate(self.cells):
            if i < len(page):
                hit = page[i]
                image = self._thumbs.get(str(hit.path), "")
                cell.configure(text=f"{hit.name}\n{hit.score * 100:.0f}%", image=image)
                cell.grid()
                if not image:
                    self._submit("thumb", _thumb_task(hit.path))
            else:
                cell.grid_remove()
        pages = max(1, -(-len(self._hits) // PAGE))
        if self._query:
            found = f"{len(self._hits)} photos of \u201c{' '.join(self._query)}\u201d"
            note = f" \u00b7 {self._note}" if self._note else ""
            self.summary.configure(text=f"{found} \u00b7 page {self._page + 1} of {pages}{note}")
        self.prev_button.state(["!disabled" if self._page > 0 else "disabled"])
        self.next_button.state(["!disabled" if self._page + 1 < pages else "disabled"])

    def next(self) -> None:
        """The next page of results."""
        if (self._page + 1) * PAGE < len(self._hits):
            self._page += 1
            self._show_page()

    def previous(self) -> None:
        """The previous page of results."""
        if self._page > 0:
            self._page -= 1
            self._show_page()

    def select(self, cell: int) -> None:
        """Show one result: the photo, its top-5 and what the class is."""
        index = self._page * PAGE + cell
        if index >= len(self._hits):
            return
        hit = self.selected = self._hits[index]
        cls = info(hit.class_index)
        self.detail_title.configure(text=f"{hit.path.name}")
        lines = [f"{cls.name}: {cls.definition}", ""]
        try:
            for p in read_sidecar(hit.sidecar)["predictions"]:
                lines.append(f"{p['score'] * 100:5.1f}%  {display_name(p)}")
        except (OSError, ValueError) as exc:
            lines.append(f"(the sidecar cannot be read: {exc})")
        self.detail_text.configure(text="\n".join(lines))
        for button in (self.open_photo, self.open_folder):
            button.state(["!disabled"])
        self._submit("detail", lambda: (hit.path, thumbnail(hit.path, DETAIL_PX)))

    def _open_photo(self) -> None:
        if self.selected is not None:
            self._open(self.selected.path)

    def _open_folder(self) -> None:
        if self.selected is not None:
            self._open(self.selected.path.parent)

    def _open(self, path: Path) -> None:
        try:
            desktop.open_path(path)
        except desktop.OpenFailed as exc:
            self.summary.configure(text=str(exc))

    # --- chips ---------------------------------------------------------------------------

    def _count_categories(self) -> dict[str, int]:
        return self._with_index(lambda ix: ix.category_counts())

    def _show_chips(self, counts: dict[str, int]) -> None:
        for child in self.chips.winfo_children():
            child.destroy()
        cats = categories()
        best = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:CHIPS]
        for column, (cid, n) in enumerate(best):
            cat = cats.get(cid)
            if cat is None:
                continue
            chip = ttk.Button(
                self.chips,
                text=f"{cat.plural} {n:,}",
                command=self._chip(cat.name),
                name=f"chip_{cid}",
            )
            chip.grid(row=0, column=column, padx=(0, 4))

    def _chip(self, name: str) -> Callable[[], None]:
        return lambda: self.search(name)

    # --- background work -----------------------------------------------------------------

    def _with_index(self, action: Callable[[Index], Any]) -> Any:
        with Index(self._index_path) as index:
            return action(index)

    def _submit(self, kind: str, task: Callable[[], Any]) -> None:
        self._worker.submit(kind, task)

    def _drain(self) -> None:
        while True:
            try:
                kind, value = self._results.get_nowait()
            except queue.Empty:
                break
            if kind == "hits":
                self._show_hits(value)
            elif kind == "counts":
                self._show_chips(value)
            elif kind == "thumb":
                self._set_thumb(*value)
            elif kind == "detail":
                self._set_detail(*value)
            elif kind.endswith("!"):
                self.summary.configure(text=f"Search failed: {value}")
        self._after = self.window.after(POLL_MS, self._drain)

    def _set_thumb(self, path: Path, image: Image.Image | None) -> None:
        if image is None:
            return
        self._thumbs[str(path)] = ImageTk.PhotoImage(image, master=self.window)
        self._show_page()

    def _set_detail(self, path: Path, image: Image.Image | None) -> None:
        if self.selected is not None and self.selected.path == path and image is not None:
            self._detail_photo = ImageTk.PhotoImage(image, master=self.window)
            self.detail_image.configure(image=self._detail_photo)

    @property
    def alive(self) -> bool:
        """Whether the window is still open."""
        return is_open(self.window)

    def close(self) -> None:
        """Close the window and stop its worker."""
        self._worker.stop()
        if self.alive:
            self.window.after_cancel(self._after)
            self.window.destroy()


def _find(index: Index, words: list[str]) -> tuple[list[Hit], str]:
    """Photos of the words (as `dropsight search` reads them) and what to say about them."""
    terms = query.parse(words)
    missing = [t.why_none() for t in terms if not t.ranked]
    if missing:
        return [], missing[0]
    hits = index.search(words, limit=10_000)
    notes = [e for t in terms if (e := t.explain())]
    if not hits:
        notes.append(f"none yet ({index.count()} photos indexed)")
    return hits, "; ".join(notes)


def _thumb_task(path: Path) -> Callable[[], tuple[Path, Image.Image | None]]:
    return lambda: (path, thumbnail(path, THUMB_PX))
