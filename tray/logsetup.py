"""Logging for the tray and viewer processes: a small rotating file, stderr when there is one."""

from __future__ import annotations

import logging
import logging.handlers
import sys

from dropsight.daemon.core import paths

LOG_BYTES = 500_000
LOG_BACKUPS = 2
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup(name: str, level: int = logging.INFO) -> None:
    """Log to `<log dir>/<name>.log` (one file per process: rotation is not multi-process)."""
    root = logging.getLogger()
    root.setLevel(level)
    formatter = logging.Formatter(FORMAT)
    try:
        folder = paths.log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            folder / f"{name}.log", maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
        )
        handler.setFormatter(formatter)
        root.addHandler(handler)
    except OSError:
        pass  # a read-only profile must not stop the UI
    # Frozen windowed builds have sys.stderr None: a StreamHandler there would fail.
    if sys.stderr is not None:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(formatter)
        stream.setLevel(logging.WARNING)
        root.addHandler(stream)
