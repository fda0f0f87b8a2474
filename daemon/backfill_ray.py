"""`dropsight backfill --ray`: the same job spread over a Ray cluster with Ray Data.

listing (driver) -> read + decode tasks -> an actor pool of LiteRT interpreters that label
and write the sidecars -> the driver, which counts, shows progress and keeps the index/XMP.
The photos must be at the same path on every node (shared storage); the model file travels
through Ray's object store. Ray is an optional extra: `pip install 'dropsight[ray]'`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from dropsight.config.settings import Settings
from dropsight.daemon import budget, sidecar
from dropsight.daemon.backfill import Summary, to_do
from dropsight.daemon.classifier import Classifier, LiteRTClassifier, ModelInfo
from dropsight.daemon.decode import Prepared, prepare
from dropsight.daemon.imaging import FileFacts, ImageError
from dropsight.daemon.jobs import Job
from dropsight.daemon.labelling import Rules, label
from dropsight.daemon.models.store import ModelArtifact
from dropsight.daemon.sinks import ResultSink, Written

log = logging.getLogger(__name__)

BATCH = 32  # photos per hand-over to a labelling actor (and per decode task)
DECODE_CPUS = 0.25  # decode tasks share a core: with whole cores, 2 CPUs deadlock (Ray 2.60)
LABEL_CPUS = 0.75  # one labelling actor per core, leaving room for decoding beside it
INSTALL = "pip install 'dropsight[ray]'"


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayUnavailable(f"--ray needs Ray (not installed here): {INSTALL}") from None
    return ray


def run_ray(
    settings: Settings,
    roots: list[Path],
    address: str,
    *,
    dry_run: bool = False,
    classifier: Classifier | None = None,
    sinks: list[ResultSink] | None = None,
) -> Summary:
    """Label what is left under `roots` on the Ray cluster at `address` (or `auto`)."""
    ray = _ray()
    from dropsight.daemon.backfillcli import backfill_sinks
    from dropsight.daemon.classifier import load_classifier
    from dropsight.daemon.models import store

    classifier = classifier or load_classifier(settings)
    info = classifier.info
    summary = Summary(model=info.name, mode="ray")
    work = list(to_do(settings, roots, info.fingerprint, summary))
    if dry_run or not work:
        return summary
    artifact = store.resolve(info.name, settings.model, str(settings.source or "config"))
    _connect(ray, address)
    started = time.monotonic()  # Ray's own start-up is not the photos' time
    try:
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        actors, threads = _pool(ray, cpus, info.gflops)
        model = ray.put(artifact.tflite.read_bytes())
        layout = sidecar.Layout.of(settings)
        rows = [
            {
                "path": os.fsencode(photo),
                "root": os.fsencode(root),
                "sidecar": os.fsencode(layout.sidecar_for(photo, root)),
            }
            for photo, root in work
        ]
        size, resize = info.input_size, settings.model.resize
        blocks = min(len(rows), max(2 * cpus, len(rows) // 64))  # every actor gets work
        ds = ray.data.from_items(rows, override_num_blocks=blocks)
        ds = ds.map_batches(
            _Decoder(size, resize), num_cpus=DECODE_CPUS, batch_size=BATCH, batch_format="numpy"
        )
        ds = ds.map_batches(
            _Labeller,
            fn_constructor_kwargs={
                # The file where it is (a node that sees the same path at the same size uses
                # it as is), else its bytes from the object store (in a list: fetched only
                # when needed, not by Ray before the constructor runs).
                "model": {"path": str(artifact.tflite), "bytes": artifact.tflite.stat().st_size},
                "model_ref": [model],
                "info": asdict(info),
                "rules": asdict(Rules.of(settings)),
                "out_folder": str(layout.out_folder) if layout.out_folder else "",
                "threads": threads,
            },
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=LABEL_CPUS * threads,
            batch_size=BATCH,
            batch_format="numpy",
            scheduling_strategy="SPREAD",
        )
        keepers = sinks if sinks is not None else backfill_sinks(settings)
        _collect(ds.iter_rows(), summary, keepers, settings, len(rows))
    finally:
        ray.shutdown()
    summary.seconds = time.monotonic() - started
    return summary


def _pool(ray: Any, cpus: int, gflops: float) -> tuple[int, int]:
    """(actors, threads each): as the service's budget does, a light model gets one
    single-thread interpreter per core; a heavy one gets one interpreter per node using all
    of its cores (each interpreter packs VGG16's weights once, and threads share them)."""
    per_node = sorted(
        {int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")} - {0}
    )
    if gflops < budget.HEAVY_GFLOPS or len(per_node) != 1:
        return cpus, 1  # light, or nodes of different sizes: one per core
    return max(1, cpus // per_node[0]), per_node[0]


def _connect(ray: Any, address: str) -> None:
    # Quiet: our own progress bar and summary say what happens.
    logging.getLogger("ray").setLevel(logging.WARNING)
    ray.data.DataContext.get_current().enable_progress_bars = False
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if address == "auto" and not os.environ.get("RAY_ADDRESS"):
            ray.init(**kwargs)  # a local Ray for this run
        else:
            ray.init(address=None if address == "auto" else address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayUnavailable(f"cannot reach the Ray cluster at {address}: {exc}") from None


def _collect(
    rows: Iterator[dict[str, Any]],
    summary: Summary,
    sinks: list[ResultSink],
    settings: Settings,
    total: int,
) -> None:
    """Count results as they come back and hand them to the index/XMP writers."""
    from dropsight.daemon.progress import bar

    for sink in sinks:
        sink.configure(settings)
    try:
        with bar(total, desc="backfill") as shown:
            for row in rows:
                node = str(row["node"])[:12]
                summary.nodes[node] = summary.nodes.get(node, 0) + 1
                record = json.loads(row["record"]) if row["record"] else None
                if record is None:
                    continue  # vanished before it could be written
                if record["status"] == "ok":
                    summary.done += 1
                else:
                    summary.failed += 1
                photo, json_path = Path(os.fsdecode(row["path"])), Path(os.fsdecode(row["sidecar"]))
                written = Written(photo, Path(os.fsdecode(row["root"])), json_path, record)
                for sink in sinks:
                    sink.accept([written])
                shown.update(1)
    finally:
        for sink in sinks:
            sink.close()


class _Decoder:
    """Read, hash and decode a batch of photos (a Ray task; never raises for a bad photo)."""

    def __init__(self, size: tuple[int, int], resize: str) -> None:
        self.size, self.resize = size, resize

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        rows: dict[str, list[Any]] = {
            k: []
            for k in ("path", "root", "sidecar", "pixels", "ok", "facts", "error_kind", "error")
        }
        for path, root, json_path in zip(
            batch["path"], batch["root"], batch["sidecar"], strict=True
        ):
            item = prepare(_job(path, root, json_path), self.size, self.resize)
            ok = item.pixels is not None
            rows["path"].append(path)
            rows["root"].append(root)
            rows["sidecar"].append(json_path)
            # Decoded pixels are whole numbers 0..255: uint8 carries them losslessly, in a
            # quarter of the bytes the object store has to move.
            pixels = item.pixels if item.pixels is not None else np.zeros((*self.size, 3))
            rows["pixels"].append(pixels.astype(np.uint8))
            rows["ok"].append(ok)
            rows["facts"].append(json.dumps(asdict(item.facts)) if item.facts else "")
            rows["error_kind"].append(item.error.kind if item.error else "")
            rows["error"].append(str(item.error) if item.error else "")
        return {**rows, "pixels": np.stack(rows["pixels"])}


class _Labeller:
    """One LiteRT interpreter on a worker: labels a batch and writes its sidecars."""

    def __init__(
        self,
        model: dict[str, Any],
        model_ref: list[Any],
        info: dict[str, Any],
        rules: dict[str, Any],
        *,
        out_folder: str,
        threads: int = 1,
    ) -> None:
        import ray

        info["input_size"] = tuple(info["input_size"])
        self.info = ModelInfo(**info)
        self.rules = Rules(**rules)
        tflite = Path(model["path"])
        if not (tflite.is_file() and tflite.stat().st_size == model["bytes"]):
            folder = Path(tempfile.mkdtemp(prefix="dropsight-ray-"))
            tflite = folder / f"{self.info.name}.tflite"
            tflite.write_bytes(ray.get(model_ref[0]))
        artifact = ModelArtifact(
            self.info.name, self.info.fingerprint, tflite, self.info.input_size, "ray"
        )
        self.classifier = LiteRTClassifier(artifact, self.info, lanes=1, threads=threads)
        self.layout = sidecar.Layout(Path(out_folder) if out_folder else None)
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        items = []
        for i in range(len(batch["path"])):
            job = _job(batch["path"][i], batch["root"][i], batch["sidecar"][i])
            facts = json.loads(batch["facts"][i]) if batch["facts"][i] else None
            error = ImageError(str(batch["error_kind"][i]), str(batch["error"][i]))
            items.append(
                Prepared(
                    job,
                    facts=FileFacts(**facts) if facts else None,
                    pixels=batch["pixels"][i].astype(np.float32) if batch["ok"][i] else None,
                    error=None if batch["ok"][i] else error,
                )
            )
        records = label(self.classifier, items, self.rules, self.layout.display_path)
        out: dict[str, list[Any]] = {k: [] for k in ("path", "root", "sidecar", "record", "node")}
        for item, record in zip(items, records, strict=True):
            written = ""
            if not item.vanished and os.path.lexists(item.job.path):
                sidecar.write(item.job.sidecar, record)  # atomic: a kill leaves no half file
                written = sidecar.dumps(record)
            out["path"].append(os.fsencode(item.job.path))
            out["root"].append(os.fsencode(item.job.root))
            out["sidecar"].append(os.fsencode(item.job.sidecar))
            out["record"].append(written)
            out["node"].append(self.node)
        return out


def _job(path: bytes, root: bytes, json_path: bytes) -> Job:
    """A job from the byte paths rows carry (a name that is not UTF-8 survives Arrow)."""
    return Job(Path(os.fsdecode(path)), Path(os.fsdecode(root)), Path(os.fsdecode(json_path)))
