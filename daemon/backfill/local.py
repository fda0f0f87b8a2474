"""`dropsight backfill`: label a whole existing library as one batch job, with progress.

Local runs use the service's own stages (queue -> decoders -> inference lanes -> writer ->
index/XMP outputs) with the same skip rule, so the contract is the service's exactly; `--ray`
spreads the same work over a Ray cluster (daemon/backfill/on_ray.py). Killed at any moment, a
run loses nothing: the next one does only what is left.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dropsight.config.settings import Settings
from dropsight.daemon.core.atomic import remove_stale_temp_files
from dropsight.daemon.outputs import sidecar
from dropsight.daemon.outputs.protocol import Output
from dropsight.daemon.outputs.registry import Entry, Outputs
from dropsight.daemon.photos.filter import PhotoFilter
from dropsight.daemon.pipeline.stages import Options
from dropsight.daemon.pipeline.wiring import Stages
from dropsight.daemon.runtime.classifier import Classifier

log = logging.getLogger(__name__)

POLL_S = 0.2
STOP_TIMEOUT_S = 60.0


def backfill_outputs(
    extra: Sequence[Output] = (), entries: Sequence[Entry] | None = None
) -> Outputs:
    """The registry's outputs of a backfill (index, XMP), and `extra` listeners of the run's
    own; failures go to the log."""

    def report(path: Path | None, message: str) -> None:
        log.warning("%s%s", f"{path}: " if path else "", message)

    return Outputs("backfill", report, extra=extra, entries=entries)


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
    odd: int = 0  # photos whose sidecar's place holds a file not ours: left alone
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
        if self.odd:
            unreachable += f", {self.odd} skipped (their .json is not a Dropsight sidecar)"
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
            remove_stale_temp_files(folder, settings.watch.recursive, born)
        for photo in photo_filter.walk(root, settings.watch.recursive):
            summary.found += 1
            json_path = layout.sidecar_for(photo, root)
            try:
                state = sidecar.scan_state(photo, json_path, fingerprint)
            except Exception:  # one bad file costs itself, never the run
                log.exception("looking at %s failed; skipped", photo)
                summary.failed += 1
                continue
            if state == "current":
                summary.skipped += 1
            elif state == "odd":
                summary.odd += 1
                reason = sidecar.load(json_path).reason
                log.warning("%s is not a Dropsight sidecar (%s): left as it is", json_path, reason)
            else:
                yield photo, root


class Batch:
    """The service's stages (pipeline/wiring.py) for a batch job: one model, no watching.

    `run_local` drives one on this machine; each Ray node runs one in its backfill actor.
    """

    def __init__(self, settings: Settings, classifier: Classifier, outputs: Outputs) -> None:
        self._stages = Stages(settings, outputs)
        self.jobs, self.activity = self._stages.jobs, self._stages.activity
        outputs.configure(settings)
        resumed = threading.Event()
        resumed.set()
        self._pipeline = self._stages.pipeline(classifier, Options.of(settings), resumed)

    def start(self) -> None:
        """Start the writer, decoders and inference lanes."""
        self._stages.writer.start()
        self._pipeline.start()

    def put(self, photo: Path, root: Path) -> None:
        """Queue a photo (as backlog: a scan found it)."""
        self.jobs.put(photo, root, fresh=False)

    def busy(self) -> bool:
        """Whether photos wait or are being labelled."""
        return self.jobs.pending() + self.jobs.in_flight() > 0

    def close(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the stages (the one shutdown path); what was labelled is written and handed
        to the outputs."""
        self._pipeline.stop(timeout_s)
        self._stages.close(timeout_s)


def run_local(
    settings: Settings,
    roots: Sequence[Path],
    classifier: Classifier,
    *,
    outputs: Outputs | None = None,
    dry_run: bool = False,
    stop: threading.Event | None = None,
) -> Summary:
    """Label what is left under `roots` with the service's stages on this machine.

    `outputs`: the registry's backfill outputs unless given (index and XMP).
    """
    from dropsight.daemon.core.progress import bar

    summary = Summary(model=classifier.info.name)
    work = list(to_do(settings, roots, classifier.info.fingerprint, summary))
    if dry_run or not work:
        return summary
    stop = stop or threading.Event()
    stages = Batch(settings, classifier, outputs or backfill_outputs())
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
