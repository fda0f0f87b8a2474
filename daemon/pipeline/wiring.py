"""The stages wired once, for the service and for backfill alike."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from dropsight.config.settings import Settings
from dropsight.daemon.outputs.registry import Outputs
from dropsight.daemon.outputs.sidecar import Layout
from dropsight.daemon.pipeline.activity import Activity
from dropsight.daemon.pipeline.jobs import Guard, Job, JobFactory, JobQueue
from dropsight.daemon.pipeline.stages import Options, Pipeline
from dropsight.daemon.pipeline.writer import Writer
from dropsight.daemon.runtime.classifier import Classifier


def job_factory(layout: Layout) -> JobFactory:
    """Jobs of photos found under a folder, their sidecar where `layout` puts it."""

    def make(photo: Path, root: Path) -> Job:
        return Job(photo, root, layout.sidecar_for(photo, root))

    return make


class Stages:
    """queue -> decoders -> inference lanes -> the writer -> the outputs, for one run.

    The queue, the writer and the outputs live as long as the run; the model's part, a
    Pipeline, is made here too, and the service replaces it when the model changes.
    """

    def __init__(self, settings: Settings, outputs: Outputs, guard: Guard | None = None) -> None:
        self.layout = Layout.of(settings)
        self.outputs = outputs
        self.jobs = JobQueue(job_factory(self.layout), guard)
        self.activity = Activity()
        self.writer = Writer(self.jobs, self.activity, outputs)

    def pipeline(
        self,
        classifier: Classifier,
        options: Options,
        resumed: threading.Event,
        relabel: Callable[[], bool] = lambda: True,
    ) -> Pipeline:
        """Decoders and inference lanes for `classifier`, feeding this run's writer."""
        return Pipeline(
            classifier,
            jobs=self.jobs,
            writer=self.writer,
            activity=self.activity,
            options=options,
            display=self.layout.display_path,
            resumed=resumed,
            relabel=relabel,
        )

    def close(self, timeout_s: float) -> None:
        """After the pipeline stopped: write what was labelled, then close the outputs."""
        deadline = time.monotonic() + timeout_s
        self.writer.close(timeout_s / 2)
        self.outputs.close(max(0.0, deadline - time.monotonic()))
