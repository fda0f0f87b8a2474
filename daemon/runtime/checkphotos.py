"""The photos a runtime's labels are checked on: a few of the user's own, decoded once."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from dropsight.daemon.photos import imaging

log = logging.getLogger(__name__)

COUNT = 32  # photos decoded for the check
MIN_COUNT = 8  # fewer than this and bf16 is not considered: too few to tell
MAX_ENTRIES = 5000  # directory entries looked at, at most: a first start stays quick
SUFFIXES = (".jpg", ".jpeg", ".png")


def _candidates(folders: Iterable[Path]) -> Iterator[Path]:
    seen = 0
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                seen += 1
                if seen > MAX_ENTRIES:
                    return
                if name.lower().endswith(SUFFIXES) and not name.startswith("."):
                    yield Path(dirpath) / name


def load(
    folders: Iterable[Path], size: tuple[int, int], resize: str = "crop", count: int = COUNT
) -> np.ndarray | None:
    """Up to `count` photos from `folders` as a batch; None when fewer than MIN_COUNT decode."""
    images: list[np.ndarray] = []
    for path in _candidates(folders):
        try:
            images.append(imaging.load(path, size, resize).pixels)
        except (imaging.ImageError, OSError) as exc:
            log.debug("check photo %s skipped: %s", path, exc)
            continue
        if len(images) >= count:
            break
    if len(images) < MIN_COUNT:
        return None
    return np.stack(images).astype(np.float32)
