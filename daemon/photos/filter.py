"""Which files count as photos to classify, and walking folders for them."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dropsight.config.settings import NOT_PHOTO_EXTENSIONS, WatchSettings
from dropsight.daemon.core.atomic import TEMP_SUFFIX


@dataclass(frozen=True)
class PhotoFilter:
    """Decides from a path alone whether it is a photo we should look at."""

    extensions: frozenset[str]
    ignore: tuple[str, ...]

    @classmethod
    def from_settings(cls, watch: WatchSettings) -> PhotoFilter:
        """The filter the settings describe (never our own files, whatever they say)."""
        return cls(
            frozenset(e.lower() for e in watch.extensions) - NOT_PHOTO_EXTENSIONS, watch.ignore
        )

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
        on_folder: Callable[[Path, set[str]], None] | None = None,
    ) -> Iterator[Path]:
        """Photos under `root`, lazily (a 100,000-file tree is never held in memory).

        `on_folder` hears of each folder read, with the names in it (orphan sidecars).
        """
        stack = [root]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError:
                continue  # unreadable or vanished sub-folder: reported by the caller's health check
            if on_folder is not None:
                on_folder(folder, {e.name for e in entries})
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
