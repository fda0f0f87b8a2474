"""`dropsight models`: which models are here, and getting, importing, converting, removing them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from dropsight.config.settings import MODEL_NAMES, ConfigError, Settings
from dropsight.daemon.cli.common import ExitCode, settings_for
from dropsight.daemon.contracts import ModelStatus
from dropsight.daemon.core import paths
from dropsight.daemon.core.invocation import command_name
from dropsight.daemon.models import registry, store, weights
from dropsight.daemon.models.sources import source_for
from dropsight.daemon.runtime import decisions


def add_arguments(sub: Any, with_config: Any) -> None:
    """The `models` sub-command."""
    m = sub.add_parser(
        "models",
        help="list models; get, import, convert or remove one",
        description="With no action: every model, whether its weights are here (and where), "
        "its converted cache, and which one a running service uses. get vgg16: download the "
        "weights from the address Keras uses (resumable, hash-checked; the only download "
        "Dropsight makes, and only when asked). import FILE: check and store weights you "
        "already have. convert NAME: build the LiteRT model now. remove NAME: delete its "
        "converted cache (and downloaded weights).",
    )
    m.add_argument("action", nargs="?", choices=("list", "get", "import", "convert", "remove"))
    m.add_argument("target", nargs="?", help="a model name, or for import a weights file")
    m.add_argument("--json", action="store_true", help="list: print JSON")
    with_config(m)
    m.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    """Entry point of `dropsight models`."""
    return run(args, settings_for(args))


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Dispatch `dropsight models ...`."""
    action = args.action or "list"
    if action == "list":
        return _list(settings, args.json)
    if not args.target:
        what = "a weights file" if action == "import" else f"a model ({', '.join(MODEL_NAMES)})"
        print(f"dropsight models {action}: name {what}", file=sys.stderr)
        return ExitCode.USAGE
    if action == "import":
        return _import(Path(args.target))
    if args.target not in MODEL_NAMES:
        print(
            f"dropsight models: unknown model {args.target!r}; known: " + ", ".join(MODEL_NAMES),
            file=sys.stderr,
        )
        return ExitCode.USAGE
    if action == "get":
        return _get(args.target)
    if action == "convert":
        return _convert(args.target, settings)
    return _remove(args.target)


# --- list ----------------------------------------------------------------------------------


class FoundWeights(TypedDict):
    """Where a model's weights are, and how they got there."""

    path: str
    origin: str


class CachedFile(TypedDict):
    """A converted model in the cache."""

    path: str
    bytes: int


class RuntimeChoice(TypedDict):
    """The runtime chosen for a model on this machine (timed at its first start)."""

    runtime: str  # "openvino-fp32", as sidecars record it
    device: str
    img_s: float
    reason: str


class ModelEntry(TypedDict):
    """One line of `dropsight models --json`."""

    name: str
    configured: bool
    fallback: bool
    download_bytes: int
    bundled: bool
    weights: FoundWeights | None
    missing: NotRequired[str]  # why there are no weights
    cache: list[CachedFile]
    running: bool
    running_as: NotRequired[str]  # "vgg16 on OpenVINO (fp32), 9 img/s"
    why: NotRequired[str]  # why the running service uses it (a fallback)
    runtimes: list[RuntimeChoice]  # chosen here, newest first (one per cores/batch setting)


def describe(settings: Settings) -> list[ModelEntry]:
    """Every model's state, JSON-ready."""
    config_name = str(settings.source or paths.config_file())
    running = _running_model()
    out = []
    for name, spec in registry.MODELS.items():
        found: FoundWeights | None = None
        missing = None
        try:
            located = spec.locate(settings.model, config_name)
            found = {"path": str(located.path), "origin": located.origin}
        except weights.WeightsNotFound as exc:
            missing = str(exc).split("\n", 1)[0].split(". ", 1)[0]
        if found and found["origin"] == "download":
            found, missing = None, "not downloaded yet"  # only allowed, not here
        entry: ModelEntry = {
            "name": name,
            "configured": name == settings.model.name,
            "fallback": name == settings.model.fallback,
            "download_bytes": spec.download_bytes,
            "bundled": name in store.bundled_models(),
            "weights": found,
            "cache": [{"path": str(p), "bytes": p.stat().st_size} for p in _cached(name)],
            "running": running is not None and running["name"] == name,
            "runtimes": [_runtime(d) for d in decisions.remembered(name)],
        }
        if entry["running"] and running and running.get("runtime_summary"):
            entry["running_as"] = str(running["runtime_summary"])
        if missing is not None:
            entry["missing"] = missing
        if entry["running"] and running and running["fallback"]:
            entry["why"] = f"stands in for {running['requested']}"
        out.append(entry)
    return out


def _runtime(d: decisions.Decision) -> RuntimeChoice:
    c = d.choice
    return {
        "runtime": f"{c.candidate.runtime}-{c.candidate.precision}",
        "device": c.candidate.device,
        "img_s": c.img_s,
        "reason": c.reason,
    }


def _list(settings: Settings, as_json: bool) -> int:
    models = describe(settings)
    if as_json:
        print(json.dumps(models, indent=2))
        return ExitCode.OK
    for m in models:
        flags = {
            "configured": m["configured"],
            "fallback": m["fallback"],
            "bundled": m["bundled"],
            "running": m["running"],
        }
        marks = [k for k, on in flags.items() if on]
        print(f"{m['name']}" + (f"  ({', '.join(marks)})" if marks else ""))
        if m["weights"]:
            print(f"  weights: {m['weights']['path']} ({m['weights']['origin']})")
        else:
            size = f" ({m['download_bytes'] / 1e6:.0f} MB)" if m["download_bytes"] else ""
            print(f"  weights: missing: {m.get('missing')}")
            if m["download_bytes"]:
                print(f"  get them: {command_name()} models get {m['name']}{size}")
        for entry in m["cache"]:
            print(f"  converted: {entry['path']} ({entry['bytes'] / 1e6:.0f} MB)")
        if m.get("running_as"):
            print(f"  running: {m['running_as']}")
        for r in m["runtimes"][:1]:
            speed = f", {r['img_s']:.3g} img/s" if r["img_s"] else ""
            device = f" on {r['device'].upper()}" if r["device"] != "cpu" else ""
            print(f"  runtime here: {r['runtime']}{device}{speed} ({r['reason']})")
        if m.get("why"):
            print(f"  the running service uses it: {m['why']}")
    return ExitCode.OK


def _cached(name: str) -> list[Path]:
    folder = paths.cache_dir() / "models"
    return sorted(folder.glob(f"{name}-*.tflite")) if folder.is_dir() else []


def _running_model() -> ModelStatus | None:
    from dropsight.daemon.api.client import ServiceClient, ServiceError

    try:
        return ServiceClient.connect().status()["model"]
    except ServiceError:
        return None


# --- get / import ----------------------------------------------------------------------------


def weights_target() -> Path:
    """Where fetched VGG16 weights go: the Keras cache, where the weights chain looks."""
    source = source_for("vgg16")
    assert source is not None
    return source.target


def _get(name: str) -> int:
    from dropsight.daemon.core.progress import bar
    from dropsight.daemon.models.download import DownloadError, Progress, fetch

    spec = registry.spec(name)
    source = source_for(name)
    if source is None:
        print(f"{name} needs no download: its weights ship with Dropsight")
        return ExitCode.OK
    target, size = source.target, source.size
    if target.is_file():
        print(f"{name} weights are here already: {target}")
        return _tell_service()
    print(f"downloading {name} weights ({spec.download_bytes / 1e6:.0f} MB) to {target}")
    with bar(size, desc=name, unit="B", unit_scale=True) as shown:

        def progress(p: Progress) -> None:
            if p.total and shown.total != p.total:
                shown.total = p.total
            shown.update(p.done - shown.n)

        try:
            fetch(source.url, target, md5=source.md5, size=size, on_progress=progress)
        except DownloadError as exc:
            print(f"dropsight models get {name}: {exc}", file=sys.stderr)
            return ExitCode.FAILED
    print(f"{name} weights stored and verified: {target}")
    return _tell_service()


def _import(source: Path) -> int:
    from dropsight.daemon.models.download import DownloadError, import_file

    if not source.is_file():
        print(f"dropsight models import: no such file: {source}", file=sys.stderr)
        return ExitCode.FAILED
    known = source_for("vgg16")
    assert known is not None
    try:
        target = import_file(source, known.target, md5=known.md5, size=known.size)
    except DownloadError as exc:
        print(f"dropsight models import: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    print(f"vgg16 weights checked and stored: {target}")
    return _tell_service()


def _tell_service() -> int:
    """A running service switches to the configured model once it can load it."""
    from dropsight.daemon.api.client import ServiceClient, ServiceError

    try:
        ServiceClient.connect().reload_model()
    except ServiceError:
        print("(no service running: it will use them when it starts)")
        return ExitCode.OK
    print("the running service is loading the model; it switches when ready")
    return ExitCode.OK


# --- convert / remove ------------------------------------------------------------------------


def _convert(name: str, settings: Settings) -> int:
    config_name = str(settings.source or paths.config_file())
    try:
        artifact = store.resolve(name, settings.model, config_name)
    except (store.ModelUnavailable, weights.WeightsNotFound, ConfigError) as exc:
        print(f"dropsight models convert: {str(exc).splitlines()[0]}", file=sys.stderr)
        return ExitCode.FAILED
    print(f"{name}: {artifact.path} ({artifact.origin})")
    return ExitCode.OK


def _remove(name: str) -> int:
    removed = []
    for tflite in _cached(name):
        for p in (tflite, tflite.with_suffix(".json")):
            if p.exists():
                p.unlink()
                removed.append(p)
    if name == "vgg16" and weights_target().is_file():
        weights_target().unlink()
        removed.append(weights_target())
    for p in removed:
        print(f"removed {p}")
    if not removed:
        print(f"nothing of {name} to remove")
    return ExitCode.OK
