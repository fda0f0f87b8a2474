"""Which runtime runs a model here: pure logic over measured speeds and label agreement.

Never slower: a runtime other than LiteRT fp32 is chosen only when it is clearly faster at
the service's batch size (WIN) and not slower beyond timing noise at any other (TOLERANCE):
timings on a shared machine vary by several percent, and LiteRT is the safe default.
Honest precision: bf16 only when its top-5 labels agree with LiteRT fp32's
on at least MIN_AGREEMENT of the model's check photos; otherwise fp32.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from dropsight.daemon.runtime.protocol import Device, Precision, RuntimeName

MIN_AGREEMENT = 0.99  # top-5 set agreement with LiteRT fp32 that bf16 must reach
WIN = 1.05  # how much faster than LiteRT at the service's batch another runtime must be
TOLERANCE = 0.95  # how much slower at other batch sizes still counts as noise
TOP = 5


@dataclass(frozen=True)
class Candidate:
    """One way to run a model: runtime, precision, device."""

    runtime: RuntimeName
    precision: Precision = "fp32"
    device: Device = "cpu"

    @property
    def label(self) -> str:
        """ "openvino-bf16" (and "@gpu" off the CPU)."""
        where = "" if self.device == "cpu" else f"@{self.device}"
        return f"{self.runtime}-{self.precision}{where}"


BASELINE = Candidate("litert")


@dataclass(frozen=True)
class Measured:
    """What a candidate did on this machine."""

    candidate: Candidate
    img_s: Mapping[int, float]  # batch size -> images per second
    agreement: float | None = None  # top-5 agreement with LiteRT fp32; None: not measured


@dataclass(frozen=True)
class Choice:
    """The candidate to run, its speed at the service's batch size, and why."""

    candidate: Candidate
    img_s: float
    reason: str


def agreement(reference: np.ndarray, probs: np.ndarray, top: int = TOP) -> float:
    """Share of images whose `top` classes (as a set) are the same in both (N, C) outputs."""
    if len(reference) == 0 or reference.shape != probs.shape:
        return 0.0
    ref = np.sort(np.argsort(-reference, axis=1)[:, :top], axis=1)
    got = np.sort(np.argsort(-probs, axis=1)[:, :top], axis=1)
    return float(np.mean(np.all(ref == got, axis=1)))


def _why_not(m: Measured, baseline: Measured | None, service_batch: int) -> str | None:
    """Why a candidate may not run (None: it may)."""
    if m.candidate.precision != "fp32":
        if m.agreement is None:
            return "its labels could not be checked (no check photos)"
        if m.agreement < MIN_AGREEMENT:
            return f"its top-5 labels agree with fp32 on {m.agreement:.0%} of the check photos"
    if baseline is not None and m is not baseline:
        for b, v in sorted(baseline.img_s.items()):
            need = WIN if b == service_batch else TOLERANCE
            if m.img_s.get(b, 0.0) < v * need:
                ratio = m.img_s.get(b, 0.0) / v if v else 0.0
                return f"{ratio:.2f}x {baseline.candidate.label} at batch {b} (needs {need:g}x)"
    return None


def choose(
    measured: Sequence[Measured], service_batch: int, *, baseline: Candidate | None = BASELINE
) -> Choice:
    """The fastest allowed candidate at `service_batch`; `baseline` (LiteRT) unless beaten.

    `baseline` None: the runtime was forced, so the fastest allowed candidate runs even if
    slower than LiteRT (fp32 is always allowed). Raises ValueError with nothing to choose.
    """
    base = next((m for m in measured if m.candidate == baseline), None)
    if baseline is not None and base is None:
        raise ValueError(f"{baseline.label} was not measured")
    allowed = [m for m in measured if _why_not(m, base, service_batch) is None]
    if not allowed:
        raise ValueError("no runtime can run this model here")

    def speed(m: Measured) -> float:
        return m.img_s.get(service_batch, min(m.img_s.values(), default=0.0))

    best = max(allowed, key=lambda m: (speed(m), m is base))
    left_out = [
        f"{m.candidate.label}: {why}"
        for m in measured
        if (why := _why_not(m, base, service_batch)) is not None
    ]
    reason = f"{best.candidate.label} fastest at batch {service_batch} ({speed(best):.3g} img/s)"
    if left_out:
        reason += "; not " + "; not ".join(left_out)
    return Choice(best.candidate, speed(best), reason)
