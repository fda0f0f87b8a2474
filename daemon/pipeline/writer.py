"""The writing stage, the one writer of sidecars: written atomically and durably, then
status, logs and the outputs."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dropsight.daemon.contracts import SidecarRecord
from dropsight.daemon.core.threads import Loop
from dropsight.daemon.labels.names import display_name
from dropsight.daemon.outputs import sidecar
from dropsight.daemon.outputs.protocol import Written
from dropsight.daemon.outputs.registry import Outputs
from dropsight.daemon.pipeline.activity import Activity
from dropsight.daemon.pipeline.decode import Prepared
from dropsight.daemon.pipeline.jobs import JobQueue
from dropsight.daemon.pipeline.retry import Held, WriteRetries, is_permanent
from dropsight.daemon.pipeline.turns import Turns

log = logging.getLogger(__name__)

INBOX_BATCHES = 8  # labelled batches waiting to be written before inference waits
IDLE_WAIT_S = 5.0  # an idle writer wakes this seldom; close() wakes it at once
PUT_WAIT_S = 0.5


@dataclass(frozen=True)
class Labelled:
    """A labelled batch on its way to disk."""

    items: Sequence[Prepared]
    records: Sequence[SidecarRecord]
    # Heavy models: the writing waits for inference's turn to end, like decoding does.
    turns: Turns | None = None


class Writer:
    """Writes each labelled batch; one photo's failure is that photo's error, never the stage's.

    Every labelled photo ends here (`queue.done`), written or not, so nothing stays in
    flight; so do photos found current whose sidecar should record their identity anew.
    """

    def __init__(self, queue_: JobQueue, activity: Activity, outputs: Outputs) -> None:
        self._queue = queue_
        self._activity = activity
        self._outputs = outputs
        self.retries = WriteRetries()
        self._held_now: set[Path] = set()  # held by the write being done (writer thread only)
        self._inbox: queue.Queue[Labelled | Prepared | None] = queue.Queue(maxsize=INBOX_BATCHES)
        self._stop = threading.Event()
        self._closes_by = math.inf  # when close() must be done: outputs stop holding us then
        self.loop = Loop("writer", self._step, self._stop)

    def start(self) -> None:
        """Start the writing thread."""
        self.loop.start()

    def put(self, batch: Labelled | Prepared, stop: threading.Event) -> bool:
        """Hand a batch over (or a photo found current, to restamp), waiting while the writer
        is behind; False if `stop` came first."""
        while not stop.is_set():
            try:
                self._inbox.put(batch, timeout=PUT_WAIT_S)
                return True
            except queue.Full:
                continue
        return False

    def close(self, timeout_s: float) -> None:
        """Stop after writing what was handed over (labels already paid for)."""
        self._closes_by = time.monotonic() + timeout_s
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._inbox.put_nowait(None)  # wake the thread if it is waiting
        self.loop.join(timeout_s)
        while True:
            try:
                batch = self._inbox.get_nowait()
            except queue.Empty:
                break
            if batch is not None:
                self.write(batch)
        self._retry(self.retries.take_all())  # one last attempt each
        left = self.retries.take_all()
        for held in left:
            self.retries.release(held.item.job.path)
            self._queue.done(held.item.job.path)
        if left:
            log.warning(
                "%d sidecar%s could not be written; the next start labels %s again",
                len(left),
                "" if len(left) == 1 else "s",
                "it" if len(left) == 1 else "them",
            )

    def _step(self) -> None:
        wait_s = self.retries.next_due_in()
        try:
            batch = self._inbox.get(timeout=IDLE_WAIT_S if wait_s is None else wait_s)
        except queue.Empty:
            batch = None
        if batch is not None:
            self.write(batch)
        self._retry(self.retries.take_due())

    def write(self, batch: Labelled | Prepared) -> None:
        """Write one batch's sidecars, then tell the outputs; every photo is marked done."""
        if isinstance(batch, Prepared):
            self._restamp(batch)
            return
        if batch.turns is None:
            self._write(batch)
            return
        with batch.turns.decoding(self._stop):  # also ends at once when stopping
            self._write(batch)

    def _write(self, batch: Labelled) -> None:
        written: list[Written] = []
        try:
            for item, record in zip(batch.items, batch.records, strict=True):
                if self._write_one(item, record):
                    written.append(Written(item.job.path, item.job.root, item.job.sidecar, record))
            self._hand_over(written)
        finally:
            self._done([item.job.path for item in batch.items])
        self._after(written)

    def _retry(self, due: Sequence[Held]) -> None:
        """Try held writes again; each one written or gone leaves the queue at last."""
        if not due:
            return
        written: list[Written] = []
        finished: list[Path] = []
        try:
            for held in due:
                job = held.item.job
                if held.requeue:  # it could not be read: read and label it again
                    self.retries.release(job.path)
                    self._queue.put_back(job.path, job.root)
                    continue
                if self._write_one(held.item, held.record, held):
                    log.info("wrote %s after %d failed attempts", job.sidecar, held.attempts)
                    written.append(Written(job.path, job.root, job.sidecar, held.record))
                finished.append(job.path)
            self._hand_over(written)
        finally:
            for path in finished:
                if path not in self._held_now:
                    self.retries.release(path)
            self._done(finished)
        self._after(written)

    def _hand_over(self, written: list[Written]) -> None:
        # Before the photos are done: a photo is done once its outputs have it (a Ray node
        # hands back what its outputs got as soon as the queue lets go of the photo).
        self._outputs.accept(written, lambda: self._closes_by)

    def _done(self, paths: Sequence[Path]) -> None:
        """Let go of photos taken from the queue (but those held for a retry)."""
        for path in paths:
            if path not in self._held_now:
                self._queue.done(path)
        self._held_now.clear()

    def _after(self, written: list[Written]) -> None:
        if written:
            self.retries.nudge()
        waiting = self.retries.waiting()
        for root in {w.root for w in written}:
            if not waiting[root]:  # a folder is healthy again only when nothing there waits
                self._activity.write_recovered(root)
        if self._queue.pending() == 0 and self._queue.in_flight() == 0:
            self._activity.burst_finished()

    def _restamp(self, item: Prepared) -> None:
        """A photo found current: its sidecar records the identity it was read with."""
        try:
            if item.restamp is not None and item.facts is not None:
                sidecar.mark_verified(item.job.sidecar, item.restamp, item.facts)
        finally:
            self._queue.done(item.job.path)

    def _write_one(self, item: Prepared, record: SidecarRecord, held: Held | None = None) -> bool:
        """Write one sidecar; a failure that may pass (full disk) holds it for a retry."""
        job = item.job
        if item.vanished or not os.path.lexists(job.path):
            log.info("%s is gone; no sidecar written", job.path)
            return False
        if item.error is not None and item.error.kind == "busy":
            # Out of descriptors or memory when it was read: not the photo's fault.
            self._hold(item, record, str(item.error), held, requeue=True)
            return False
        loaded = sidecar.load(job.sidecar)
        if loaded.kind == "odd":  # appeared meanwhile, or `classify`: never written over
            self._activity.odd(job.path, job.sidecar, loaded.reason)
            return False
        try:
            sidecar.write(job.sidecar, record)
        except OSError as exc:
            message = f"cannot write {job.sidecar}: {exc.strerror or exc}"
            if is_permanent(exc):
                log.error("%s", message)
                self._activity.write_failed(job.path, job.root, message)
                return False
            self._hold(item, record, message, held)
            return False
        except Exception as exc:  # a bug costs this photo, never the stage
            log.exception("writing %s failed", job.sidecar)
            self._activity.write_failed(job.path, job.root, f"cannot write {job.sidecar}: {exc}")
            return False
        if not os.path.lexists(job.path):  # deleted while we wrote: no orphan left behind
            with contextlib.suppress(OSError):
                job.sidecar.unlink()
            log.info("%s went while its sidecar was written; removed the sidecar", job.path)
            return False
        ms = (time.monotonic() - item.started) * 1000
        self._activity.written(job.path, job.sidecar, job.root, record)
        _log_result(job.path, record, ms)
        return True

    def _hold(
        self,
        item: Prepared,
        record: SidecarRecord,
        message: str,
        held: Held | None,
        *,
        requeue: bool = False,
    ) -> None:
        """Keep a photo in flight for a retry; the folder shows it waiting meanwhile."""
        job = item.job
        again = self.retries.hold(item, record, message, requeue=requeue)
        self._held_now.add(job.path)
        waiting = sum(self.retries.waiting().values())
        if held is None:  # the first failure is news; the retries are not
            log.error("%s (will retry)", message)
            self._activity.error(job.path, f"{message} (will retry)")
        else:
            log.debug("%s (attempt %d)", message, again.attempts)
        self._activity.write_waiting(job.root, f"{message}; {waiting} waiting to be written")


def _log_result(photo: Path, record: SidecarRecord, ms: float) -> None:
    """One concise line per photo."""
    if record["status"] == "ok" and record["predictions"]:
        top = record["predictions"][0]
        label = display_name(top)
        log.info("%s: %s %.0f%% (%.0f ms)", photo.name, label, top["score"] * 100, ms)
    elif record["status"] == "ok":
        log.info("%s: no label above the minimum score (%.0f ms)", photo.name, ms)
    else:
        error = record["error"] or {"type": "?", "message": ""}
        log.warning("%s: %s: %s", photo, error["type"], error["message"])
