"""The one way every consumer gets a model to run: the configured model on the chosen runtime.

The service, `classify`, the local and Ray backfills, the bench and the viewer (through the
service) call `open_classifier` (or `open_artifact` with a model file already in hand); the
runtimes (LiteRT, OpenVINO) and their notions of files and threads stay in daemon/runtime/.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from dropsight.config.settings import Settings
from dropsight.daemon.core.invocation import command_name
from dropsight.daemon.models import registry, store
from dropsight.daemon.models.weights import WeightsNotFound
from dropsight.daemon.runtime import budget, checkphotos, selection
from dropsight.daemon.runtime.choice import Candidate
from dropsight.daemon.runtime.protocol import Classifier, Description, ModelInfo

__all__ = ["Classifier", "Description", "ModelInfo", "open_artifact", "open_classifier"]

log = logging.getLogger(__name__)


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


def asked(settings: Settings, size: tuple[int, int]) -> selection.Asked:
    """What the settings ask of the runtime; check photos come from the watched folders."""
    m = settings.model
    folders = settings.watch.folders
    return selection.Asked(m.runtime, m.device, lambda: checkphotos.load(folders, size, m.resize))


def open_artifact(artifact: store.ModelArtifact, info: ModelInfo, settings: Settings) -> Classifier:
    """A model file on the runtime chosen for this machine (timed once, then remembered)."""
    plan = budget.Request.of(settings).plan(info.gflops)
    decision = selection.choose(artifact, info, plan, asked(settings, info.input_size))
    classifier = selection.build(decision.choice.candidate, artifact, info, plan)
    return classifier.timed(decision.choice.img_s) if decision.choice.img_s else classifier


def _load(
    name: str, settings: Settings, requested: str, reason: str | None, missing: bool = False
) -> Classifier:
    artifact, info = _resolve(name, settings, requested, reason, missing)
    try:
        return open_artifact(artifact, info, settings)
    except selection.RuntimeUnavailable:
        raise
    except (ValueError, RuntimeError) as exc:
        # A damaged cache entry is rebuilt once rather than being fatal.
        log.warning("model file %s failed to load (%s); rebuilding it", artifact.path, exc)
        store.invalidate(artifact)
        artifact, info = _resolve(name, settings, requested, reason, missing)
        return open_artifact(artifact, info, settings)


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


def open_classifier(settings: Settings) -> Classifier:
    """The configured model on its runtime, or the fallback model with the reason recorded."""
    return _with_fallback(settings, _load, lambda classifier: classifier.info)


def resolve_model(settings: Settings) -> tuple[store.ModelArtifact, ModelInfo]:
    """The model file and facts `open_classifier` would use, without loading it (a driver
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
    except selection.RuntimeUnavailable:
        raise  # the fallback model would not run either: say what to change
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


def open_as(
    candidate: Candidate, settings: Settings, *, lanes: int = 1, threads: int = 1
) -> Classifier:
    """The configured model (no fallback) on the runtime `candidate` names (for the bench)."""
    artifact, info = _resolve(settings.model.name, settings, settings.model.name, None)
    plan = budget.Budget(decoders=1, lanes=lanes, threads_per_lane=threads, batch_size=1)
    return selection.build(candidate, artifact, info, plan)


def runtime_candidates(settings: Settings) -> list[Candidate]:
    """Every runtime, precision and device the settings allow here (for the bench)."""
    return selection.candidates(asked(settings, (224, 224)))
