"""The labelling pipeline: decoders -> batching + inference lanes -> the writer, for one model."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from dropsight.config.settings import Settings
from dropsight.daemon.contracts import SidecarRecord
from dropsight.daemon.core.threads import Loop, join_all
from dropsight.daemon.photos.imaging import DEFAULT_LIMITS, PhotoLimits
from dropsight.daemon.pipeline.activity import Activity
from dropsight.daemon.pipeline.decode import Prepared, job_for, prepare
from dropsight.daemon.pipeline.jobs import Job, JobQueue
from dropsight.daemon.pipeline.labelling import Display, Rules, label
from dropsight.daemon.pipeline.turns import Turns
from dropsight.daemon.pipeline.writer import Labelled, Writer
from dropsight.daemon.runtime import budget
from dropsight.daemon.runtime.classifier import Classifier

log = logging.getLogger(__name__)

# Idle threads wake this seldom; stopping wakes them at once (queue interrupts, sentinels).
IDLE_WAIT_S = 5.0
PUT_WAIT_S = 0.5  # a decoder holding a photo re-checks its stop flag this often
BATCH_WAIT_S = 0.005  # how long a batch waits for one more decoded photo


@dataclass(frozen=True)
class Options:
    """What the stages need from the settings."""

    rules: Rules
    resize: str
    batch_size: int
    decoders: int = 0  # 0: from the budget
    cores: int = 0  # 0: all
    limits: PhotoLimits = DEFAULT_LIMITS

    @classmethod
    def of(cls, settings: Settings) -> Options:
        """The options the settings ask for."""
        m, s = settings.model, settings.service
        return cls(
            Rules.of(settings),
            m.resize,
            m.batch_size,
            s.decode_threads,
            s.cores,
            PhotoLimits.of(settings),
        )

    def plan(self, model_gflops: float) -> budget.Budget:
        """How the cores are shared for a model of this cost."""
        return budget.Request(self.batch_size, self.cores, self.decoders).plan(model_gflops)


class Pipeline:
    """Runs one classifier: `budget.decoders` decode threads feed `budget.lanes` inference
    threads through a bounded hand-off, which feed the shared writer.

    Stopping halts the decoders, lets each lane finish its batch, and puts decoded but
    unlabelled photos back in the queue, so a model switch loses and repeats nothing.
    """

    def __init__(
        self,
        classifier: Classifier,
        *,
        jobs: JobQueue,
        writer: Writer,
        activity: Activity,
        options: Options,
        display: Display,
        resumed: threading.Event,
        relabel: Callable[[], bool] = lambda: True,
    ) -> None:
        self.classifier = classifier
        self.budget = options.plan(classifier.info.gflops)
        self._jobs = jobs
        self._writer = writer
        self._activity = activity
        self._options = options
        self._display = display
        self._resumed = resumed
        self._relabel = relabel
        self._halt = threading.Event()
        self._turns = Turns(self.budget.take_turns)
        self._decoding = 0  # photos a decoder holds right now (they may join a batch)
        self._decoding_lock = threading.Lock()
        size = self.budget.batch_size * self.budget.lanes
        self._decoded: queue.Queue[Prepared | None] = queue.Queue(maxsize=2 * size)
        self._decoders = [
            Loop(f"decode-{i}", self._decode_one, self._halt) for i in range(self.budget.decoders)
        ]
        self._lanes = [
            Loop(f"infer-{i}", self._infer_batch, self._halt) for i in range(self.budget.lanes)
        ]

    @property
    def loops(self) -> list[Loop]:
        """Every thread of this pipeline."""
        return [*self._decoders, *self._lanes]

    def start(self) -> None:
        """Start (or restart any dead) decode and inference threads."""
        b = self.budget
        log.info(
            "labelling with %s: %d decoder(s), %d lane(s) x %d thread(s), batches up to %d",
            self.classifier.info.name,
            b.decoders,
            b.lanes,
            b.threads_per_lane,
            b.batch_size,
        )
        for loop in self.loops:
            loop.start()

    def stop(self, timeout_s: float) -> None:
        """Halt, let lanes finish their batch, and requeue what was decoded but not labelled."""
        self._halt.set()
        self._jobs.interrupt()
        for _ in self._lanes:  # wake idle lanes; busy ones see the flag after their batch
            with contextlib.suppress(queue.Full):
                self._decoded.put_nowait(None)
        join_all(self.loops, timeout_s)
        while True:
            try:
                item = self._decoded.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self._jobs.put_back(item.job.path, item.job.root)

    # --- decode stage -------------------------------------------------------------------------

    def _decode_one(self) -> None:
        if not self._resumed.wait(IDLE_WAIT_S):  # paused: nothing new is taken
            return
        job = self._jobs.take(IDLE_WAIT_S)
        if job is None:
            return
        if not self._resumed.is_set():  # paused while waiting: hand it back
            self._jobs.put_back(job.path, job.root)
            return
        with self._decoding_lock:
            self._decoding += 1
        try:
            self._decode_job(job)
        finally:
            with self._decoding_lock:
                self._decoding -= 1

    def _decode_job(self, job: Job) -> None:
        self._activity.started(job.path)
        info = self.classifier.info
        with self._turns.decoding(self._halt) as turn:
            if not turn:  # halted while waiting for the turn
                self._jobs.put_back(job.path, job.root)
                return
            item = prepare(
                job,
                info.input_size,
                self._options.resize,
                info.fingerprint,
                any_model=not self._relabel(),
                limits=self._options.limits,
            )
        if item.odd is not None:
            self._activity.odd(job.path, job.sidecar, item.odd)
            self._jobs.done(job.path)
            return
        if item.current or item.vanished:
            if item.current:
                self._activity.skipped_current()
            # The writer records a current photo's new identity (and marks it done then).
            if item.restamp is None or not self._writer.put(item, self._halt):
                self._jobs.done(job.path)
            return
        while not self._halt.is_set():
            try:
                self._decoded.put(item, timeout=PUT_WAIT_S)
                return
            except queue.Full:
                continue
        self._jobs.put_back(job.path, job.root)  # halted with the photo in hand

    # --- batching + inference stage -----------------------------------------------------------

    def _infer_batch(self) -> None:
        batch = self._take_batch()
        if not batch:
            return
        o = self._options
        try:
            with self._turns.inferring():
                records = label(self.classifier, batch, o.rules, self._display)
        except Exception:
            for item in batch:  # never strand taken photos in flight
                self._jobs.done(item.job.path)
            raise
        turns = self._turns if self._turns.enabled else None
        labelled = Labelled(batch, records, turns)
        if not self._writer.put(labelled, self._halt):
            self._writer.write(labelled)  # halted: write here, lose nothing

    def _take_batch(self) -> list[Prepared]:
        try:
            first = self._decoded.get(timeout=IDLE_WAIT_S)
        except queue.Empty:
            return []
        if first is None:  # stopping: pass the word on to the next lane
            self._wake_next_lane()
            return []
        batch = [first]
        fill_until = time.monotonic() + self.budget.fill_wait_s
        while len(batch) < self.budget.batch_size:
            wait_s = BATCH_WAIT_S
            if self._more_coming():
                wait_s = max(wait_s, fill_until - time.monotonic())
            try:
                item = self._decoded.get(timeout=wait_s)
            except queue.Empty:
                break
            if item is None:
                self._wake_next_lane()
                break
            batch.append(item)
        return batch

    def _more_coming(self) -> bool:
        """Photos waiting or being decoded, which could still join this batch."""
        return self._jobs.pending() > 0 or self._decoding > 0

    def _wake_next_lane(self) -> None:
        with contextlib.suppress(queue.Full):
            self._decoded.put_nowait(None)


# --- one-off labelling (`dropsight classify`, the API's classify) --------------------------------


def classify_file(classifier: Classifier, path: Path, options: Options) -> SidecarRecord:
    """Label one file now, as the service would (nothing is written)."""
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    size = classifier.info.input_size
    item = prepare(job_for(path), size, options.resize, limits=options.limits)
    return label(classifier, [item], options.rules, str)[0]


def classify_paths(
    classifier: Classifier,
    paths: Iterable[Path],
    options: Options,
    display: Display = str,
) -> Iterator[SidecarRecord]:
    """Label files in input order with the same stages as the service (nothing is written)."""
    plan = options.plan(classifier.info.gflops)
    size = classifier.info.input_size
    with ThreadPoolExecutor(max(plan.decoders, 1), thread_name_prefix="decode") as pool:
        window: deque[Future[Prepared]] = deque()
        batch: list[Prepared] = []

        def flush() -> Iterator[SidecarRecord]:
            yield from label(classifier, batch, options.rules, display)
            batch.clear()

        for path in paths:
            job = job_for(path)
            window.append(pool.submit(prepare, job, size, options.resize, limits=options.limits))
            if len(window) >= 2 * options.batch_size:  # bounded: a huge folder streams
                batch.append(window.popleft().result())
                if len(batch) == options.batch_size:
                    yield from flush()
        while window:
            batch.append(window.popleft().result())
            if len(batch) == options.batch_size:
                yield from flush()
        if batch:
            yield from flush()
