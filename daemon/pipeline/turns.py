"""Turn-taking between decoding and inference, for models that use every core.

A multi-threaded interpreter waits at every layer for its slowest thread; a decode that runs
meanwhile on one of its cores stalls them all. Taking turns (decoders run only between
batches, then inference has every core to itself) measured faster for VGG16 here than
sharing the cores, even with the decoders at low priority.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

TURN_WAIT_S = 0.5  # a waiting decoder re-checks its stop flag this often


class Turns:
    """Decoders share a turn among themselves; inference waits for it and takes it alone."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._cond = threading.Condition()
        self._inferring = False
        self._decoding = 0
        self._waiting = 0  # decoders waiting for inference's turn to end

    def state(self) -> tuple[bool, int, int]:
        """(inference holds or awaits the turn, decodes running, decoders waiting)."""
        with self._cond:
            return self._inferring, self._decoding, self._waiting

    @contextlib.contextmanager
    def decoding(self, halt: threading.Event) -> Iterator[bool]:
        """Hold a decoder's turn; yields False if `halt` was set while waiting."""
        if not self.enabled:
            yield True
            return
        with self._cond:
            self._waiting += 1
            while self._inferring and not halt.is_set():
                self._cond.wait(TURN_WAIT_S)
            self._waiting -= 1
            if halt.is_set():
                yield False
                return
            self._decoding += 1
        try:
            yield True
        finally:
            with self._cond:
                self._decoding -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def inferring(self) -> Iterator[None]:
        """Hold inference's turn: no new decode starts, running ones finish first."""
        if not self.enabled:
            yield
            return
        with self._cond:
            self._inferring = True
            while self._decoding:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._inferring = False
                self._cond.notify_all()
