"""Keeping XMP sidecars in step with the JSON ones: the service's sink and whole-folder passes.

With `xmp_name = "IMG.xmp"`, photos that differ only by extension (IMG_1.CR2 and IMG_1.JPG,
a RAW+JPEG pair) share one XMP file, as in Lightroom, which takes such a pair for one photo:
the file holds the keywords of all of them, and is rewritten from those left when one goes.
"""

from __future__ import annotations

import glob
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dropsight.config.settings import Settings
from dropsight.daemon.contracts import SidecarRecord
from dropsight.daemon.outputs import sidecar
from dropsight.daemon.outputs.protocol import Context, Found, Written
from dropsight.daemon.outputs.xmp import packet
from dropsight.daemon.photos.filter import PhotoFilter

log = logging.getLogger(__name__)


@dataclass
class Tally:
    """What a pass over folders did."""

    written: int = 0
    unchanged: int = 0
    removed: int = 0
    unlabelled: int = 0  # photos with no JSON sidecar yet
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def count(self, outcome: packet.Outcome) -> None:
        """Count one photo's outcome."""
        if outcome == "written":
            self.written += 1
        elif outcome == "removed":
            self.removed += 1
        else:
            self.unchanged += 1

    def add(self, other: Tally) -> None:
        """Add another pass's counts to these."""
        self.written += other.written
        self.unchanged += other.unchanged
        self.removed += other.removed
        self.unlabelled += other.unlabelled
        self.failed.extend(other.failed)

    def summary(self) -> str:
        """One line for people."""
        parts = [
            f"{self.written} written",
            f"{self.removed} removed",
            f"{self.unchanged} already up to date",
        ]
        if self.unlabelled:
            parts.append(f"{self.unlabelled} not labelled yet")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        return ", ".join(parts)


def photos(settings: Settings, roots: Iterable[Path]) -> Iterator[tuple[Path, Path]]:
    """(photo, root) for every photo under `roots`, as the service would find them."""
    photo_filter = PhotoFilter.from_settings(settings.watch)
    for root in roots:
        for photo in photo_filter.walk(root, settings.watch.recursive):
            yield photo, root


def name_of(settings: Settings) -> packet.XmpName:
    """The configured XMP file naming."""
    return settings.output.xmp_name


def write_from_sidecars(
    settings: Settings,
    items: Iterable[tuple[Path, Path]],
    *,
    only_stale: bool = False,
    stop: threading.Event | None = None,
) -> Tally:
    """Write every photo's keywords from its JSON sidecar (photos not labelled are counted).

    `only_stale` skips photos whose XMP file is newer than their sidecar without reading it.
    """
    layout, name, tally = sidecar.Layout.of(settings), name_of(settings), Tally()
    for photo, root in items:
        if stop is not None and stop.is_set():
            break
        json_path = layout.sidecar_for(photo, root)
        if only_stale and _newer(packet.xmp_path(photo, name), json_path):
            tally.unchanged += 1
            continue
        record = sidecar.read(json_path)
        if record is None:
            tally.unlabelled += 1
            continue
        try:
            tally.count(write_one(settings, photo, root, record))
        except (OSError, packet.XmpError) as exc:
            tally.failed.append((photo, str(exc)))
    return tally


def write_one(settings: Settings, photo: Path, root: Path, record: SidecarRecord) -> packet.Outcome:
    """Write one photo's keywords (with those of the photos sharing its XMP file)."""
    name = name_of(settings)
    siblings = _sibling_records(settings, photo, root)
    return packet.write(photo, record, settings.output.xmp_min_score, name, siblings)


def forget_one(settings: Settings, photo: Path, root: Path) -> packet.Outcome:
    """`photo` is gone: take its keywords out (the file keeps those of photos sharing it)."""
    name = name_of(settings)
    siblings = _sibling_records(settings, photo, root)
    if not siblings:
        return packet.remove(photo, name)
    first, *others = siblings
    return packet.write(photo, first, settings.output.xmp_min_score, name, others)


def remove_all(settings: Settings, items: Iterable[tuple[Path, Path]]) -> Tally:
    """Take Dropsight's keywords out of every photo's XMP sidecar."""
    name, tally = name_of(settings), Tally()
    for photo, _root in items:
        try:
            tally.count(packet.remove(photo, name))
        except (OSError, packet.XmpError) as exc:
            tally.failed.append((photo, str(exc)))
    return tally


def _newer(path: Path, than: Path) -> bool:
    try:
        return path.stat().st_mtime_ns >= than.stat().st_mtime_ns
    except OSError:
        return False


class XmpSink:
    """The service's XMP writer: keywords for each labelled photo, when `output.xmp` is on;
    a photo gone loses only our keywords.

    Turned on (at start or by a config change) it asks for a walk to catch up: photos
    labelled while it was off, or before a crash between the two writes, get theirs. Runs
    on its own thread (outputs/registry.py): exiv2 never holds the writer stage.
    """

    name = "xmp"

    def __init__(self, ctx: Context) -> None:
        self._on_error = ctx.on_error
        self._request_walk = ctx.request_walk
        self._closing = ctx.closing
        self._settings: Settings | None = None
        self._tally = Tally()  # of the walk in progress

    @property
    def enabled(self) -> bool:
        """Whether XMP files are being written."""
        return self._settings is not None and self._settings.output.xmp == "beside"

    def configure(self, settings: Settings) -> None:
        """Apply (changed) settings; turning XMP on asks for a walk to catch up."""
        was_on = self.enabled
        self._settings = settings
        if self.enabled and not was_on:
            log.info("writing XMP keywords (%s) beside photos", settings.output.xmp_name)
            self._request_walk()

    def accept(self, batch: Sequence[Written]) -> None:
        """Write the keywords of photos whose sidecars were just written."""
        settings = self._settings
        if settings is None or not self.enabled:
            return
        for w in batch:
            try:
                write_one(settings, w.photo, w.root, w.record)
            except (OSError, packet.XmpError) as exc:
                self._failed(w.photo, str(exc))

    def forget(self, photo: Path, root: Path) -> None:
        """Take our keywords out of a gone photo's XMP file (other tools' data stays)."""
        settings = self._settings
        if settings is None or not self.enabled:
            return
        try:
            forget_one(settings, photo, root)
        except (OSError, packet.XmpError) as exc:
            path = packet.xmp_path(photo, name_of(settings))
            message = f"cannot take the keywords out of {path}: {exc}"
            log.warning("%s", message)
            self._on_error(photo, message)

    def close(self) -> None:
        """Nothing held open."""

    # --- catching up along the scanner's walks -------------------------------------------

    def walk_started(self, root: Path) -> None:
        """Begin a tally for `root`."""
        self._tally = Tally()

    def walked(self, found: Sequence[Found]) -> None:
        """Write the XMP of photos whose JSON sidecar is newer than it (or that have none)."""
        settings = self._settings
        if settings is None or not self.enabled:
            return
        items = [(photo, root) for photo, root, _json in found]
        tally = write_from_sidecars(settings, items, only_stale=True, stop=self._closing)
        for photo, message in tally.failed:
            self._failed(photo, message)
        self._tally.add(tally)

    def walk_finished(self, root: Path, complete: bool) -> None:
        """Report the tally."""
        if self._tally.written or self._tally.failed:
            log.info("XMP catch-up under %s: %s", root, self._tally.summary())

    def _failed(self, photo: Path, message: str) -> None:
        log.warning("XMP keywords for %s not written: %s", photo, message)
        self._on_error(photo, f"XMP not written: {message}")


def _sibling_records(settings: Settings, photo: Path, root: Path) -> list[SidecarRecord]:
    """The sidecar records of the other photos that share `photo`'s XMP file (IMG.xmp)."""
    if name_of(settings) != "IMG.xmp":
        return []
    photo_filter = PhotoFilter.from_settings(settings.watch)
    layout = sidecar.Layout.of(settings)
    try:
        found = sorted(photo.parent.glob(f"{glob.escape(photo.stem)}.*"))
    except OSError:
        return []
    records: list[SidecarRecord] = []
    for other in found:
        if other == photo or other.stem != photo.stem or not photo_filter.accepts(other):
            continue
        record = sidecar.read(layout.sidecar_for(other, root))
        if record is not None and other.is_file():
            records.append(record)
    return records
