"""Photos the service could not read: a chmod or chown that fixes one is worth a retry."""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from dropsight.config.settings import Settings
from dropsight.daemon.outputs.protocol import Written

MAX_REMEMBERED = 10_000  # a folder of unreadable photos must not grow memory without bound


class Unreadable:
    """An output that remembers photos recorded as unreadable, until a record says otherwise.

    Attribute events (chmod, chown, but also every `touch`) ask `retry`; only a remembered
    photo that can now be opened is worth labelling again, so a touch costs a dict lookup.
    """

    name = "unreadable photos"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: OrderedDict[Path, None] = OrderedDict()

    def configure(self, settings: Settings) -> None:
        """Nothing to configure."""

    def accept(self, batch: Sequence[Written]) -> None:
        """Remember photos whose record says unreadable; forget those labelled since."""
        with self._lock:
            for written in batch:
                error = written.record["error"]
                if error is not None and error["type"] == "unreadable":
                    self._paths[written.photo] = None
                    self._paths.move_to_end(written.photo)
                    if len(self._paths) > MAX_REMEMBERED:
                        self._paths.popitem(last=False)
                else:
                    self._paths.pop(written.photo, None)

    def forget(self, photo: Path, root: Path) -> None:
        """A photo gone is nobody's to retry."""
        with self._lock:
            self._paths.pop(photo, None)

    def close(self) -> None:
        """Nothing to release."""

    def retry(self, path: Path) -> bool:
        """True, once, when `path` was unreadable and can be opened now."""
        with self._lock:
            if path not in self._paths:
                return False
        if not _can_open(path):
            return False  # an attribute change that did not help (or a touch)
        with self._lock:
            if path not in self._paths:
                return False  # taken meanwhile by another event
            del self._paths[path]
            return True


def _can_open(path: Path) -> bool:
    # Opening, not os.access: access() checks the real ids and ignores what capabilities
    # allow. Non-blocking, so a FIFO named like a photo cannot hang the observer's thread.
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    with contextlib.suppress(OSError):
        os.close(fd)
    return True
