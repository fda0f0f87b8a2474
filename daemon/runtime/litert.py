"""A `.tflite` model on LiteRT (XNNPACK), fp32: the runtime that runs everywhere."""

from __future__ import annotations

import contextlib
import os
import queue
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from dropsight.daemon.models import store
from dropsight.daemon.runtime.protocol import Description, ModelInfo


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
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
        with native_stderr_silenced():
            self._interpreter = Interpreter(model_path=str(artifact.path), num_threads=threads)
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
    """`lanes` LiteRT interpreters of `threads` threads each.

    Thread-safe: each call borrows a free interpreter, so up to `lanes` batches run at once.
    """

    def __init__(
        self, artifact: store.ModelArtifact, info: ModelInfo, *, lanes: int = 1, threads: int = 1
    ) -> None:
        self._description = Description("litert", "fp32", "cpu", max(1, lanes), max(1, threads))
        self.info = replace(info, runtime=self._description.label)
        self._free: queue.SimpleQueue[_Lane] = queue.SimpleQueue()
        for _ in range(self._description.lanes):
            self._free.put(_Lane(artifact, info.input_size, self._description.threads))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch on a free interpreter."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        lane = self._free.get()
        try:
            return lane.run(batch)
        finally:
            self._free.put(lane)

    def describe(self) -> Description:
        """LiteRT, fp32, on the CPU."""
        return self._description

    def timed(self, img_s: float) -> LiteRTClassifier:
        """This classifier, describing the speed measured when it was chosen."""
        self._description = replace(self._description, img_s=img_s)
        return self
