"""The runtime chosen for a model on this machine, remembered so it is timed only once.

One JSON file per decision in the platform cache folder, named by a hash of what the choice
depends on: the model's fingerprint, the CPU's model and flags, the app's and OpenVINO's
versions, and what the settings ask (runtime, device, cores, batch). Any change times again.
The file is ours but read as input: a damaged or odd one is ignored and replaced.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from dropsight.daemon import __version__
from dropsight.daemon.core import paths
from dropsight.daemon.core.atomic import write_text_atomic
from dropsight.daemon.runtime.choice import Candidate, Choice
from dropsight.daemon.runtime.protocol import Device, Precision, RuntimeName

log = logging.getLogger(__name__)

MAX_BYTES = 64 * 1024  # a decision file is a few hundred bytes


@dataclass(frozen=True)
class Decision:
    """A choice as remembered, with the model it was made for."""

    model: str
    choice: Choice
    measured: dict[str, dict[str, float]]  # candidate label -> {batch or "agreement": value}


def folder() -> Path:
    """Where decisions are kept."""
    return paths.cache_dir() / "runtime"


def cpu() -> dict[str, str]:
    """The CPU's model name and feature flags (what decides which runtime is faster)."""
    name, flags = "", ""
    try:
        with Path("/proc/cpuinfo").open(encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not name:
                    name = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = " ".join(sorted(value.split()))
    except OSError:
        pass  # not Linux: the processor string stands for the model and its flags
    return {"model": name or platform.processor() or platform.machine(), "flags": flags}


def key(fingerprint: str, asked: dict[str, Any], versions: dict[str, str]) -> str:
    """The name of the decision for this model, machine, versions and settings."""
    facts = {"model": fingerprint, "cpu": cpu(), "app": __version__, **versions, "asked": asked}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:32]


def save(name: str, decision: Decision) -> None:
    """Remember a decision (atomically: a reader sees the old file or the new one)."""
    c = decision.choice
    payload = {
        "model": decision.model,
        "runtime": c.candidate.runtime,
        "precision": c.candidate.precision,
        "device": c.candidate.device,
        "img_s": c.img_s,
        "reason": c.reason,
        "measured": decision.measured,
        "app_version": __version__,
    }
    folder().mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder() / f"{name}.json", json.dumps(payload, indent=2))


def load(name: str) -> Decision | None:
    """The remembered decision, or None when there is none or it is not one of ours."""
    path = folder() / f"{name}.json"
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ValueError("too big")
        return _parse(json.loads(path.read_text("utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("ignoring the runtime decision in %s (%s); timing again", path, exc)
        return None


def remembered(model: str) -> list[Decision]:
    """Every remembered decision for `model` (for `dropsight models`), newest first."""
    found = sorted(folder().glob("*.json"), key=_mtime, reverse=True) if folder().is_dir() else []
    out = []
    for path in found:
        decision = load(path.stem)
        if decision is not None and decision.model == model:
            out.append(decision)
    return out


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _parse(data: Any) -> Decision:
    if not isinstance(data, dict):
        raise ValueError("not an object")
    runtime, precision, device = data["runtime"], data["precision"], data["device"]
    if runtime not in get_args(RuntimeName) or precision not in get_args(Precision):
        raise ValueError(f"unknown runtime {runtime!r} / precision {precision!r}")
    if device not in get_args(Device):
        raise ValueError(f"unknown device {device!r}")
    img_s, reason, model, measured = data["img_s"], data["reason"], data["model"], data["measured"]
    if not isinstance(img_s, int | float) or isinstance(img_s, bool) or img_s < 0:
        raise ValueError(f"bad speed {img_s!r}")
    if not isinstance(reason, str) or not isinstance(model, str) or not isinstance(measured, dict):
        raise ValueError("bad reason, model or measurements")
    candidate = Candidate(runtime, precision, device)
    return Decision(model, Choice(candidate, float(img_s), reason), measured)
