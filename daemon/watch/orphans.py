"""Photos deleted or moved away: our sidecar goes too, and with XMP on, only our keywords."""

from __future__ import annotations

import contextlib
import glob
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from dropsight.config.settings import Settings
from dropsight.daemon import APP_NAME
from dropsight.daemon.outputs import sidecar
from dropsight.daemon.outputs.xmp import packet
from dropsight.daemon.photos.filter import PhotoFilter

log = logging.getLogger(__name__)


class Orphans:
    """Removes what Dropsight wrote for a photo that is gone, and nothing anyone else wrote."""

    def __init__(self, settings: Callable[[], Settings], on_error: Callable[[Path, str], None]):
        self._settings = settings
        self._on_error = on_error

    def photo_gone(self, photo: Path, root: Path) -> None:
        """`photo` is gone (deleted, moved out of the watched folders): clean up after it."""
        if os.path.lexists(photo):
            return  # back already (an editor that deletes and writes anew)
        settings = self._settings()
        json_path = sidecar.Layout.of(settings).sidecar_for(photo, root)
        if _ours(json_path, photo):
            with contextlib.suppress(FileNotFoundError):
                json_path.unlink()
                log.info("%s is gone; removed its sidecar", photo)
        if settings.output.xmp == "beside":
            self._remove_keywords(photo, settings)

    def sweep(self, roots: Iterable[Path]) -> None:
        """The output folder's sidecars of photos that are gone (folder mode; scans)."""
        settings = self._settings()
        out = sidecar.Layout.of(settings).out_folder
        if out is None:
            return
        roots = list(roots)
        for json_path in out.rglob("*" + sidecar.SUFFIX):
            record = sidecar.read(json_path)
            if not record or (record.get("generator") or {}).get("name") != APP_NAME:
                continue
            photo = Path(str((record.get("image") or {}).get("path") or ""))
            if not photo.is_absolute() or not any(photo.is_relative_to(r) for r in roots):
                continue
            if not os.path.lexists(photo):
                root = next(r for r in roots if photo.is_relative_to(r))
                self.photo_gone(photo, root)

    def _remove_keywords(self, photo: Path, settings: Settings) -> None:
        name = settings.output.xmp_name
        if name == "IMG.xmp" and _sibling_shares_xmp(photo, settings):
            return  # IMG.jpg gone, IMG.png still there: the keywords are the sibling's now
        try:
            packet.remove(photo, name)
        except (OSError, packet.XmpError) as exc:
            message = f"cannot take the keywords out of {packet.xmp_path(photo, name)}: {exc}"
            log.warning("%s", message)
            self._on_error(photo, message)


def _ours(json_path: Path, photo: Path) -> bool:
    """Is this sidecar one Dropsight wrote for this very photo? Never delete anyone else's."""
    record = sidecar.read(json_path)
    if not record or (record.get("generator") or {}).get("name") != APP_NAME:
        return False
    recorded = str((record.get("image") or {}).get("path") or "")
    return recorded in (photo.name, str(photo))


def _sibling_shares_xmp(photo: Path, settings: Settings) -> bool:
    photo_filter = PhotoFilter.from_settings(settings.watch)
    try:
        siblings = list(photo.parent.glob(f"{glob.escape(photo.stem)}.*"))
    except OSError:
        return True  # cannot tell: leave the keywords
    return any(s != photo and photo_filter.accepts(s) for s in siblings)
