"""Keeping the library index in step with the sidecars: the service's sink, repair, rebuild."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from dropsight.config.settings import Settings
from dropsight.daemon import sidecar
from dropsight.daemon.candidates import PhotoFilter
from dropsight.daemon.contracts import SidecarRecord
from dropsight.daemon.index import Index, default_path
from dropsight.daemon.sinks import OnError, Written

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


def sync(
    index: Index,
    settings: Settings,
    roots: Sequence[Path],
    *,
    from_scratch: bool = False,
    stop: threading.Event | None = None,
    progress: Iterable[tuple[Path, Path, int]] | None = None,
) -> Changes:
    """Make the index under `roots` say what the sidecars say.

    Photos whose sidecar is newer than the index (or new) are read; indexed photos that are
    gone (deleted, moved, sidecar removed) are forgotten. `from_scratch` reads every sidecar.
    """
    changes = Changes()
    known: dict[Path, int] = {}
    for root in roots:
        known.update({photo: mtime for photo, _sc, mtime in index.known(root)})
    found = progress if progress is not None else labelled(settings, roots)
    pending: list[tuple[Path, Path, int]] = []
    seen: set[Path] = set()
    for photo, json_path, mtime_ns in found:
        if stop is not None and stop.is_set():
            return changes
        seen.add(photo)
        if not from_scratch and known.get(photo) == mtime_ns:
            changes.unchanged += 1
            continue
        pending.append((photo, json_path, mtime_ns))
        if len(pending) >= CHUNK:
            changes.added += index.put_many(_read(pending))
            pending.clear()
    changes.added += index.put_many(_read(pending))
    gone = [photo for photo in known if photo not in seen]
    changes.removed = index.remove_many(gone) if gone else 0
    return changes


class IndexSink:
    """The service's index writer: one transaction per written batch, repair at start.

    A damaged database is set aside and rebuilt from the sidecars; an index that cannot be
    written is reported and never stops labelling.
    """

    name = "index"

    def __init__(self, on_error: OnError, path: Path | None = None) -> None:
        self._on_error = on_error
        self._path = path or default_path()
        self._lock = threading.Lock()
        self._index: Index | None = None
        self._settings: Settings | None = None
        self._stop = threading.Event()
        self._repair: threading.Thread | None = None
        self._failed = False

    def configure(self, settings: Settings) -> None:
        """Apply settings; the first time (and when folders change), repair in the background."""
        old = self._settings
        self._settings = settings
        if old is None or old.watch.folders != settings.watch.folders:
            self._start_repair(settings)

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

    def close(self) -> None:
        """Stop repairing and close the database."""
        self._stop.set()
        if self._repair is not None:
            self._repair.join()
        with self._lock:
            if self._index is not None:
                self._index.close()
                self._index = None

    def _with_index(self, action: Callable[[Index], object]) -> None:
        with self._lock:
            try:
                if self._index is None:
                    self._index = self._open()
                action(self._index)
                self._failed = False
            except (sqlite3.Error, OSError) as exc:
                if not self._failed:  # once per spell of trouble, not once per photo
                    self._failed = True
                    log.error("the library index %s cannot be written: %s", self._path, exc)
                    self._on_error(self._path, f"library index not updated: {exc}")

    def _open(self) -> Index:
        try:
            index = Index(self._path)
            index.count()
            return index
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise  # locked, disk full: not damage
            aside = self._path.with_name(self._path.name + ".damaged")
            log.warning("the library index was damaged (%s); set aside as %s", exc, aside)
            for suffix in ("", "-wal", "-shm"):
                p = Path(str(self._path) + suffix)
                if p.exists():
                    p.replace(Path(str(aside) + suffix))
            return Index(self._path)

    def _start_repair(self, settings: Settings) -> None:
        if self._repair is not None and self._repair.is_alive():
            return
        roots = list(settings.watch.folders)

        def run() -> None:
            def repair(index: Index) -> None:
                changes = sync(index, settings, roots, stop=self._stop)
                log.info("library index: %s", changes.summary())

            self._with_index(repair)

        self._repair = threading.Thread(target=run, name="index-repair", daemon=True)
        self._repair.start()
