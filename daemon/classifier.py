"""Run a converted model on LiteRT in batches, and pick the model with a loud fallback."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from dropsight.config.settings import Settings
from dropsight.daemon.models import store
from dropsight.daemon.models.weights import WeightsNotFound

log = logging.getLogger(__name__)

RUNTIME = "litert"


@dataclass(frozen=True)
class ModelInfo:
    """What produced the labels: recorded in status and in every sidecar."""

    name: str
    fingerprint: str
    input_size: tuple[int, int]
    runtime: str = RUNTIME
    requested: str = ""
    fallback_reason: str | None = None

    @property
    def is_fallback(self) -> bool:
        """True when the configured model could not load and another one runs instead."""
        return self.fallback_reason is not None


class Classifier(Protocol):
    """Anything that maps a batch of RGB images to ImageNet class probabilities."""

    info: ModelInfo

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) float32 RGB 0..255 -> (N, 1000) probabilities."""
        ...


class LiteRTClassifier:
    """A `.tflite` model on LiteRT (XNNPACK); thread-safe, resizes its batch as needed."""

    def __init__(self, artifact: store.ModelArtifact, info: ModelInfo, threads: int = 0) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.info = info
        self._lock = threading.Lock()
        self._interpreter = Interpreter(
            model_path=str(artifact.tflite), num_threads=threads or (os.cpu_count() or 1)
        )
        self._in = self._interpreter.get_input_details()[0]["index"]
        self._out = self._interpreter.get_output_details()[0]["index"]
        self._batch = 0
        self._resize(1)

    def _resize(self, n: int) -> None:
        h, w = self.info.input_size
        self._interpreter.resize_tensor_input(self._in, [n, h, w, 3], strict=False)
        self._interpreter.allocate_tensors()
        self._batch = n

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch; the interpreter is re-planned only when the batch size changes."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        with self._lock:
            if batch.shape[0] != self._batch:
                self._resize(batch.shape[0])
            self._interpreter.set_tensor(self._in, batch)
            self._interpreter.invoke()
            return np.array(self._interpreter.get_tensor(self._out), dtype=np.float32)


def _load(name: str, settings: Settings, requested: str, reason: str | None) -> Classifier:
    config_name = str(settings.source or "the config file")
    artifact = store.resolve(name, settings.model, config_name)
    info = ModelInfo(
        name=name,
        fingerprint=artifact.fingerprint,
        input_size=artifact.input_size,
        requested=requested,
        fallback_reason=reason,
    )
    try:
        return LiteRTClassifier(artifact, info)
    except (ValueError, RuntimeError) as exc:
        # A damaged cache entry is rebuilt once rather than being fatal.
        log.warning("model file %s failed to load (%s); rebuilding it", artifact.tflite, exc)
        store.invalidate(artifact)
        artifact = store.resolve(name, settings.model, config_name)
        return LiteRTClassifier(artifact, info)


def load_classifier(settings: Settings) -> Classifier:
    """Load the configured model, or the fallback model with the reason recorded."""
    requested = settings.model.name
    try:
        return _load(requested, settings, requested, None)
    except (WeightsNotFound, store.ModelUnavailable, ValueError, RuntimeError) as exc:
        fallback = settings.model.fallback
        if not fallback or fallback == requested:
            raise
        reason = f"{requested} could not be loaded: {exc}"
        log.error("%s; using the fallback model %s", reason, fallback)
        return _load(fallback, settings, requested, reason)
