"""The public sidecar contract: build, write atomically, read back, decide if up to date."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from dropsight.daemon import APP_NAME, __version__
from dropsight.daemon.atomic import write_text_atomic
from dropsight.daemon.classifier import ModelInfo
from dropsight.daemon.classindex import imagenet
from dropsight.daemon.imaging import FileFacts

SCHEMA_VERSION = 1
SUFFIX = ".json"


def sidecar_path(image: Path, root: Path | None = None, out_folder: Path | None = None) -> Path:
    """`IMG.jpg` -> `IMG.jpg.json` beside it, or at the mirrored place under `out_folder`."""
    if out_folder is not None and root is not None:
        return out_folder / image.relative_to(root).parent / (image.name + SUFFIX)
    return image.with_name(image.name + SUFFIX)


def top_predictions(probs: np.ndarray, k: int, min_score: float = 0.0) -> list[dict[str, Any]]:
    """The k best classes, best first, as contract dicts (scores rounded to 6 places)."""
    index = imagenet()
    k = min(k, probs.shape[-1])
    best = np.argsort(-probs, kind="stable")[:k]
    out: list[dict[str, Any]] = []
    for i in best:
        score = float(np.clip(probs[i], 0.0, 1.0))
        if score < min_score:
            break
        out.append(
            {
                "rank": len(out) + 1,
                "class_index": int(i),
                "wnid": index.wnids[i],
                "label": index.labels[i],
                "score": round(score, 6),
            }
        )
    return out


def _model_block(model: ModelInfo) -> dict[str, Any]:
    return {
        "name": model.name,
        "fingerprint": model.fingerprint,
        "input_size": list(model.input_size),
        "runtime": model.runtime,
        "fallback_for": model.requested if model.is_fallback else None,
    }


def _image_block(display_path: str, facts: FileFacts | None) -> dict[str, Any]:
    return {
        "path": display_path,
        "sha256": facts.sha256 if facts else None,
        "bytes": facts.size_bytes if facts else None,
        "width": facts.width if facts else None,
        "height": facts.height if facts else None,
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _record(
    display_path: str,
    facts: FileFacts | None,
    model: ModelInfo,
    predictions: list[dict[str, Any]],
    error: dict[str, str] | None,
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "status": "error" if error else "ok",
        "image": _image_block(display_path, facts),
        "model": _model_block(model),
        "predictions": predictions,
        "error": error,
        "processed_at": _now(),
        "generator": {"name": APP_NAME, "version": __version__},
    }


def ok_record(
    display_path: str, facts: FileFacts, model: ModelInfo, predictions: list[dict[str, Any]]
) -> dict[str, Any]:
    """A sidecar for a classified image."""
    return _record(display_path, facts, model, predictions, None)


def error_record(
    display_path: str,
    facts: FileFacts | None,
    model: ModelInfo,
    kind: str,
    message: str,
) -> dict[str, Any]:
    """A sidecar telling other tools the image was tried and why it failed."""
    return _record(display_path, facts, model, [], {"type": kind, "message": message})


def dumps(record: dict[str, Any]) -> str:
    """Serialise a record the way it is stored (stable key order, UTF-8, newline at end)."""
    return json.dumps(record, indent=2, ensure_ascii=False) + "\n"


def write(path: Path, record: dict[str, Any]) -> None:
    """Write a sidecar atomically (readers never see a partial file)."""
    write_text_atomic(path, dumps(record))


def read(path: Path) -> dict[str, Any] | None:
    """An existing sidecar, or None when missing or not valid JSON."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_current(record: dict[str, Any] | None, sha256: str, fingerprint: str) -> bool:
    """True when `record` already describes this exact image content with this model."""
    if not record or record.get("schema_version") != SCHEMA_VERSION:
        return False
    image = record.get("image") or {}
    model = record.get("model") or {}
    return image.get("sha256") == sha256 and model.get("fingerprint") == fingerprint


@cache
def schema() -> dict[str, Any]:
    """The public JSON Schema of sidecars (shipped in config/)."""
    text = resources.files("dropsight.config").joinpath("sidecar.schema.json").read_text("utf-8")
    result: dict[str, Any] = json.loads(text)
    return result
