"""The runtime choice from injected timings and agreement: never slower, bf16 only if honest."""

from __future__ import annotations

import numpy as np
import pytest

from dropsight.daemon.runtime.choice import (
    BASELINE,
    MIN_AGREEMENT,
    Candidate,
    Measured,
    agreement,
    choose,
)

OV32 = Candidate("openvino", "fp32")
OV16 = Candidate("openvino", "bf16")
GPU = Candidate("openvino", "fp32", "gpu")


def m(c: Candidate, b1: float, b16: float, agree: float | None = None) -> Measured:
    return Measured(c, {1: b1, 16: b16}, agree)


def test_openvino_runs_only_where_clearly_faster_and_never_clearly_slower() -> None:
    lite = m(BASELINE, 6.6, 7.0)
    assert choose([lite, m(OV32, 8.6, 8.9)], 16).candidate == OV32
    # An AVX2 machine: OpenVINO at 0.8x -> LiteRT.
    assert choose([lite, m(OV32, 5.3, 5.6)], 16).candidate == BASELINE
    # Faster at the service's batch but clearly slower for a lone photo: not taken.
    picked = choose([lite, m(OV32, 6.0, 9.0)], 16)
    assert picked.candidate == BASELINE
    assert "openvino-fp32: 0.91x litert-fp32 at batch 1 (needs 0.95x)" in picked.reason
    # Within timing noise at batch 1, clearly faster at the service's batch: taken.
    assert choose([lite, m(OV32, 6.4, 7.6)], 16).candidate == OV32
    # A tie, or a win within noise, is not a win.
    assert choose([lite, m(OV32, 6.6, 7.0)], 16).candidate == BASELINE
    assert choose([lite, m(OV32, 6.9, 7.3)], 16).candidate == BASELINE


def test_bf16_needs_top5_agreement_with_fp32() -> None:
    lite, ov32 = m(BASELINE, 6.6, 7.0), m(OV32, 7.5, 7.6)
    failing = m(OV16, 37.9, 36.3, agree=0.94)
    picked = choose([lite, ov32, failing], 16)
    assert picked.candidate == OV32  # f32 when bf16 changes the labels
    assert "agree with fp32 on 94%" in picked.reason
    passing = m(OV16, 37.9, 36.3, agree=MIN_AGREEMENT)
    assert choose([lite, ov32, passing], 16).candidate == OV16
    assert choose([lite, m(OV16, 37.9, 36.3, agree=None)], 16).candidate == BASELINE


def test_the_speed_is_the_service_batchs() -> None:
    lite = Measured(BASELINE, {1: 100.0}, None)
    picked = choose([lite, Measured(OV32, {1: 120.0}, None)], 1)
    assert (picked.candidate, picked.img_s) == (OV32, 120.0)
    picked = choose([m(BASELINE, 6.6, 7.0), m(OV32, 8.0, 9.0), m(GPU, 20.0, 60.0)], 16)
    assert (picked.candidate, picked.img_s) == (GPU, 60.0)


def test_a_forced_runtime_runs_even_if_slower_but_keeps_honest_precision() -> None:
    measured = [m(OV32, 5.0, 5.0), m(OV16, 9.0, 9.0, agree=0.5)]
    assert choose(measured, 16, baseline=None).candidate == OV32
    with pytest.raises(ValueError, match="litert-fp32 was not measured"):
        choose(measured, 16)
    with pytest.raises(ValueError, match="no runtime"):
        choose([m(OV16, 9.0, 9.0, agree=0.5)], 16, baseline=None)


def test_agreement_compares_top5_sets() -> None:
    rng = np.random.default_rng(1)
    ref = rng.random((10, 1000)).astype(np.float32)
    assert agreement(ref, ref) == 1.0
    shuffled = ref.copy()
    top = np.argsort(-ref[0])[:5]
    shuffled[0, top] = shuffled[0, top[::-1]]  # same five, another order: still agreeing
    assert agreement(ref, shuffled) == 1.0
    changed = ref.copy()
    changed[3, np.argsort(-ref[3])[5]] = 2.0  # the sixth class climbs into the top 5
    assert agreement(ref, changed) == pytest.approx(0.9)
    assert agreement(ref, ref[:5]) == 0.0


def test_a_runtime_that_cannot_load_the_model_is_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from dropsight.daemon.runtime import selection
    from tests.daemon.helpers import FakeClassifier

    def make(c: Candidate) -> FakeClassifier:
        if c.runtime == "openvino":
            raise RuntimeError("unsupported operation")
        return FakeClassifier()

    measured = selection.measure(
        [BASELINE, OV32], make, None, batches=[1], size=(8, 8), seconds=0.01
    )
    assert [m.candidate for m in measured] == [BASELINE]
    assert "openvino-fp32 cannot run this model here (unsupported operation)" in caplog.text
    with pytest.raises(RuntimeError, match="unsupported"):
        selection.measure([OV32], make, None, batches=[1], size=(8, 8), seconds=0.01)
