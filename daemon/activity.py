"""What the service has done lately: counters, recent results and errors, for status."""

from __future__ import annotations

import threading
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RECENT_MAX = 20
ERRORS_MAX = 20


class Activity:
    """Thread-safe record of results; `snapshot()` is the status' view of it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.done = self.failed = self.skipped = 0
        self.burst_done = 0  # finished since the queue was last empty: "12 of 340"
        self.current: str | None = None
        self._recent: deque[dict[str, Any]] = deque(maxlen=RECENT_MAX)
        self._errors: deque[dict[str, Any]] = deque(maxlen=ERRORS_MAX)
        self._write_errors: dict[Path, str] = {}  # by watched root; cleared by a good write

    def started(self, path: Path) -> None:
        """`path` is being decoded and classified."""
        with self._lock:
            self.current = str(path)

    def skipped_current(self) -> None:
        """An image already had an up-to-date sidecar."""
        with self._lock:
            self.skipped += 1

    def idle(self) -> None:
        """The queue ran empty: the next burst counts from zero."""
        with self._lock:
            self.burst_done = 0
            self.current = None

    def written(
        self, image: Path, sidecar: Path, root: Path | None, record: dict[str, Any]
    ) -> None:
        """A sidecar (ok or error) was written."""
        top = record["predictions"][0] if record["predictions"] else None
        with self._lock:
            if root is not None:
                self._write_errors.pop(root, None)
            self.burst_done += 1
            if record["status"] == "ok":
                self.done += 1
            else:
                self.failed += 1
            self._recent.appendleft(
                {
                    "image": str(image),
                    "sidecar": str(sidecar),
                    "status": record["status"],
                    "label": top["label"] if top else None,
                    "score": top["score"] if top else None,
                    "time": record["processed_at"],
                }
            )
        if record["status"] != "ok":
            self.error(image, f"{record['error']['type']}: {record['error']['message']}")

    def write_failed(self, image: Path, root: Path | None, message: str) -> None:
        """A sidecar could not be written (read-only folder, full disk, blocked target)."""
        with self._lock:
            self.failed += 1
            self.burst_done += 1
            if root is not None:
                self._write_errors[root] = message
        self.error(image, message)

    def error(self, path: Path | None, message: str) -> None:
        """Remember an error for status (newest first)."""
        with self._lock:
            self._errors.appendleft(
                {
                    "time": datetime.now(UTC).isoformat(timespec="seconds"),
                    "path": str(path) if path else None,
                    "message": message,
                }
            )

    def write_error(self, root: Path) -> str | None:
        """The last write failure under `root`, if it has not been cleared since."""
        with self._lock:
            return self._write_errors.get(root)

    def snapshot(self, pending: int) -> dict[str, Any]:
        """Counters, progress, recent results and errors as JSON-ready values."""
        with self._lock:
            return {
                "done": self.done,
                "failed": self.failed,
                "skipped": self.skipped,
                "queued": pending,
                "progress": {"done": self.burst_done, "total": self.burst_done + pending},
                "current": self.current,
                "errors": list(self._errors),
                "recent": list(self._recent),
            }
