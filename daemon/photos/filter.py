"""Which files count as photos to classify, and walking folders for them."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dropsight.config.settings import WatchSettings
from dropsight.daemon.core.atomic import TEMP_SUFFIX
from dropsight.daemon.outputs.sidecar import SUFFIX as SIDECAR_SUFFIX


@dataclass(frozen=True)
class PhotoFilter:
    """Decides from a path alone whether it is a photo we should look at."""

    extensions: frozenset[str]
    ignore: tuple[str, ...]

    @classmethod
    def from_settings(cls, watch: WatchSettings) -> PhotoFilter:
        """The filter the settings describe."""
        return cls(frozenset(e.lower() for e in watch.extensions), watch.ignore)

    def ignored_name(self, name: str) -> bool:
        """True for names matched by an ignore pattern, and for our own temp files."""
        if name.endswith(TEMP_SUFFIX):
            return True
        return any(fnmatch.fnmatchcase(name, pat) for pat in self.ignore)

    def accepts(self, path: Path, root: Path | None = None) -> bool:
        """True when `path` has a photo extension and no ignored component below `root`."""
        suffix = path.suffix.lower().lstrip(".")
        if suffix not in self.extensions:
            return False
        parts = path.relative_to(root).parts if root is not None else (path.name,)
        return not any(self.ignored_name(p) for p in parts)

    def walk(
        self,
        root: Path,
        recursive: bool = True,
        orphan: Callable[[Path], None] | None = None,
    ) -> Iterator[Path]:
        """Photos under `root`, lazily (a 100,000-file tree is never held in memory).

        `orphan` hears of each photo that has a `.json` sidecar beside it but is gone.
        """
        stack = [root]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError:
                continue  # unreadable or vanished sub-folder: reported by the caller's health check
            if orphan is not None:
                self._orphans(folder, root, {e.name for e in entries}, orphan)
            for entry in entries:
                if self.ignored_name(entry.name):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if recursive:
                            stack.append(Path(entry.path))
                    elif entry.is_file() and self.accepts(Path(entry.path), root):
                        yield Path(entry.path)
                except OSError:
                    continue

    def _orphans(
        self, folder: Path, root: Path, names: set[str], orphan: Callable[[Path], None]
    ) -> None:
        for name in names:
            if name.endswith(SIDECAR_SUFFIX):
                photo_name = name[: -len(SIDECAR_SUFFIX)]
                if photo_name not in names and self.accepts(folder / photo_name, root):
                    orphan(folder / photo_name)


def stale_temp_files(root: Path, recursive: bool = True) -> Iterator[Path]:
    """Temp files a killed process left behind (ours only, recognised by their suffix)."""
    pattern = "**/*" + TEMP_SUFFIX if recursive else "*" + TEMP_SUFFIX
    try:
        yield from root.glob(pattern)
    except OSError:
        return
