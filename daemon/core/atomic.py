"""Atomic file writes: temp file in the same folder, flush, fsync, os.replace."""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path

TEMP_SUFFIX = ".dropsight-tmp"  # never an image extension, and ignored by the watcher
REPLACE_RETRIES = 6  # Windows: antivirus or a viewer can hold the target for a moment


def temp_path_for(target: Path) -> Path:
    """A unique hidden temp name beside `target`, short whatever the target's length.

    Not derived from the target's name: a 230-character photo name has a legal sidecar
    name, but the sidecar's name plus a prefix and suffix would pass the 255-byte limit.
    """
    return target.with_name(f".{secrets.token_hex(8)}{TEMP_SUFFIX}")


def write_bytes_atomic(target: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `target` so readers see the old file or the new one, never a part."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(target)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _replace_with_retry(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_text_atomic(target: Path, text: str, mode: int = 0o644) -> None:
    """Atomic UTF-8 text write."""
    write_bytes_atomic(target, text.encode("utf-8"), mode)


def _replace_with_retry(src: Path, dst: Path) -> None:
    delay_s = 0.05
    for attempt in range(REPLACE_RETRIES):
        try:
            src.replace(dst)
            return
        except PermissionError:
            if os.name != "nt" or attempt == REPLACE_RETRIES - 1:
                raise
            time.sleep(delay_s)
            delay_s *= 2
