"""Sidecars that could not be written (full disk, no descriptors): held and tried again.

Photos that could not be read for want of descriptors or memory wait here too, to be read
and labelled again rather than recorded as unreadable.
"""

from __future__ import annotations

import errno
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from dropsight.daemon.contracts import SidecarRecord
from dropsight.daemon.pipeline.decode import Prepared

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 60.0  # a disk that stays full is tried once a minute: a small write, no labelling
# Failures no retry can cure: the name itself is impossible on this file system.
PERMANENT = frozenset({errno.ENAMETOOLONG, errno.EINVAL})


def is_permanent(exc: OSError) -> bool:
    """True for write failures that would fail the same way every time."""
    return exc.errno in PERMANENT


@dataclass
class Held:
    """One labelled photo whose sidecar waits to be written."""

    item: Prepared
    record: SidecarRecord
    message: str
    attempts: int = 1
    requeue: bool = False  # not written: read and label it again (it could not be read)
    tried: float = 0.0
    due: float = 0.0


class WriteRetries:
    """Labelled photos waiting for their sidecar, tried again with exponential backoff.

    The labels are kept (they were paid for) and the photo stays in flight in the queue, so
    status counts it as waiting and a change to it meanwhile queues it again once written.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[Path, Held] = {}

    def hold(
        self, item: Prepared, record: SidecarRecord, message: str, *, requeue: bool = False
    ) -> Held:
        """Keep a failed write; its next attempt is due after a growing delay."""
        with self._lock:
            held = self._held.get(item.job.path)
            if held is None:
                # Without the pixels (600 KB each): a full disk may hold thousands.
                held = Held(replace(item, pixels=None), record, message, requeue=requeue)
                self._held[item.job.path] = held
            else:
                held.attempts += 1
                held.record, held.message = record, message
            delay = min(FIRST_DELAY_S * 2 ** (held.attempts - 1), MAX_DELAY_S)
            held.tried = time.monotonic()
            held.due = held.tried + delay
            return held

    def nudge(self) -> None:
        """A write just succeeded, so space (or descriptors) may be back: try soon."""
        with self._lock:
            for held in self._held.values():
                held.due = min(held.due, held.tried + FIRST_DELAY_S)

    def release(self, photo: Path) -> None:
        """Forget a photo (written at last, or gone)."""
        with self._lock:
            self._held.pop(photo, None)

    def take_due(self, now: float | None = None) -> list[Held]:
        """The held writes whose next attempt is due (they stay held until released)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return [h for h in self._held.values() if h.due <= now]

    def take_all(self) -> list[Held]:
        """Every held write (shutdown: one last attempt each)."""
        with self._lock:
            return list(self._held.values())

    def next_due_in(self) -> float | None:
        """Seconds until the next attempt is due, or None when nothing is held."""
        with self._lock:
            if not self._held:
                return None
            return max(0.0, min(h.due for h in self._held.values()) - time.monotonic())

    def waiting(self) -> Counter[Path]:
        """How many photos wait for their sidecar, by watched folder."""
        with self._lock:
            return Counter(h.item.job.root for h in self._held.values())
