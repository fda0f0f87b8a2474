"""Time a classifier as the service runs it: its lanes busy side by side, a given batch size."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np

from dropsight.daemon.runtime.protocol import Classifier

SECONDS = 1.0  # per batch size: a few seconds for the whole choice of a light model


def throughput(
    classifier: Classifier, images: np.ndarray, batch: int, seconds: float = SECONDS
) -> float:
    """img/s of `classifier` at batch size `batch`, each of its lanes fed by its own thread.

    One warm-up call first (plans, allocations, compilation); then each lane runs batches
    until `seconds` have passed, at least one batch each. `images` holds at least one image;
    it is repeated up to the batch size.
    """
    x = _batch_of(images, batch)
    lanes = classifier.describe().lanes
    classifier.predict(x)
    done = [0] * lanes
    end = time.perf_counter() + seconds

    def run(lane: int) -> None:
        while True:
            classifier.predict(x)
            done[lane] += batch
            if time.perf_counter() >= end:
                return

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,), name=f"timing-{i}") for i in range(lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - started)


def throughputs(
    classifier: Classifier, images: np.ndarray, batches: Sequence[int], seconds: float = SECONDS
) -> dict[int, float]:
    """img/s at each batch size."""
    return {b: round(throughput(classifier, images, b, seconds), 2) for b in sorted(set(batches))}


def _batch_of(images: np.ndarray, batch: int) -> np.ndarray:
    reps = -(-batch // len(images))
    return np.ascontiguousarray(np.concatenate([images] * reps)[:batch], dtype=np.float32)
