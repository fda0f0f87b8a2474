"""Converted `.tflite` models: bundled with a frozen app, or built once into the cache."""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import subprocess
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dropsight.config.settings import ModelSettings
from dropsight.daemon import __version__
from dropsight.daemon.core import paths
from dropsight.daemon.core.atomic import write_text_atomic
from dropsight.daemon.models import registry
from dropsight.daemon.models import weights as weights_mod

log = logging.getLogger(__name__)

PROGRESS_PREFIX = "dropsight: "  # what daemon.models.convert prints its progress with
CONVERTER_TAIL_LINES = 40


class ModelUnavailable(RuntimeError):
    """A model cannot be loaded or built here; the message says why and what to do."""


@dataclass(frozen=True)
class ModelArtifact:
    """A ready `.tflite` file and what it is."""

    name: str
    fingerprint: str
    path: Path  # the converted model file (.tflite: LiteRT and OpenVINO read it)
    input_size: tuple[int, int]
    origin: str  # where the weights or the file came from


def bundled_dir() -> Path | None:
    """Folder of the models a frozen build carries (None when running from source)."""
    root = paths.frozen_root()
    return None if root is None else root / "models"


def bundled_models() -> list[str]:
    """Names of the models this build carries ready-made."""
    folder = bundled_dir()
    if folder is None or not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.tflite") if p.with_suffix(".json").is_file())


def _meta_path(tflite: Path) -> Path:
    return tflite.with_suffix(".json")


def _read_artifact(tflite: Path, origin: str) -> ModelArtifact | None:
    """The artifact described by `tflite` + its JSON, or None if missing or inconsistent."""
    try:
        meta = json.loads(_meta_path(tflite).read_text("utf-8"))
        if tflite.stat().st_size != meta["tflite_bytes"]:
            return None
        return ModelArtifact(
            name=meta["name"],
            fingerprint=meta["fingerprint"],
            path=tflite,
            input_size=(int(meta["input_size"][0]), int(meta["input_size"][1])),
            origin=origin,
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def write_meta(tflite: Path, name: str, fingerprint: str) -> None:
    """Record what a `.tflite` file is, beside it; written last, so it marks completion."""
    meta = {
        "name": name,
        "fingerprint": fingerprint,
        "input_size": list(registry.spec(name).input_size),
        "tflite_bytes": tflite.stat().st_size,
        "app_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_text_atomic(_meta_path(tflite), json.dumps(meta, indent=2))


def invalidate(artifact: ModelArtifact) -> None:
    """Delete a cache entry that failed to load, so the next resolve rebuilds it."""
    if artifact.origin == "bundled":
        return
    for p in (_meta_path(artifact.path), artifact.path):
        p.unlink(missing_ok=True)


def resolve(name: str, settings: ModelSettings, config_name: str) -> ModelArtifact:
    """Find or build the `.tflite` for `name`; raises ModelUnavailable or WeightsNotFound."""
    folder = bundled_dir()
    if folder is not None and name not in bundled_models():
        # A frozen build has no TensorFlow: weights alone cannot become a model here.
        raise ModelUnavailable(
            f"this build does not carry {name}; it carries: "
            + (", ".join(bundled_models()) or "none")
            + ". Use --model efficientnet-lite0, or install Dropsight with pip to build "
            f"{name} from its weights."
        )
    if folder is not None:
        found = _read_artifact(folder / f"{name}.tflite", "bundled")
        if found is not None:
            return found
    try:
        model = registry.spec(name)
    except KeyError as exc:
        raise ModelUnavailable(str(exc)) from None
    wf = model.locate(settings, config_name)
    if wf.origin == "download":
        _run_converter(["download-vgg16"], "download VGG16 weights")
    fp = weights_mod.fingerprint(wf.path)
    tflite = paths.cache_dir() / "models" / f"{name}-{fp[:16]}-{__version__}.tflite"
    found = _read_artifact(tflite, wf.origin)
    if found is not None and found.fingerprint == fp:
        return found
    _check_memory(model)
    log.info("converting %s (weights from %s: %s) into %s", name, wf.origin, wf.path, tflite)
    _run_converter(["convert", name, str(wf.path), str(tflite)], f"convert {name}")
    write_meta(tflite, name, fp)
    artifact = _read_artifact(tflite, wf.origin)
    if artifact is None:
        raise ModelUnavailable(f"conversion of {name} left no usable file at {tflite}")
    return artifact


def available_memory() -> int | None:
    """Bytes of memory the system can give without swapping (None where unknown)."""
    try:
        with Path("/proc/meminfo").open(encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _check_memory(model: registry.ModelSpec) -> None:
    """Refuse a conversion that would run the machine out of memory, saying the ways out."""
    have = available_memory()
    if not model.convert_bytes or have is None or have >= model.convert_bytes:
        return
    raise ModelUnavailable(
        f"converting {model.name} needs about {model.convert_bytes / 1e9:.0f} GB of free memory; "
        f"{have / 1e9:.1f} GB is available. Close other programs and try again, install the "
        f"Dropsight build that carries {model.name} ready-made, or use the offline model "
        "(--model efficientnet-lite0)."
    )


def _run_converter(args: list[str], what: str) -> None:
    """Run the TensorFlow-side step in a child process (keeps TF out of this process)."""
    if paths.frozen_root() is not None:
        carried = ", ".join(bundled_models()) or "none"
        raise ModelUnavailable(
            f"cannot {what}: this build has no TensorFlow to build models; "
            f"it carries: {carried}. Install Dropsight with pip (`pip install dropsight[models]`)"
            " to build other models."
        )
    if importlib.util.find_spec("tensorflow") is None:
        raise ModelUnavailable(
            f"cannot {what}: TensorFlow is needed once to build the model. "
            "Install it with `pip install 'dropsight[models]'`."
        )
    cmd = [sys.executable, "-m", "dropsight.daemon.models.convert", *args]
    # Our progress lines go to the log as they come; TensorFlow's start-up chatter (CUDA
    # probes and the like) is kept back and shown only if the step fails. Keras' download
    # progress bar writes to stdout: it goes to our stderr, so `--json` output stays JSON.
    stdout: Any = subprocess.DEVNULL
    if args[0] == "download-vgg16" and sys.stderr is not None:
        stdout = sys.stderr
    other: deque[str] = deque(maxlen=CONVERTER_TAIL_LINES)
    with subprocess.Popen(
        cmd, stdout=stdout, stderr=subprocess.PIPE, text=True, errors="replace"
    ) as proc:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.rstrip()
            if line.startswith(PROGRESS_PREFIX):
                log.info("%s", line.removeprefix(PROGRESS_PREFIX))
            elif line:
                other.append(line)
    if proc.returncode != 0:
        raise ModelUnavailable(f"could not {what}: {gist(other)}\n" + "\n".join(other))


def gist(lines: Sequence[str]) -> str:
    """The one line of a failed step's output that says why ("no network: ...")."""
    last = next((line for line in reversed(lines) if line and not line[0].isspace()), "")
    if re.search(r"URL fetch failure|Name or service not known|name resolution|unreachable", last):
        return "no network (" + last.rsplit("-- ", 1)[-1].strip() + ")"
    return last.split(": ", 1)[-1][:200] or "it failed"
