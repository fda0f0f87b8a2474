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

from dropsight.config.settings import ConfigError, OutputSettings, load
from dropsight.daemon.api.wire import read_sidecar
from dropsight.daemon.core import paths
from dropsight.daemon.labels import query
from dropsight.daemon.labels.classes import categories, info
from dropsight.daemon.labels.names import display_name
from dropsight.daemon.outputs.index.library import Hit, Index
from dropsight.tray import desktop
from dropsight.tray.layout import ellipsize, fit_window
from dropsight.tray.thumbs import thumbnail
from dropsight.tray.worker import Worker, is_open

log = logging.getLogger(__name__)

THUMB_PX = 120
CELL_PX = (THUMB_PX + 36, THUMB_PX + 62)  # a result: thumbnail, name and score, padding
DETAIL_PX = 280
CHIPS = 10
POLL_MS = 50
WINDOW_PX = (1120, 760)  # wanted; fit_window keeps it on smaller screens
MIN_WINDOW_PX = (640, 440)


class SearchWindow:
    """Search the library index (works whether or not the service runs)."""

    def __init__(self, parent: tk.Misc, index_path: Path | None = None) -> None:
        self._index_path = index_path
        self.min_score = min_score()  # labels less sure than this are not "found"
        self.window = tk.Toplevel(parent, name="search")
        self.window.title("Dropsight: find photos")
        fit_window(self.window, WINDOW_PX, MIN_WINDOW_PX)
        self._results: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._worker = Worker(self._results, name="search-worker", backlog=1000)
        self._thumbs: dict[str, ImageTk.PhotoImage] = {}
        self._hits: list[Hit] = []
        self._page = 0
        self._shape = (0, 0)  # columns, rows of the grid as the window's size allows
        self._query: list[str] = []
        self._note = ""  # what was searched, or why nothing was found
        self.selected: Hit | None = None
        self._detail_photo: ImageTk.PhotoImage | None = None
        self._build()
        self.window.protocol("WM_DELETE_WINDOW", self.close)
        self.window.bind("<Escape>", lambda _e: self.close())
        self._after = self.window.after(POLL_MS, self._drain)
        self._submit("counts", self._count_categories)

    def shown_cells(self) -> list[ttk.Button]:
        """The result cells showing a photo."""
        return [cell for cell in self.cells if cell.winfo_ismapped()]

    @property
    def page_size(self) -> int:
        """How many results one page shows (as many as fit)."""
        return max(1, self._shape[0] * self._shape[1])

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
        # Chips wrap onto more lines instead of widening the window.
        self.chips = ttk.Frame(w, padding=(12, 0, 12, 6), name="chips")
        self.chips.grid(row=1, column=0, columnspan=2, sticky="ew")
        self.chips.bind("<Configure>", lambda _e: self._flow_chips())
        self.chip_buttons: list[ttk.Button] = []
        self.chip_counts: dict[str, int] = {}
        self.grid = ttk.Frame(w, padding=(12, 0), name="grid")
        self.grid.grid(row=2, column=0, sticky="nsew")
        self.grid.bind("<Configure>", self._resized)
        self.cells: list[ttk.Button] = []
        nav = ttk.Frame(w, padding=(12, 4, 12, 12))
        nav.grid(row=3, column=0, columnspan=2, sticky="ew")
        nav.columnconfigure(1, weight=1)
        self.prev_button = ttk.Button(nav, text="\u2190 Previous", command=self.previous)
        self.prev_button.grid(row=0, column=0)
        self.summary = ttk.Label(
            nav, text="Type what to look for: dog, beach, car\u2026", anchor="center"
        )
        self.summary.grid(row=0, column=1, sticky="ew", padx=8)
        nav.bind(
            "<Configure>", lambda e: self.summary.configure(wraplength=max(e.width - 260, 200))
        )
        self.next_button = ttk.Button(nav, text="Next \u2192", command=self.next)
        self.next_button.grid(row=0, column=2)
        self._build_details()
        self._set_shape(4, 3)

    def _build_details(self) -> None:
        side = ttk.Frame(self.window, padding=(0, 0, 12, 0), name="details", width=DETAIL_PX)
        side.grid(row=2, column=1, sticky="nsew")
        self.window.columnconfigure(1, minsize=DETAIL_PX + 12)
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
        self.clear_details()

    def clear_details(self) -> None:
        """No photo selected: an empty details panel."""
        self.selected = None
        self._detail_photo = None
        self.detail_image.configure(image="")
        self.detail_title.configure(text="")
        self.detail_text.configure(text="Click a photo to see what it shows.")
        for button in (self.open_photo, self.open_folder):
            button.state(["disabled"])

    def _resized(self, event: Any) -> None:
        """As many columns and rows of results as the grid's space holds."""
        columns = max(1, (event.width - 24) // CELL_PX[0])
        rows = max(1, event.height // CELL_PX[1])
        if (columns, rows) != self._shape:
            first = self._page * self.page_size
            self._set_shape(columns, rows)
            self._page = first // self.page_size
            self._show_page()

    def _set_shape(self, columns: int, rows: int) -> None:
        self._shape = (columns, rows)
        while len(self.cells) < columns * rows:
            i = len(self.cells)
            cell = ttk.Button(self.grid, compound="top", command=self._selector(i))
            self.cells.append(cell)
        for i, cell in enumerate(self.cells):
            if i < columns * rows:
                cell.grid(row=i // columns, column=i % columns, padx=3, pady=3, sticky="n")
            else:
                cell.grid_forget()
        self._show_page()

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
        self.clear_details()
        self.summary.configure(text="Searching\u2026")
        least = self.min_score
        self._submit("hits", lambda: self._with_index(lambda ix: _find(ix, words, least)))

    def _show_hits(self, found: tuple[list[Hit], str]) -> None:
        (self._hits, self._note), self._page = found, 0
        self._show_page()

    def _show_page(self) -> None:
        size = self.page_size
        page = self._hits[self._page * size : (self._page + 1) * size]
        name_px = CELL_PX[0] - 16
        for i, cell in enumerate(self.cells[:size]):
            if i < len(page):
                hit = page[i]
                image = self._thumbs.get(str(hit.path), "")
                name = ellipsize(hit.name, "TkDefaultFont", name_px)
                cell.configure(text=f"{name}\n{hit.score * 100:.0f}%", image=image)
                cell.grid()
                if not image:
                    self._submit("thumb", _thumb_task(hit.path))
            else:
                cell.grid_remove()
        pages = max(1, -(-len(self._hits) // size))
        if self._query:
            count = len(self._hits)
            photos = "photo" if count == 1 else "photos"
            found = f"{count:,} {photos} of \u201c{' '.join(self._query)}\u201d"
            note = f" \u00b7 {self._note}" if self._note else ""
            self.summary.configure(text=f"{found} \u00b7 page {self._page + 1} of {pages}{note}")
        self.prev_button.state(["!disabled" if self._page > 0 else "disabled"])
        self.next_button.state(["!disabled" if self._page + 1 < pages else "disabled"])

    def next(self) -> None:
        """The next page of results."""
        if (self._page + 1) * self.page_size < len(self._hits):
            self._page += 1
            self._show_page()

    def previous(self) -> None:
        """The previous page of results."""
        if self._page > 0:
            self._page -= 1
            self._show_page()

    def select(self, cell: int) -> None:
        """Show one result: the photo, its top-5 and what the class is."""
        index = self._page * self.page_size + cell
        if index >= len(self._hits):
            return
        hit = self.selected = self._hits[index]
        cls = info(hit.class_index)
        self.detail_title.configure(text=ellipsize(hit.path.name, "TkDefaultFont", DETAIL_PX))
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
        """The biggest categories, each counted as a click on its chip searches it."""
        least = self.min_score
        return self._with_index(lambda ix: _chip_counts(ix, least))

    def _show_chips(self, counts: dict[str, int]) -> None:
        for chip in self.chip_buttons:
            chip.destroy()
        self.chip_buttons = []
        self.chip_counts = {}
        cats = categories()
        for cid, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            cat = cats.get(cid)
            if cat is None or not n:
                continue
            self.chip_counts[cat.name] = n
            self.chip_buttons.append(
                ttk.Button(
                    self.chips,
                    text=f"{cat.plural} {n:,}",
                    command=self._chip(cat.name),
                    name=f"chip_{cid}",
                )
            )
        self._flow_chips()

    def _flow_chips(self) -> None:
        """Lay the chips out in lines as wide as the window."""
        width = max(self.chips.winfo_width() - 24, 200)
        x = row = column = 0
        for chip in self.chip_buttons:
            chip_w = chip.winfo_reqwidth() + 4
            if column and x + chip_w > width:
                row, column, x = row + 1, 0, 0
            chip.grid(row=row, column=column, padx=(0, 4), pady=(0, 4), sticky="w")
            x += chip_w
            column += 1

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


def min_score() -> float:
    """The labels that count, as `dropsight search` has it: output.xmp_min_score."""
    try:
        return load(paths.config_file()).output.xmp_min_score
    except ConfigError:
        return OutputSettings().xmp_min_score


def _find(index: Index, words: list[str], least: float) -> tuple[list[Hit], str]:
    """Photos of the words (as `dropsight search` reads them) and what to say about them."""
    terms = query.parse(words)
    missing = [t.why_none() for t in terms if not t.ranked]
    if missing:
        return [], missing[0]
    hits = index.search(words, min_score=least, limit=10_000)
    notes = [e for t in terms if (e := t.explain())]
    if not hits:
        notes.append(f"none yet ({index.count()} photos indexed)")
    return hits, "; ".join(notes)


def _thumb_task(path: Path) -> Callable[[], tuple[Path, Image.Image | None]]:
    return lambda: (path, thumbnail(path, THUMB_PX))


def _chip_counts(index: Index, least: float) -> dict[str, int]:
    """The CHIPS biggest categories with the number of photos their search finds.

    Which categories: the most frequent among confident labels (the index's categories).
    Their count: `count_matching` of the category's name, the search a click on the chip
    runs, so "Cats 2" opens 2 photos.
    """
    cats = categories()
    biggest = sorted(index.category_counts().items(), key=lambda kv: (-kv[1], kv[0]))
    counts = {}
    for cid, _n in biggest[:CHIPS]:
        cat = cats.get(cid)
        if cat is not None:
            counts[cid] = index.count_matching([cat.name], min_score=least)
    return counts
