"""Atomic file writes: temp file in the same folder, flush, fsync, os.replace."""

from __future__ import annotations

import contextlib
import json
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


def write_private_json(target: Path, payload: object) -> None:
    """Atomic JSON only this user can read (a token): mode 0600 from the start, durable.

    O_EXCL with mode 0600 on the temp file: the content never exists with wider permissions.
    """
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_bytes_atomic(target, json.dumps(payload, indent=2).encode("utf-8"), 0o600)
    _fsync_dir(target.parent)


def remove_stale_temp_files(folder: Path, recursive: bool, older_than_ns: int) -> list[Path]:
    """Remove the temp files a killed process left under `folder`; the ones removed.

    Only ours (recognised by their suffix), and only from before `older_than_ns`: a writer
    of this process may be busy there already.
    """
    pattern = "**/*" + TEMP_SUFFIX if recursive else "*" + TEMP_SUFFIX
    removed: list[Path] = []
    try:
        for tmp in folder.glob(pattern):
            with contextlib.suppress(OSError):
                if tmp.stat().st_mtime_ns < older_than_ns:
                    tmp.unlink()
                    removed.append(tmp)
    except OSError:
        pass  # the folder vanished or is unreadable: its health check reports it
    return removed


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable where the platform allows opening a directory."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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
