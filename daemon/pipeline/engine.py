"""The model and its pipeline: loaded in the background, switched between batches on request."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from dropsight.config.settings import Settings
from dropsight.daemon.contracts import MissingModel, ModelStatus, PipelineStatus
from dropsight.daemon.core.threads import Loop
from dropsight.daemon.models import registry
from dropsight.daemon.models.fetcher import ModelFetcher
from dropsight.daemon.pipeline.stages import Options, Pipeline
from dropsight.daemon.pipeline.wiring import Stages
from dropsight.daemon.runtime.classifier import Classifier

log = logging.getLogger(__name__)

SWITCH_TIMEOUT_S = 60.0  # the old model's batch in flight (VGG16: a few seconds) finishes
REQUEST_WAIT_S = 5.0  # an idle loader wakes this seldom; reload() and stop wake it at once


class Engine:
    """Loads the configured model (or its fallback) off the main thread and runs it.

    `reload()` loads again (e.g. after `dropsight models get vgg16`): a different model
    replaces the running one between batches, without a restart; the batch in flight
    finishes on the old model, and every sidecar names the model that produced it.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        factory: Callable[[Settings], Classifier],
        stages: Stages,
        resumed: threading.Event,
        relabel: Callable[[], bool],
        on_switched: Callable[[Classifier], None],
        stop: threading.Event,
    ) -> None:
        self._settings = settings
        self._factory = factory
        self._stages = stages
        self._activity = stages.activity
        self._resumed = resumed
        self._relabel = relabel
        self._on_switched = on_switched
        self._lock = threading.Lock()
        self._pipeline: Pipeline | None = None
        self._running_options: Options | None = None
        self.error: str | None = None
        self._request = threading.Event()
        self._request.set()  # the first load
        self._stop = stop
        self.fetcher = ModelFetcher(on_fetched=self.reload)
        self.loop = Loop("models", self._step, stop)

    @property
    def classifier(self) -> Classifier | None:
        """The model labelling now (None while the first load runs or after it failed)."""
        with self._lock:
            return self._pipeline.classifier if self._pipeline else None

    def configure(self, settings: Settings) -> None:
        """Use these settings from the next (re)load on."""
        self._settings = settings

    def reload(self) -> None:
        """Resolve the configured model again; switch if something better is now available."""
        self._request.set()

    def check(self) -> None:
        """Restart any pipeline thread that died (each step is guarded; this is the backstop)."""
        with self._lock:
            pipeline = self._pipeline
        if pipeline is not None and not all(loop.alive for loop in pipeline.loops):
            log.warning("restarting stopped labelling threads")
            pipeline.start()

    def stop(self, timeout_s: float) -> None:
        """Stop the pipeline (the loader thread ends with the service's stop Event)."""
        self._request.set()  # wake the loader so it sees the stop
        self.fetcher.stop(timeout_s)
        with self._lock:
            pipeline = self._pipeline
        if pipeline is not None:
            pipeline.stop(timeout_s)
        self.loop.join(timeout_s)

    def _step(self) -> None:
        if not self._request.wait(REQUEST_WAIT_S) or self._stop.is_set():
            return
        self._request.clear()
        current = self.classifier
        try:
            classifier = self._factory(self._settings)
        except Exception as exc:
            if current is None:
                self.error = f"no model could be loaded: {exc}"
                log.error("%s", self.error)
                self._activity.error(None, self.error)
            else:
                log.error("loading the model again failed (%s); keeping %s", exc, current.info.name)
            self.fetcher.failed(str(exc))
            return
        if classifier.info.is_fallback:  # e.g. fetched weights that would not convert
            self.fetcher.failed(classifier.info.fallback_reason or "the model did not load")
        if current is not None and current.info.fingerprint == classifier.info.fingerprint:
            if self._running_options == self._options():
                log.info("model %s unchanged", current.info.name)
                return
            classifier = current  # same model, new settings (top_k, resize, ...)
        self._switch(classifier)

    def _options(self) -> Options:
        return Options.of(self._settings)

    def _switch(self, classifier: Classifier) -> None:
        self._running_options = self._options()
        pipeline = self._stages.pipeline(
            classifier, self._running_options, self._resumed, self._relabel
        )
        with self._lock:
            old, self._pipeline = self._pipeline, None
        if old is not None:
            log.info("switching from %s to %s", old.classifier.info.name, classifier.info.name)
            old.stop(SWITCH_TIMEOUT_S)
        with self._lock:
            self._pipeline = pipeline
            self.error = None
        pipeline.start()
        info = classifier.info
        log.info("model ready: %s", classifier.describe().summary(info.name))
        if old is not None:
            # "Current" now means this model's labels: look again. (The first model's look is
            # the scanner's catch-up scan; asking again here walked every folder twice.)
            self._on_switched(classifier)

    def status(self) -> ModelStatus:
        """The model block of the status."""
        c = self.classifier
        requested = self._settings.model.name
        info = c.info if c else None
        missing: MissingModel | None = None
        if info is not None and info.is_fallback and info.requested_missing:
            spec = registry.MODELS.get(requested)
            missing = {"name": requested, "download_bytes": spec.download_bytes if spec else 0}
        return {
            "name": info.name if info else requested,
            "requested": requested,
            "fallback": bool(info and info.is_fallback),
            "fallback_reason": info.fallback_reason if info else None,
            "runtime": info.runtime if info else None,
            "runtime_summary": c.describe().summary(c.info.name) if c else None,
            "fingerprint": info.fingerprint if info else None,
            "error": self.error,
            "missing": missing,
            "fetch": self.fetcher.status(info.name if info and not info.is_fallback else None),
        }

    def pipeline_status(self) -> PipelineStatus | None:
        """How the cores are shared now."""
        with self._lock:
            pipeline = self._pipeline
        if pipeline is None:
            return None
        b = pipeline.budget
        return {
            "decoders": b.decoders,
            "lanes": b.lanes,
            "threads_per_lane": b.threads_per_lane,
            "batch_size": b.batch_size,
        }
