"""Photos that kill the service (a native crash, the OOM killer) are isolated, then skipped.

A journal in the state folder lists the photos taken and finished. A process that dies
abruptly leaves photos taken but not finished: each becomes a suspect. Suspects are labelled
one at a time with nothing else in flight (JobQueue), so a second death names the culprit
alone, which is then skipped with an error sidecar instead of killing every start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from pathlib import Path

from dropsight.daemon.core.atomic import write_text_atomic

log = logging.getLogger(__name__)

JOURNAL_NAME = "in-flight.log"
SUSPECTS_NAME = "suspects.json"
COMPACT_AT_BYTES = 1 << 20  # rewrite the journal with what is in flight past this size
SKIP_AFTER = 2  # deaths with the photo in flight; the second one with it alone


def _encode(key: str) -> str:
    # Hex of the file-system bytes: names may hold newlines or bytes that are not UTF-8.
    return os.fsencode(key).hex()


def _decode(text: str) -> str:
    return os.fsdecode(bytes.fromhex(text))


class CrashGuard:
    """The in-flight journal and the suspects it left; thread-safe."""

    def __init__(self, folder: Path) -> None:
        self._journal = folder / JOURNAL_NAME
        self._suspects_file = folder / SUSPECTS_NAME
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        self._in_flight: set[str] = set()
        self._suspects: dict[str, int] = {}
        self._failing = False

    def open(self) -> None:
        """Count the deaths the last run's journal shows, then start a new journal."""
        self._journal.parent.mkdir(parents=True, exist_ok=True)
        self._suspects = self._read_suspects()
        died_with = self._replay()
        for key in died_with:
            self._suspects[key] = self._suspects.get(key, 0) + 1
        if died_with:
            log.warning(
                "the last run ended abruptly with %d photo%s in flight; labelling %s one at a time",
                len(died_with),
                "" if len(died_with) == 1 else "s",
                "it" if len(died_with) == 1 else "them",
            )
            self._save_suspects()
        self._reopen(set())

    def close(self) -> None:
        """A clean stop: nothing is suspect for what was in flight."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            with contextlib.suppress(OSError):
                self._journal.unlink()

    def deaths(self, key: str) -> int:
        """How many abrupt ends found this photo in flight (0: not suspect)."""
        with self._lock:
            return self._suspects.get(key, 0)

    def taken(self, key: str) -> None:
        """A photo goes into flight."""
        with self._lock:
            self._in_flight.add(key)
            self._append(f"+{_encode(key)}\n")

    def done(self, key: str, *, finished: bool = True) -> None:
        """A photo left flight: finished (written, failed, skipped) or handed back."""
        with self._lock:
            self._in_flight.discard(key)
            self._append(f"-{_encode(key)}\n")
            if finished and self._suspects.pop(key, None) is not None:
                self._save_suspects()
            if self._size > COMPACT_AT_BYTES:
                self._reopen(set(self._in_flight))

    def _append(self, line: str) -> None:
        # No fsync: a crashed process's writes are in the page cache and survive it.
        if self._fd is None:
            return
        data = line.encode("ascii")
        try:
            os.write(self._fd, data)
            self._size += len(data)
            self._failing = False
        except OSError as exc:  # a full state disk costs the crash protection, not the photo
            if not self._failing:  # once per spell, not once per photo
                log.warning("cannot write %s: %s", self._journal, exc.strerror or exc)
            self._failing = True

    def _reopen(self, in_flight: set[str]) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            text = "".join(f"+{_encode(k)}\n" for k in sorted(in_flight))
            write_text_atomic(self._journal, text, 0o600)
            self._fd = os.open(self._journal, os.O_WRONLY | os.O_APPEND)
            self._size = len(text)
        except OSError as exc:
            log.warning("cannot keep %s: %s", self._journal, exc.strerror or exc)

    def _replay(self) -> set[str]:
        try:
            lines = self._journal.read_text("ascii").splitlines()
        except (OSError, ValueError):
            return set()
        taken: set[str] = set()
        for line in lines:
            try:
                key = _decode(line[1:])
            except ValueError:
                continue  # a line cut short by the death
            if line.startswith("+"):
                taken.add(key)
            elif line.startswith("-"):
                taken.discard(key)
        return taken

    def _read_suspects(self) -> dict[str, int]:
        try:
            data = json.loads(self._suspects_file.read_text("utf-8"))
            return {_decode(k): int(v) for k, v in data.items()}
        except (OSError, ValueError, AttributeError, TypeError):
            return {}

    def _save_suspects(self) -> None:
        data = {_encode(k): v for k, v in self._suspects.items()}
        try:
            write_text_atomic(self._suspects_file, json.dumps(data), 0o600)
        except OSError as exc:
            log.warning("cannot write %s: %s", self._suspects_file, exc.strerror or exc)
