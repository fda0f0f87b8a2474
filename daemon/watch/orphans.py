"""Finding photos that went while nobody watched: the outputs then forget them (registry)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from dropsight.config.settings import Settings
from dropsight.daemon import APP_NAME
from dropsight.daemon.outputs import sidecar
from dropsight.daemon.photos.filter import PhotoFilter

Forget = Callable[[Path, Path], None]  # (photo, root): outputs.registry.Outputs.forget


class Orphans:
    """Spots sidecars whose photo is gone, for the outputs to forget it (each its own way)."""

    def __init__(
        self, settings: Callable[[], Settings], photo_filter: PhotoFilter, forget: Forget
    ) -> None:
        self._settings = settings
        self._filter = photo_filter
        self._forget = forget

    def beside(self, folder: Path, root: Path, names: set[str]) -> None:
        """A walked folder's entries: a sidecar beside no photo is an orphan (scans)."""
        for name in names:
            if name.endswith(sidecar.SUFFIX):
                photo = folder / name[: -len(sidecar.SUFFIX)]
                if photo.name not in names and self._filter.accepts(photo, root):
                    self._forget(photo, root)

    def sweep(self, roots: Iterable[Path]) -> None:
        """The output folder's sidecars of photos that are gone (folder mode; scans)."""
        out = sidecar.Layout.of(self._settings()).out_folder
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
                self._forget(photo, root)
