"""Turn prepared images into sidecar records in batches; shared by `classify` and the service."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dropsight.daemon import imaging
from dropsight.daemon.classifier import Classifier
from dropsight.daemon.imaging import FileFacts, ImageError, PreparedImage
from dropsight.daemon.sidecar import error_record, ok_record, top_predictions


@dataclass(frozen=True)
class Outcome:
    """One image's result: a prepared image, or the error that stopped it."""

    path: Path
    prepared: PreparedImage | None = None
    error: ImageError | None = None
    facts: FileFacts | None = None


def prepare_outcome(path: Path, size: tuple[int, int], resize: str) -> Outcome:
    """Decode one image, catching every decode failure into the outcome."""
    facts: FileFacts | None = None
    try:
        data, facts = imaging.read_file(path)
        prepared = imaging.prepare_bytes(data, facts, size, resize)
    except ImageError as exc:
        # A file that was read but not decoded still records its hash and size.
        return Outcome(path, error=exc, facts=facts)
    return Outcome(path, prepared=prepared, facts=prepared.facts)


def records(
    classifier: Classifier,
    outcomes: Sequence[Outcome],
    top_k: int,
    min_score: float,
    display: Callable[[Path], str],
) -> list[dict[str, Any]]:
    """Classify the decodable outcomes in one batch; error records for the rest, same order."""
    good = [o for o in outcomes if o.prepared is not None]
    probs = (
        classifier.predict(np.stack([o.prepared.pixels for o in good if o.prepared is not None]))
        if good
        else np.empty((0, 1000), np.float32)
    )
    by_path = {id(o): p for o, p in zip(good, probs, strict=True)}
    out: list[dict[str, Any]] = []
    for o in outcomes:
        if o.prepared is not None:
            preds = top_predictions(by_path[id(o)], top_k, min_score)
            out.append(ok_record(display(o.path), o.prepared.facts, classifier.info, preds))
        else:
            err = o.error or ImageError("unknown", "unknown failure")
            out.append(error_record(display(o.path), o.facts, classifier.info, err.kind, str(err)))
    return out


def bounded_map(
    pool: ThreadPoolExecutor, fn: Callable[[Path], Outcome], items: Iterable[Path], ahead: int
) -> Iterator[Outcome]:
    """Like `pool.map`, in order, but never more than `ahead` results held in memory."""
    window: deque[Future[Outcome]] = deque()
    for item in items:
        window.append(pool.submit(fn, item))
        if len(window) >= ahead:
            yield window.popleft().result()
    while window:
        yield window.popleft().result()


def classify_paths(
    classifier: Classifier,
    paths: Iterable[Path],
    *,
    batch_size: int,
    top_k: int,
    min_score: float,
    resize: str,
    threads: int = 2,
    display: Callable[[Path], str] = str,
) -> Iterator[dict[str, Any]]:
    """Classify files in input order: decode in a thread pool, infer in batches."""
    size = classifier.info.input_size
    with ThreadPoolExecutor(threads, thread_name_prefix="decode") as pool:
        pending = bounded_map(
            pool, lambda p: prepare_outcome(p, size, resize), paths, 2 * batch_size
        )
        batch: list[Outcome] = []
        for outcome in pending:
            batch.append(outcome)
            if len(batch) == batch_size:
                yield from records(classifier, batch, top_k, min_score, display)
                batch = []
        if batch:
            yield from records(classifier, batch, top_k, min_score, display)
