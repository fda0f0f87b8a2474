"""What the service has done lately: counters, recent results, errors and burst summaries."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

from dropsight.daemon.contracts import ErrorEntry, RecentResult, SidecarRecord
from dropsight.daemon.labels.names import display_name

log = logging.getLogger(__name__)

RECENT_MAX = 20
ERRORS_MAX = 20


class Activity:
    """Thread-safe record of results; `snapshot()` parts feed the status."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.done = self.failed = self.skipped = 0
        self.burst_done = 0  # finished since the queue was last empty: "12 of 340"
        self._burst_failed = 0
        self._burst_started: float | None = None
        self.current: str | None = None
        self._recent: deque[RecentResult] = deque(maxlen=RECENT_MAX)
        self._errors: deque[ErrorEntry] = deque(maxlen=ERRORS_MAX)  # newest first
        # By watched root; cleared once nothing there waits to be written (the writer says).
        self._write_errors: dict[Path, str] = {}
        self._odd: dict[Path, str] = {}  # photo -> why its sidecar's place is not ours

    def started(self, path: Path) -> None:
        """`path` is being decoded and classified."""
        with self._lock:
            self.current = str(path)
            if self._burst_started is None:
                self._burst_started = time.monotonic()

    def skipped_current(self) -> None:
        """A photo already had an up-to-date sidecar."""
        with self._lock:
            self.skipped += 1

    def burst_finished(self) -> None:
        """The queue ran empty: log a summary of the burst; the next one counts from zero."""
        with self._lock:
            done, failed, started = self.burst_done, self._burst_failed, self._burst_started
            self.burst_done = self._burst_failed = 0
            self._burst_started = None
            self.current = None
        if done and started is not None:
            took = max(time.monotonic() - started, 1e-3)
            log.info(
                "labelled %d photo%s in %.1f s (%.1f/s)%s",
                done,
                "" if done == 1 else "s",
                took,
                done / took,
                f", {failed} failed" if failed else "",
            )

    def written(self, image: Path, sidecar: Path, root: Path | None, record: SidecarRecord) -> None:
        """A sidecar (ok or error) was written."""
        top = record["predictions"][0] if record["predictions"] else None
        ok = record["status"] == "ok"
        with self._lock:
            self._odd.pop(image, None)
            self.burst_done += 1
            if ok:
                self.done += 1
            else:
                self.failed += 1
                self._burst_failed += 1
            self._recent.appendleft(
                {
                    "image": str(image),
                    "sidecar": str(sidecar),
                    "status": record["status"],
                    "label": display_name(top) if top else None,
                    "score": top["score"] if top else None,
                    "time": record["processed_at"],
                }
            )
        error = record["error"]
        if error is not None:
            self.error(image, f"{error['type']}: {error['message']}")

    def write_failed(self, image: Path, root: Path | None, message: str) -> None:
        """A sidecar could not be written (read-only folder, full disk, blocked target)."""
        with self._lock:
            self.failed += 1
            self.burst_done += 1
            self._burst_failed += 1
            if root is not None:
                self._write_errors[root] = message
        self.error(image, message)

    def write_waiting(self, root: Path, message: str) -> None:
        """Sidecars under `root` wait for a retry: the folder is unhealthy until written."""
        with self._lock:
            self._write_errors[root] = message

    def write_recovered(self, root: Path) -> None:
        """Nothing under `root` waits to be written any more."""
        with self._lock:
            self._write_errors.pop(root, None)

    def odd(self, photo: Path, sidecar: Path, reason: str) -> None:
        """`photo`'s sidecar place holds a file that is not ours: left alone, photo skipped."""
        with self._lock:
            new = photo not in self._odd
            self._odd[photo] = reason
        if new:
            self._said_odd(photo, sidecar, reason)

    def odd_found(self, root: Path, found: dict[Path, tuple[Path, str]]) -> None:
        """A scan of `root` found these odd files (photo -> (sidecar, reason)), only these."""
        with self._lock:
            before = {p for p in self._odd if p.is_relative_to(root)}
            for photo in before - found.keys():
                del self._odd[photo]
            for photo, (_sidecar, reason) in found.items():
                self._odd[photo] = reason
        for photo in found.keys() - before:
            self._said_odd(photo, *found[photo])

    def not_odd(self, photo: Path) -> None:
        """`photo` got a sidecar of ours after all (the odd file went)."""
        with self._lock:
            self._odd.pop(photo, None)

    def odd_files(self) -> int:
        """How many photos are skipped because an odd file holds their sidecar's place."""
        with self._lock:
            return len(self._odd)

    def _said_odd(self, photo: Path, sidecar: Path, reason: str) -> None:
        message = f"{sidecar} is not a Dropsight sidecar ({reason}): left as it is, photo skipped"
        log.warning("%s", message)
        self.error(photo, message)

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

    def errors(self) -> list[ErrorEntry]:
        """Recent errors, newest first."""
        with self._lock:
            return list(self._errors)

    def recent(self) -> list[RecentResult]:
        """Recent results, newest first."""
        with self._lock:
            return list(self._recent)
