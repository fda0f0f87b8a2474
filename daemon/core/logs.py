"""Logging to a rotating file in the platform log folder and to stderr (when there is one)."""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import sys
from pathlib import Path

from dropsight.daemon.core import paths

LOG_BYTES = 1_000_000
LOG_BACKUPS = 3
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_file() -> Path:
    """The service's log file."""
    return paths.log_dir() / "dropsight.log"


class _NotFileOnly(logging.Filter):
    """Keeps records marked `file_only` (long explanations) out of the terminal."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "file_only", False)


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose files only their owner can read: they list photo paths."""

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if os.name == "posix" and os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)  # a log left by an older version
        return open(fd, "a", encoding=self.encoding, errors=self.errors)  # noqa: PTH123


def _file_handler(path: Path) -> logging.handlers.RotatingFileHandler:
    paths.make_private(path.parent)
    # backslashreplace: a file name that is not UTF-8 must not break a log line.
    return _PrivateRotatingFileHandler(
        path,
        maxBytes=LOG_BYTES,
        backupCount=LOG_BACKUPS,
        encoding="utf-8",
        errors="backslashreplace",
    )


def record_only(logger: logging.Logger, level: int, message: str) -> None:
    """Write one line to the log file alone (for a command that is about to exit)."""
    try:
        handler = _file_handler(log_file())
    except OSError:
        return
    try:
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.handle(logger.makeRecord(logger.name, level, __file__, 0, message, (), None))
    finally:
        handler.close()


def setup(level: str) -> Path:
    """Send logs to the rotating file and stderr; returns the log file's path."""
    root = logging.getLogger()
    root.setLevel(level)
    logging.captureWarnings(True)  # library warnings (watchdog's) go to the log, not stderr
    for h in list(root.handlers):  # replace basicConfig's handler from the CLI
        root.removeHandler(h)
    formatter = logging.Formatter(FORMAT)
    path = log_file()
    try:
        fh = _file_handler(path)
        fh.setFormatter(formatter)
        root.addHandler(fh)
    except OSError as exc:
        if sys.stderr is not None:
            print(f"dropsight: cannot write the log file {path}: {exc}", file=sys.stderr)
    if sys.stderr is not None:  # frozen windowed builds have no stderr
        sh = logging.StreamHandler(sys.stderr)
        sh.setFormatter(formatter)
        sh.addFilter(_NotFileOnly())
        root.addHandler(sh)
    return path
