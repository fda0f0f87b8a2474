"""Thumbnails of photos, made off the UI thread and cached on disk by path, size and time."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path

from PIL import Image, ImageOps

from dropsight.daemon.core import paths
from dropsight.daemon.core.atomic import temp_path_for

log = logging.getLogger(__name__)


def cache_folder() -> Path:
    """Where thumbnails are kept (safe to delete at any time)."""
    return paths.cache_dir() / "thumbs"


def thumbnail(path: Path, size: int) -> Image.Image | None:
    """A `size` x `size` thumbnail of a photo, or None when it cannot be read."""
    try:
        st = path.stat()
    except OSError:
        return None
    key = hashlib.sha1(
        os.fsencode(path) + f"|{st.st_mtime_ns}|{st.st_size}|{size}".encode()
    ).hexdigest()
    cached = cache_folder() / f"{key}.png"
    with contextlib.suppress(OSError, ValueError), Image.open(cached) as img:
        img.load()
        return img.copy()
    try:
        with Image.open(path) as img:
            img.draft("RGB", (size * 2, size * 2))  # JPEG: decode small, much faster
            thumb = ImageOps.exif_transpose(img).convert("RGB")
        thumb = ImageOps.fit(thumb, (size, size), Image.Resampling.LANCZOS)
    except Exception as exc:
        log.debug("no thumbnail for %s: %s", path, exc)
        return None
    with contextlib.suppress(OSError):
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path_for(cached)
        thumb.save(tmp, "PNG")
        tmp.replace(cached)
    return thumb
