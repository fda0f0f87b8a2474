"""Why the service could not start, kept where the tray and viewer can show it.

A service started by the tray or at login has no terminal: its stderr goes nowhere. So a
start that fails (a bad config value, a folder that cannot be created) also leaves its
one-line reason in the state folder; a start that succeeds removes it.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from dropsight.daemon.core import paths
from dropsight.daemon.core.atomic import write_text_atomic

FILE_NAME = "start-failure.json"


@dataclass(frozen=True)
class StartFailure:
    """The last failed start: when, and why (file, key and what is allowed, for config)."""

    time: float  # seconds since the epoch
    message: str


def _path() -> Path:
    return paths.state_dir() / FILE_NAME


def record(message: str) -> None:
    """Remember why this start failed (best effort: the log has it too)."""
    with contextlib.suppress(OSError):
        text = json.dumps({"time": time.time(), "message": message}, ensure_ascii=False)
        write_text_atomic(_path(), text + "\n")


def clear() -> None:
    """The service started: forget the last failure."""
    with contextlib.suppress(OSError):
        _path().unlink()


def read(since: float = 0.0) -> StartFailure | None:
    """The last failed start, if there is one from `since` (epoch seconds) on."""
    try:
        data = json.loads(_path().read_text("utf-8"))
        failure = StartFailure(float(data["time"]), str(data["message"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return failure if failure.time >= since else None
