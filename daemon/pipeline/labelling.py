"""Inference on a batch of prepared photos, contained: a failing batch is retried photo by photo."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dropsight.config.settings import Settings
from dropsight.daemon.contracts import SidecarRecord
from dropsight.daemon.labels.classes import categories_of
from dropsight.daemon.outputs import sidecar
from dropsight.daemon.pipeline.decode import Prepared
from dropsight.daemon.runtime.classifier import Classifier

log = logging.getLogger(__name__)

Display = Callable[[Path], str]  # what `image.path` records for a photo


@dataclass(frozen=True)
class Rules:
    """How probabilities become a record: how many labels, how sure, which count as keywords."""

    top_k: int = 5
    min_score: float = 0.0
    keyword_min_score: float = 0.3  # categories (and XMP keywords) come from labels this sure

    @classmethod
    def of(cls, settings: Settings) -> Rules:
        """The rules the settings ask for."""
        m = settings.model
        return cls(m.top_k, m.min_score, settings.output.xmp_min_score)


def label(
    classifier: Classifier,
    items: Sequence[Prepared],
    rules: Rules,
    display: Display,
) -> list[SidecarRecord]:
    """One record per item, same order: labels for decoded photos, errors for the rest."""
    decoded = [i for i in items if i.pixels is not None]
    probs = _predict(classifier, decoded)
    info = classifier.info
    out: list[SidecarRecord] = []
    for item in items:
        shown = display(item.job.path)
        result = probs.get(id(item))
        if isinstance(result, np.ndarray):
            preds = sidecar.top_predictions(result, rules.top_k, rules.min_score)
            cats = categories_of(preds, rules.keyword_min_score)
            out.append(sidecar.build(shown, item.facts, info, preds, categories=cats))
        elif isinstance(result, Exception):
            message = f"the model failed on this photo: {type(result).__name__}: {result}"
            out.append(sidecar.build(shown, item.facts, info, [], ("inference", message)))
        else:
            error = item.error
            kind, message = (error.kind, str(error)) if error else ("internal", "not decoded")
            out.append(sidecar.build(shown, item.facts, info, [], (kind, message)))
    return out


def _predict(
    classifier: Classifier, items: Sequence[Prepared]
) -> dict[int, np.ndarray | Exception]:
    """Probabilities by item id; a batch that fails is retried once, one photo at a time."""
    if not items:
        return {}
    try:
        probs = classifier.predict(np.stack([i.pixels for i in items if i.pixels is not None]))
        return {id(i): p for i, p in zip(items, probs, strict=True)}
    except Exception as exc:
        log.warning("a batch of %d failed (%s); retrying photo by photo", len(items), exc)
    out: dict[int, np.ndarray | Exception] = {}
    for item in items:
        assert item.pixels is not None
        try:
            out[id(item)] = classifier.predict(item.pixels[None])[0]
        except Exception as exc:
            log.error("the model failed on %s: %s", item.job.path, exc)
            out[id(item)] = exc
    return out
