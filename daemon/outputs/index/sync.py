"""Keeping the library index in step with the sidecars: the service's output, repair, rebuild."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from dropsight.config.settings import Settings
from dropsight.daemon.contracts import SidecarRecord
from dropsight.daemon.outputs import sidecar
from dropsight.daemon.outputs.index.library import Index, default_path, is_damage
from dropsight.daemon.outputs.index.repair import damaged_message, open_repairing, set_aside
from dropsight.daemon.outputs.protocol import Context, Found, Written
from dropsight.daemon.photos.filter import PhotoFilter

log = logging.getLogger(__name__)

CHUNK = 500  # photos per transaction when rebuilding or repairing

Entry = tuple[Path, Path, SidecarRecord, int]  # photo, sidecar, record, sidecar mtime_ns


@dataclass
class Changes:
    """What a repair or rebuild did."""

    added: int = 0  # new or re-read
    removed: int = 0
    unchanged: int = 0

    def summary(self) -> str:
        """One line for people."""
        return f"{self.added} added or updated, {self.removed} removed, {self.unchanged} unchanged"


def labelled(settings: Settings, roots: Iterable[Path]) -> Iterator[tuple[Path, Path, int]]:
    """(photo, sidecar, sidecar mtime_ns) for every photo under `roots` that has a sidecar."""
    photo_filter = PhotoFilter.from_settings(settings.watch)
    layout = sidecar.Layout.of(settings)
    for root in roots:
        for photo in photo_filter.walk(root, settings.watch.recursive):
            json_path = layout.sidecar_for(photo, root)
            try:
                mtime_ns = json_path.stat().st_mtime_ns
            except OSError:
                continue
            yield photo, json_path, mtime_ns


def _read(items: Iterable[tuple[Path, Path, int]]) -> Iterator[Entry]:
    for photo, json_path, mtime_ns in items:
        record = sidecar.read(json_path)
        if record is not None:
            yield photo, json_path, record, mtime_ns


class Reconcile:
    """Brings the index under some roots in line with the sidecars, as they are found.

    Photos whose sidecar is newer than the index (or new) are read; at the end, indexed
    photos not found (deleted, moved, sidecar removed) are forgotten. `from_scratch` reads
    every sidecar.
    """

    def __init__(self, index: Index, roots: Iterable[Path], *, from_scratch: bool = False) -> None:
        self.changes = Changes()
        self._from_scratch = from_scratch
        self._known: dict[Path, int] = {}
        for root in roots:
            self._known.update({photo: mtime for photo, _sc, mtime in index.known(root)})
        self._seen: set[Path] = set()

    def add(self, index: Index, found: Iterable[tuple[Path, Path, int]]) -> None:
        """Index what changed among these (photo, sidecar, sidecar mtime_ns)."""
        pending: list[tuple[Path, Path, int]] = []
        for photo, json_path, mtime_ns in found:
            self._seen.add(photo)
            if not self._from_scratch and self._known.get(photo) == mtime_ns:
                self.changes.unchanged += 1
                continue
            pending.append((photo, json_path, mtime_ns))
            if len(pending) >= CHUNK:
                self.changes.added += index.put_many(_read(pending))
                pending.clear()
        self.changes.added += index.put_many(_read(pending))

    def finish(self, index: Index) -> Changes:
        """Forget indexed photos that were not found; what changed in all."""
        gone = [photo for photo in self._known if photo not in self._seen]
        self.changes.removed = index.remove_many(gone) if gone else 0
        return self.changes


def sync(
    index: Index,
    settings: Settings,
    roots: Sequence[Path],
    *,
    from_scratch: bool = False,
    stop: threading.Event | None = None,
    progress: Iterable[tuple[Path, Path, int]] | None = None,
) -> Changes:
    """Make the index under `roots` say what the sidecars say (one walk of the folders)."""
    reconcile = Reconcile(index, roots, from_scratch=from_scratch)
    found = progress if progress is not None else labelled(settings, roots)
    chunk: list[tuple[Path, Path, int]] = []
    for item in found:
        if stop is not None and stop.is_set():
            return reconcile.changes
        chunk.append(item)
        if len(chunk) >= CHUNK:
            reconcile.add(index, chunk)
            chunk.clear()
    reconcile.add(index, chunk)
    return reconcile.finish(index)


class IndexSink:
    """The service's index writer: one transaction per written batch, a row dropped for each
    photo forgotten, and a repair along every walk of the scanner (at start and on each
    rescan), so photos moved or deleted while the service was stopped leave the index too.

    Runs on its own thread (outputs/registry.py). A damaged database is set aside and
    rebuilt from the sidecars; an index that cannot be written is reported and never stops
    labelling.
    """

    name = "index"

    def __init__(self, ctx: Context, path: Path | None = None) -> None:
        self._on_error = ctx.on_error
        self._request_walk = ctx.request_walk
        self._path = path or default_path()
        self._index: Index | None = None
        self._failed = False
        self._reconcile: Reconcile | None = None  # the walk in progress

    def configure(self, settings: Settings) -> None:
        """Nothing to apply: the index follows whatever the scanner walks."""

    # --- following the scanner's walks ---------------------------------------------------

    def walk_started(self, root: Path) -> None:
        """Begin reconciling `root`."""

        def begin(index: Index) -> None:
            self._reconcile = Reconcile(index, [root])

        self._reconcile = None
        self._with_index(begin)

    def walked(self, found: Sequence[Found]) -> None:
        """Reconcile photos the walk passed."""
        reconcile = self._reconcile
        if reconcile is None:
            return
        labelled = []
        for photo, _root, json_path in found:
            try:
                labelled.append((photo, json_path, json_path.stat().st_mtime_ns))
            except OSError:
                continue  # not labelled (yet)
        self._with_index(lambda index: reconcile.add(index, labelled))

    def walk_finished(self, root: Path, complete: bool) -> None:
        """Forget what a complete walk did not find."""
        reconcile, self._reconcile = self._reconcile, None
        if reconcile is None or not complete:
            return

        def finish(index: Index) -> None:
            changes = reconcile.finish(index)
            log.info("library index under %s: %s", root, changes.summary())

        self._with_index(finish)

    def accept(self, batch: Sequence[Written]) -> None:
        """Index photos whose sidecars were just written."""
        entries = []
        for w in batch:
            try:
                entries.append((w.photo, w.sidecar, w.record, w.sidecar.stat().st_mtime_ns))
            except OSError:
                continue  # gone already: the next repair forgets it
        if entries:
            self._with_index(lambda index: index.put_many(entries))

    def forget(self, photo: Path, root: Path) -> None:
        """Drop a photo that is gone."""
        self._with_index(lambda index: index.remove_many([photo]))

    def close(self) -> None:
        """Close the database."""
        if self._index is not None:
            self._index.close()
            self._index = None

    def _with_index(self, action: Callable[[Index], object]) -> None:
        try:
            if self._index is None:
                self._index = self._open()
            action(self._index)
            self._failed = False
        except (sqlite3.Error, OSError) as exc:
            if is_damage(exc) and self._index is not None:  # damaged while in use
                self._index.close()
                self._index = None
                with _reported(self, exc):
                    self._rebuilt(set_aside(self._path))
                return
            if not self._failed:  # once per spell of trouble, not once per photo
                self._failed = True
                log.error("the library index %s cannot be written: %s", self._path, exc)
                self._on_error(self._path, f"library index not updated: {exc}")

    def _open(self) -> Index:
        index, aside = open_repairing(self._path)
        if aside is not None:
            self._rebuilt(aside)
        return index

    def _rebuilt(self, aside: Path) -> None:
        """A damaged index went aside: say so, and walk every folder to fill the new one."""
        message = damaged_message(aside)
        log.warning("%s", message)
        self._on_error(self._path, message)
        self._reconcile = None  # the walk under way was reconciling the old file
        self._request_walk()


@contextlib.contextmanager
def _reported(sink: IndexSink, cause: BaseException) -> Iterator[None]:
    """Setting a damaged index aside may fail too (a read-only folder): report, never raise."""
    try:
        yield
    except OSError as exc:
        log.error(
            "the library index %s is damaged (%s) and cannot be moved: %s", sink._path, cause, exc
        )
        sink._on_error(sink._path, f"library index damaged and cannot be set aside: {exc}")
