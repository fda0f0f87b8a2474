"""The one output registry: every output, and their lifecycle for the service and backfill.

An output (outputs/protocol.py) hears of each result written, each photo forgotten (deleted
or moved away), each settings change, and is closed within a deadline. To add one, write
its class and add one line to OUTPUTS.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal, TypeVar

from dropsight.config.settings import Settings
from dropsight.daemon.outputs.events import EventHub
from dropsight.daemon.outputs.hooks import HOOK_BACKLOG, HookSink
from dropsight.daemon.outputs.index.sync import IndexSink
from dropsight.daemon.outputs.protocol import Context, Found, OnError, Output, WalkObserver, Written
from dropsight.daemon.outputs.sidecar import SidecarFiles
from dropsight.daemon.outputs.worker import Worker
from dropsight.daemon.outputs.xmp.sync import XmpSink

log = logging.getLogger(__name__)

Run = Literal["service", "backfill"]
BOTH: tuple[Run, ...] = ("service", "backfill")
# Results an output may lag behind before the writer waits (or the output skips): small
# enough to be done within a close deadline. Walked photos (index repair, XMP catch-up) may
# wait in greater number; past that they are skipped and the next walk catches up.
BACKLOG = 1000
WALK_BACKLOG = 100_000


@dataclass(frozen=True)
class Entry:
    """One line of the registry: how to make an output, and where and how it runs."""

    make: Callable[[Context], Output]
    runs: tuple[Run, ...] = BOTH
    backlog: int = BACKLOG
    walk_backlog: int = WALK_BACKLOG
    # A full backlog: "wait" holds the writer back (nothing lost), "skip" drops results.
    when_full: Literal["wait", "skip"] = "wait"
    own_thread: bool = True  # False: cheap and non-blocking, runs on the caller's thread


OUTPUTS: list[Entry] = [
    # The writer stage writes sidecars; this forgets them (a quick unlink: no thread needed).
    Entry(SidecarFiles, own_thread=False),
    Entry(IndexSink),
    Entry(XmpSink),
    # Hooks are for live results, not a library's backlog; a slow one never holds labelling.
    Entry(HookSink, ("service",), backlog=HOOK_BACKLOG, when_full="skip"),
    Entry(lambda _ctx: EventHub(), ("service",), own_thread=False),
]

T = TypeVar("T")


def _forever() -> float:
    return math.inf


class _Slot:
    """One output as a run holds it: the output, and its worker unless it runs inline."""

    def __init__(self, output: Output, worker: Worker | None = None, wait: bool = True) -> None:
        self.output = output
        self.worker = worker
        self.wait = wait
        self.walk_lost = False  # part of the current walk was skipped (backlog full)

    @classmethod
    def of(cls, entry: Entry, on_error: OnError, request_walk: Callable[[], None]) -> _Slot:
        """Make the output of a registry line, with its worker."""
        if not entry.own_thread:
            return cls(entry.make(Context(on_error, request_walk)))
        worker = Worker(entry.backlog, entry.walk_backlog)
        output = entry.make(Context(on_error, request_walk, worker.closing, worker.time_left))
        worker.name_after(output.name)
        return cls(output, worker, entry.when_full == "wait")

    def call(
        self,
        run: Callable[[], None],
        photos: int = 1,
        *,
        wait_until: Callable[[], float] = _forever,
        redoable: bool = False,
    ) -> bool:
        """Run on the output's thread (or this one); False when skipped. A full backlog
        holds the caller until `wait_until()` if the output's line says "wait"."""
        if self.worker is None:
            try:
                run()
            except Exception:
                log.exception("output %s failed", self.output.name)
            return True
        hold = wait_until if self.wait and not redoable else None
        return self.worker.put(run, photos, wait_until=hold, redoable=redoable)


class Outputs:
    """The outputs of one run (the service, a backfill), made from the registry's lines.

    The writer hands results to `accept`; deletions and moves come to `forget`; the
    scanner's walks reach the outputs that follow them. Also a WalkObserver itself.
    """

    def __init__(
        self,
        run: Run,
        on_error: OnError,
        *,
        request_walk: Callable[[], None] = lambda: None,
        extra: Sequence[Output] = (),
        entries: Sequence[Entry] | None = None,
    ) -> None:
        lines = OUTPUTS if entries is None else entries
        self._slots = [_Slot.of(e, on_error, request_walk) for e in lines if run in e.runs]
        # The run's own listeners (cheap, non-blocking): on the caller's thread.
        self._slots += [_Slot(output) for output in extra]
        self._walkers = [s for s in self._slots if isinstance(s.output, WalkObserver)]

    @property
    def names(self) -> list[str]:
        """The outputs' names, in registry order."""
        return [slot.output.name for slot in self._slots]

    def get(self, kind: type[T]) -> T:
        """The output of this class (e.g. the EventHub the API streams from)."""
        for slot in self._slots:
            if isinstance(slot.output, kind):
                return slot.output
        raise LookupError(f"no {kind.__name__} among the outputs {self.names}")

    def configure(self, settings: Settings) -> None:
        """Hand (changed) settings to every output, on this thread."""
        for slot in self._slots:
            try:
                slot.output.configure(settings)
            except Exception:
                log.exception("configuring output %s failed", slot.output.name)

    def accept(self, batch: Sequence[Written], wait_until: Callable[[], float] = _forever) -> None:
        """Results just written. A slow output's full backlog holds this call until there is
        room (nothing lost) or the time `wait_until()` returns (the writer closing)."""
        if not batch:
            return
        batch = tuple(batch)
        for slot in self._slots:
            slot.call(partial(slot.output.accept, batch), len(batch), wait_until=wait_until)

    def forget(self, photo: Path, root: Path) -> None:
        """`photo` is gone (deleted, moved out of the watched folders): each output forgets
        it its own way. Nothing happens if it is back already (an editor that deletes and
        writes anew); each output checks that again when its turn comes."""
        if os.path.lexists(photo):
            return
        for slot in self._slots:
            slot.call(partial(_forget, slot.output, photo, root))

    # --- WalkObserver: the scanner's walks, to the outputs that follow them ----------------

    def walk_started(self, root: Path) -> None:
        """A walk of `root` begins."""
        for slot in self._walkers:
            observer: WalkObserver = slot.output  # type: ignore[assignment]
            slot.walk_lost = not slot.call(partial(observer.walk_started, root), 0, redoable=True)

    def walked(self, found: Sequence[Found]) -> None:
        """Photos the walk passed; an output too far behind skips them (the walk then counts
        as incomplete for it, and the next one catches up)."""
        for slot in self._walkers:
            observer: WalkObserver = slot.output  # type: ignore[assignment]
            if not slot.call(partial(observer.walked, found), len(found), redoable=True):
                slot.walk_lost = True

    def walk_finished(self, root: Path, complete: bool) -> None:
        """The walk of `root` ended."""
        for slot in self._walkers:
            observer: WalkObserver = slot.output  # type: ignore[assignment]
            whole = complete and not slot.walk_lost
            slot.call(partial(observer.walk_finished, root, whole), 0, redoable=True)

    def close(self, timeout_s: float) -> None:
        """Close every output within one shared deadline, side by side."""
        deadline = time.monotonic() + timeout_s
        for slot in self._slots:
            if slot.worker is not None:
                slot.worker.close(deadline, slot.output.close)
            else:
                try:
                    slot.output.close()
                except Exception:
                    log.exception("closing output %s failed", slot.output.name)
        for slot in self._slots:
            if slot.worker is not None:
                slot.worker.wait_closed()


def _forget(output: Output, photo: Path, root: Path) -> None:
    if not os.path.lexists(photo):
        output.forget(photo, root)
