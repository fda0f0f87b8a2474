"""Choose the runtime for a model on this machine: time the candidates once, remember it."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dropsight.config.settings import DeviceMode, RuntimeMode
from dropsight.daemon.models import store
from dropsight.daemon.runtime import choice, decisions, openvino, timing
from dropsight.daemon.runtime.budget import Budget
from dropsight.daemon.runtime.choice import BASELINE, Candidate, Choice, Measured
from dropsight.daemon.runtime.litert import LiteRTClassifier
from dropsight.daemon.runtime.openvino import OpenVINOClassifier
from dropsight.daemon.runtime.protocol import Classifier, ModelInfo

log = logging.getLogger(__name__)


class RuntimeUnavailable(RuntimeError):
    """The runtime or device the settings ask for is not here; the message says why."""


@dataclass(frozen=True)
class Asked:
    """What the settings ask for, and the photos labels are checked on (None: none found)."""

    runtime: RuntimeMode = "auto"
    device: DeviceMode = "auto"
    check: Callable[[], np.ndarray | None] = lambda: None


def build(
    candidate: Candidate, artifact: store.ModelArtifact, info: ModelInfo, plan: Budget
) -> LiteRTClassifier | OpenVINOClassifier:
    """The classifier `candidate` names, with the cores shared as `plan` says."""
    lanes, threads = plan.lanes, plan.threads_per_lane
    if candidate.runtime == "litert":
        return LiteRTClassifier(artifact, info, lanes=lanes, threads=threads)
    return OpenVINOClassifier(
        artifact,
        info,
        precision=candidate.precision,
        device=candidate.device,
        lanes=lanes,
        threads=threads,
    )


def candidates(asked: Asked) -> list[Candidate]:
    """Every way the settings allow to run a model here (LiteRT first when allowed)."""
    out = [BASELINE] if asked.runtime in ("auto", "litert") else []
    if asked.runtime == "litert":
        return out
    if not openvino.available():
        if asked.runtime == "openvino":
            raise RuntimeUnavailable(
                '[model] runtime = "openvino", but OpenVINO is not installed '
                "(pip install openvino), or set runtime to auto"
            )
        return out
    seen = openvino.devices()
    if asked.device != "auto" and asked.device not in seen:
        raise RuntimeUnavailable(
            f'[model] device = "{asked.device}", but OpenVINO sees no {asked.device.upper()} '
            f"here (it sees: {', '.join(d.upper() for d in seen) or 'nothing'}); "
            'set device to "auto" or "cpu"'
        )
    for device in seen if asked.device == "auto" else [asked.device]:
        out.append(Candidate("openvino", "fp32", device))
        if openvino.supports_bf16(device):
            out.append(Candidate("openvino", "bf16", device))
    return out


def measure(
    options: list[Candidate],
    make: Callable[[Candidate], Classifier],
    check: np.ndarray | None,
    *,
    batches: list[int],
    size: tuple[int, int],
    seconds: float = timing.SECONDS,
) -> list[Measured]:
    """Time each candidate (and check bf16's labels against LiteRT fp32's); one at a time."""
    x = check if check is not None else _noise(size)
    reference: np.ndarray | None = None
    if check is not None and any(c.precision != "fp32" for c in options):
        reference = _predict_all(make(BASELINE), check)
    out = []
    for candidate in options:
        try:
            classifier = make(candidate)
        except (RuntimeError, ValueError) as exc:
            if candidate == BASELINE or len(options) == 1:
                raise
            # A runtime that cannot run this model here is left out, not fatal.
            log.warning("%s cannot run this model here (%s); leaving it out", candidate.label, exc)
            continue
        img_s = timing.throughputs(classifier, x, batches, seconds)
        agreement = None
        if candidate.precision != "fp32" and reference is not None and check is not None:
            agreement = choice.agreement(reference, _predict_all(classifier, check))
        out.append(Measured(candidate, img_s, agreement))
        log.info("timed %s: %s img/s (agreement %s)", candidate.label, img_s, agreement)
        del classifier
        gc.collect()  # VGG16 is 0.5 GB a copy: one at a time
    return out


def _predict_all(classifier: Classifier, x: np.ndarray, batch: int = 8) -> np.ndarray:
    return np.concatenate([classifier.predict(x[i : i + batch]) for i in range(0, len(x), batch)])


def _noise(size: tuple[int, int]) -> np.ndarray:
    """Random pixels at the model's size, for timing when there are no check photos."""
    h, w = size
    return np.random.default_rng(0).uniform(0, 255, (2, h, w, 3)).astype(np.float32)


def choose(
    artifact: store.ModelArtifact, info: ModelInfo, plan: Budget, asked: Asked
) -> decisions.Decision:
    """The remembered decision for this model here, or a new one (timed now, then saved)."""
    options = candidates(asked)
    if options == [BASELINE]:
        return decisions.Decision(info.name, Choice(BASELINE, 0.0, "LiteRT only"), {})
    versions = {"openvino": openvino.version()}
    asked_facts: dict[str, Any] = {
        "runtime": asked.runtime,
        "device": asked.device,
        "lanes": plan.lanes,
        "threads": plan.threads_per_lane,
        "batch": plan.batch_size,
    }
    name = decisions.key(info.fingerprint, asked_facts, versions)
    known = decisions.load(name)
    if known is not None:
        return known
    log.info(
        "choosing the runtime for %s on this machine (once): timing %d ways",
        info.name,
        len(options),
    )
    batches = sorted({1, plan.batch_size})
    check = asked.check()
    make = lambda c: build(c, artifact, info, plan)  # noqa: E731
    measured = measure(options, make, check, batches=batches, size=info.input_size)
    baseline = BASELINE if asked.runtime == "auto" else None
    try:
        picked = choice.choose(measured, plan.batch_size, baseline=baseline)
    except ValueError as exc:  # nothing ran: say so (the model file is not to blame)
        raise RuntimeUnavailable(f"{info.name}: {exc}") from None
    decision = decisions.Decision(info.name, picked, _table(measured))
    decisions.save(name, decision)
    log.info("%s runs on %s: %s", info.name, picked.candidate.label, picked.reason)
    return decision


def _table(measured: list[Measured]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for m in measured:
        row = {f"batch_{b}": v for b, v in m.img_s.items()}
        if m.agreement is not None:
            row["top5_agreement"] = round(m.agreement, 4)
        out[m.candidate.label] = row
    return out
