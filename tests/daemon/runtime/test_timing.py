"""Timing takes the least disturbed window: a slow spell elsewhere does not decide."""

from __future__ import annotations

import numpy as np
import pytest

from dropsight.daemon.runtime import timing
from tests.daemon.helpers import FakeClassifier


def test_the_best_window_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    measured = iter([20.0, 95.0, 60.0])  # another program hogged the first and last
    seen: list[tuple[int, float]] = []

    def window(classifier: FakeClassifier, x: np.ndarray, seconds: float) -> float:
        seen.append((len(x), seconds))
        return next(measured)

    monkeypatch.setattr(timing, "_window", window)
    fake = FakeClassifier()
    x = np.zeros((1, 8, 8, 3), np.float32)
    assert timing.throughput(fake, x, batch=4, seconds=1.5, windows=3) == 95.0
    assert seen == [(4, 0.5)] * 3  # the batch is filled up from the one image
    assert fake.calls == 1  # the warm-up
