"""Run a converted model on LiteRT in batches, and pick the model with a loud fallback."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from dropsight.config.settings import Settings
from dropsight.daemon.core.invocation import command_name
from dropsight.daemon.models import registry, store
from dropsight.daemon.models.weights import WeightsNotFound
from dropsight.daemon.runtime import budget

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
    gflops: float = 0.0  # cost per image; decides how cores are shared (daemon/runtime/budget.py)
    requested_missing: bool = False  # the fallback runs because the weights are not here

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


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Hide what native code prints on fd 2 meanwhile (LiteRT's "Created ... XNNPACK" line)."""
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (frozen windowed builds): nothing to silence
        yield
        return
    try:
        with Path(os.devnull).open("wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _Lane:
    """One LiteRT interpreter; re-planned only when the batch size changes."""

    def __init__(self, artifact: store.ModelArtifact, input_size: tuple[int, int], threads: int):
        from ai_edge_litert.interpreter import Interpreter

        self._size = input_size
        self._batch = 0
        with _native_stderr_silenced():
            self._interpreter = Interpreter(model_path=str(artifact.tflite), num_threads=threads)
            self._in = self._interpreter.get_input_details()[0]["index"]
            self._out = self._interpreter.get_output_details()[0]["index"]
            self._resize(1)

    def _resize(self, n: int) -> None:
        h, w = self._size
        self._interpreter.resize_tensor_input(self._in, [n, h, w, 3], strict=False)
        self._interpreter.allocate_tensors()
        self._batch = n

    def run(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[0] != self._batch:
            self._resize(batch.shape[0])
        self._interpreter.set_tensor(self._in, batch)
        self._interpreter.invoke()  # releases the GIL: lanes run in parallel
        return np.array(self._interpreter.get_tensor(self._out), dtype=np.float32)


class LiteRTClassifier:
    """A `.tflite` model on LiteRT (XNNPACK): `lanes` interpreters of `threads` threads each.

    Thread-safe: each call borrows a free interpreter, so up to `lanes` batches run at once.
    """

    def __init__(
        self, artifact: store.ModelArtifact, info: ModelInfo, *, lanes: int = 1, threads: int = 1
    ) -> None:
        self.info = info
        self._free: queue.SimpleQueue[_Lane] = queue.SimpleQueue()
        for _ in range(max(1, lanes)):
            self._free.put(_Lane(artifact, info.input_size, max(1, threads)))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch on a free interpreter."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        lane = self._free.get()
        try:
            return lane.run(batch)
        finally:
            self._free.put(lane)


def _resolve(
    name: str, settings: Settings, requested: str, reason: str | None, missing: bool = False
) -> tuple[store.ModelArtifact, ModelInfo]:
    artifact = store.resolve(name, settings.model, str(settings.source or "the config file"))
    info = ModelInfo(
        name=name,
        fingerprint=artifact.fingerprint,
        input_size=artifact.input_size,
        requested=requested,
        fallback_reason=reason,
        gflops=registry.spec(name).gflops,
        requested_missing=missing,
    )
    return artifact, info


def _load(
    name: str, settings: Settings, requested: str, reason: str | None, missing: bool = False
) -> Classifier:
    artifact, info = _resolve(name, settings, requested, reason, missing)
    plan = budget.Request.of(settings).plan(info.gflops)
    lanes, threads = plan.lanes, plan.threads_per_lane
    try:
        return LiteRTClassifier(artifact, info, lanes=lanes, threads=threads)
    except (ValueError, RuntimeError) as exc:
        # A damaged cache entry is rebuilt once rather than being fatal.
        log.warning("model file %s failed to load (%s); rebuilding it", artifact.tflite, exc)
        store.invalidate(artifact)
        artifact, info = _resolve(name, settings, requested, reason, missing)
        return LiteRTClassifier(artifact, info, lanes=lanes, threads=threads)


# Log records marked with this stay out of the terminal and go to the log file only.
FILE_ONLY = {"file_only": True}


def fallback_notice(info: ModelInfo) -> str:
    """One line saying which model stands in for which, and the command that fixes it."""
    why = (info.fallback_reason or "").removeprefix(f"{info.requested} could not be loaded: ")
    why = why.split("\n", 1)[0].split(". ", 1)[0].rstrip(".:; ")
    return (
        f"{info.requested} is not available ({why}); labelling with {info.name}. "
        f"To get {info.requested}: {command_name()} models get {info.requested}"
    )


def load_classifier(settings: Settings) -> Classifier:
    """Load the configured model, or the fallback model with the reason recorded."""
    return _with_fallback(settings, _load, lambda classifier: classifier.info)


def resolve_model(settings: Settings) -> tuple[store.ModelArtifact, ModelInfo]:
    """The model file and facts `load_classifier` would use, without loading it (a driver
    that only hands the file to workers need not build VGG16's interpreter)."""
    return _with_fallback(settings, _resolve, lambda resolved: resolved[1])


T = TypeVar("T")


def _with_fallback(
    settings: Settings,
    load: Callable[[str, Settings, str, str | None, bool], T],
    info_of: Callable[[T], ModelInfo],
) -> T:
    requested = settings.model.name
    try:
        return load(requested, settings, requested, None, False)
    except (WeightsNotFound, store.ModelUnavailable, ValueError, RuntimeError) as exc:
        fallback = settings.model.fallback
        if not fallback or fallback == requested:
            raise
        reason = f"{requested} could not be loaded: {exc}"
        missing = isinstance(exc, WeightsNotFound)
        result = load(fallback, settings, requested, reason, missing)
        log.warning("%s", fallback_notice(info_of(result)))
        log.info("%s", reason, extra=FILE_ONLY)
        return result
