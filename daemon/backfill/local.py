"""`dropsight backfill`: label a whole existing library as one batch job, with progress.

Local runs use the service's own stages (queue -> decoders -> inference lanes -> writer ->
index/XMP sinks) with the same skip rule, so the contract is the service's exactly; `--ray`
spreads the same work over a Ray cluster (daemon/backfill/on_ray.py). Killed at any moment, a
run loses nothing: the next one does only what is left.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dropsight.config.settings import Settings
from dropsight.daemon.outputs import sidecar
from dropsight.daemon.outputs.registry import ResultSink
from dropsight.daemon.photos.filter import PhotoFilter, stale_temp_files
from dropsight.daemon.pipeline.activity import Activity
from dropsight.daemon.pipeline.jobs import JobQueue
from dropsight.daemon.pipeline.stages import Options, Pipeline
from dropsight.daemon.pipeline.writer import Writer
from dropsight.daemon.runtime.classifier import Classifier

POLL_S = 0.2
STOP_TIMEOUT_S = 60.0


@dataclass
class Summary:
    """What a backfill did."""

    model: str = ""
    mode: str = "local"
    found: int = 0  # photos under the folders
    skipped: int = 0  # current already
    done: int = 0
    failed: int = 0
    unreachable: int = 0  # Ray: photos here that their worker's node could not read
    seconds: float = 0.0
    nodes: dict[str, int] = field(default_factory=dict)  # Ray: photos labelled per node

    @property
    def rate(self) -> float:
        """Photos labelled per second."""
        return (self.done + self.failed) / self.seconds if self.seconds else 0.0

    def as_json(self) -> dict[str, Any]:
        """The summary for `--json`."""
        return {**asdict(self), "img_per_s": round(self.rate, 2), "seconds": round(self.seconds, 1)}

    def text(self) -> str:
        """One line for people."""
        unreachable = f", {self.unreachable} unreadable on Ray's nodes" if self.unreachable else ""
        return (
            f"{self.done} labelled, {self.failed} failed{unreachable}, {self.skipped} already "
            f"current (of {self.found}) in {self.seconds:.1f} s ({self.rate:.1f} photos/s, "
            f"{self.model})"
        )


def to_do(
    settings: Settings, roots: Iterable[Path], fingerprint: str, summary: Summary
) -> Iterator[tuple[Path, Path]]:
    """(photo, root) for every photo whose sidecar is not current: the service's skip rule.

    Temp files a killed run left behind (older than this walk) are removed on the way.
    """
    photo_filter = PhotoFilter.from_settings(settings.watch)
    layout = sidecar.Layout.of(settings)
    born = time.time_ns()
    for root in roots:
        for folder in {root, layout.out_folder or root}:
            for tmp in stale_temp_files(folder, settings.watch.recursive):
                with contextlib.suppress(OSError):
                    if tmp.stat().st_mtime_ns < born:
                        tmp.unlink()
        for photo in photo_filter.walk(root, settings.watch.recursive):
            summary.found += 1
            state = sidecar.scan_state(photo, layout.sidecar_for(photo, root), fingerprint)
            if state == "current":
                summary.skipped += 1
            else:
                yield photo, root


class Stages:
    """The service's stages for a batch job: queue -> decoders -> inference lanes -> writer.

    `run_local` drives one on this machine; each Ray node runs one in its backfill actor.
    """

    def __init__(
        self, settings: Settings, classifier: Classifier, sinks: Sequence[ResultSink]
    ) -> None:
        layout = sidecar.Layout.of(settings)
        self.jobs, self.activity = JobQueue(layout.job_for), Activity()
        self._writer = Writer(self.jobs, self.activity, sinks)
        self._writer.configure(settings)
        resumed = threading.Event()
        resumed.set()
        self._pipeline = Pipeline(
            classifier,
            jobs=self.jobs,
            writer=self._writer,
            activity=self.activity,
            options=Options.of(settings),
            display=layout.display_path,
            resumed=resumed,
        )

    def start(self) -> None:
        """Start the writer, decoders and inference lanes."""
        self._writer.start()
        self._pipeline.start()

    def put(self, photo: Path, root: Path) -> None:
        """Queue a photo (as backlog: a scan found it)."""
        self.jobs.put(photo, root, fresh=False)

    def busy(self) -> bool:
        """Whether photos wait or are being labelled."""
        return self.jobs.pending() + self.jobs.in_flight() > 0

    def close(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the stages (the one shutdown path); what was labelled is written."""
        self._pipeline.stop(timeout_s)
        self._writer.close(timeout_s)


def run_local(
    settings: Settings,
    roots: Sequence[Path],
    classifier: Classifier,
    sinks: Sequence[ResultSink],
    *,
    dry_run: bool = False,
    stop: threading.Event | None = None,
) -> Summary:
    """Label what is left under `roots` with the service's stages on this machine."""
    from dropsight.daemon.core.progress import bar

    summary = Summary(model=classifier.info.name)
    work = list(to_do(settings, roots, classifier.info.fingerprint, summary))
    if dry_run or not work:
        return summary
    stop = stop or threading.Event()
    stages = Stages(settings, classifier, sinks)
    for photo, root in work:
        stages.put(photo, root)
    started = time.monotonic()
    stages.start()
    activity = stages.activity
    try:
        with bar(len(work), desc="backfill") as shown:
            while stages.busy() and not stop.wait(POLL_S):
                shown.update(activity.done + activity.failed - shown.n)
            shown.update(activity.done + activity.failed - shown.n)
    finally:
        stages.close()
        summary.seconds = time.monotonic() - started
        summary.done, summary.failed = activity.done, activity.failed
    return summary
