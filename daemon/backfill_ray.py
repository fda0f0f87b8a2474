"""`dropsight backfill --ray`: the same job spread over a Ray cluster with Ray Data.

listing (driver) -> batches of paths -> an actor pool, one actor per node, each running the
service's own stages (read + decode threads -> LiteRT interpreters -> sidecar writer) on the
node's cores -> the driver, which counts, shows progress and keeps the index/XMP.

Decoding runs beside the interpreters inside the actor, not as separate Ray tasks: decoded
pixels then never cross the object store, and the service's budget (light models: a lane per
core; heavy ones: decoding and inference take turns on every core) holds on each node. As
separate tasks, VGG16 reached 0.66-0.77x local throughput at equal cores here.
The photos must be at the same path on every node (shared storage), or, with
`--ray-files driver`, tasks on the driver's node read them, their bytes travel to the actors
and the records back, and the driver writes the sidecars. The model file travels through
Ray's object store. Ray is an optional extra: `pip install 'dropsight[ray]'`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from dropsight.config.settings import Settings
from dropsight.daemon import budget, imaging, sidecar
from dropsight.daemon.backfill import Stages, Summary, to_do
from dropsight.daemon.classifier import Classifier, LiteRTClassifier, ModelInfo
from dropsight.daemon.contracts import SidecarRecord
from dropsight.daemon.decode import Prepared, decode_read
from dropsight.daemon.imaging import FileFacts, ImageError
from dropsight.daemon.labelling import Rules, label
from dropsight.daemon.models.store import ModelArtifact
from dropsight.daemon.sinks import ResultSink, Written

log = logging.getLogger(__name__)

BATCH = 32  # photos per hand-over to a node's actor, at most
IN_FLIGHT = 2  # batches an actor holds at once: one labelled while the next is decoded
WAIT_S = 0.02  # how often a call checks whether its photos are written
READERS = 2  # `--ray-files driver`: read tasks at once on the driver's node
FILES = ("shared", "driver")  # who reads photos and writes sidecars: every node, or the driver
# What an actor returns per photo; `outcome`: labelled, current, unreadable or not_written.
COLUMNS = ("path", "root", "sidecar", "record", "outcome", "node")
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
    files: str = "shared",
    sinks: list[ResultSink] | None = None,
) -> Summary:
    """Label what is left under `roots` on the Ray cluster at `address` (or `auto`).

    `files`: "shared", every node reads the photos and writes sidecars at the same paths;
    "driver", only the driver's node touches them (the other nodes get the bytes).
    """
    if files not in FILES:
        raise ValueError(f"files must be one of {FILES}, not {files!r}")
    ray = _ray()
    from dropsight.daemon.backfillcli import backfill_sinks
    from dropsight.daemon.classifier import resolve_model

    artifact, info = resolve_model(settings)
    summary = Summary(model=info.name, mode="ray")
    work = list(to_do(settings, roots, info.fingerprint, summary))
    if dry_run or not work:
        return summary
    _connect(ray, address)
    started = time.monotonic()  # Ray's own start-up is not the photos' time
    try:
        actors, cpus = _pool(ray)
        model = ray.put(artifact.tflite.read_bytes())
        rows = [{"path": os.fsencode(photo), "root": os.fsencode(root)} for photo, root in work]
        # Small enough batches that every actor gets many (an even finish), two in flight
        # per actor so its stages never drain between them.
        size = max(1, min(BATCH, len(rows) // (8 * actors)))
        ds = ray.data.from_items(rows, override_num_blocks=max(1, len(rows) // size))
        if files == "driver":
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            here = ray.get_runtime_context().get_node_id()
            ds = ds.map_batches(
                _read_files,
                num_cpus=0,  # reading waits on the disk; the cores are the actors'
                concurrency=READERS,  # without cores asked for, nothing else holds them back
                batch_size=size,
                batch_format="numpy",
                scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
            )
        ds = ds.map_batches(
            _NodeBackfill,
            fn_constructor_kwargs={
                # The file where it is (a node that sees the same path at the same size uses
                # it as is), else its bytes from the object store (in a list: fetched only
                # when needed, not by Ray before the constructor runs).
                "model": {"path": str(artifact.tflite), "bytes": artifact.tflite.stat().st_size},
                "model_ref": [model],
                "info": asdict(info),
                "settings": settings,
                "cpus": cpus,
                "files": files,
            },
            compute=ray.data.ActorPoolStrategy(
                size=actors, max_tasks_in_flight_per_actor=IN_FLIGHT
            ),
            num_cpus=cpus,
            max_concurrency=IN_FLIGHT,
            batch_size=size,
            batch_format="numpy",
            scheduling_strategy="SPREAD",
        )
        keepers = sinks if sinks is not None else backfill_sinks(settings)
        _collect(ds.iter_rows(), summary, keepers, settings, len(rows), write=files == "driver")
    finally:
        ray.shutdown()
    summary.seconds = time.monotonic() - started
    return summary


def _pool(ray: Any) -> tuple[int, int]:
    """(actors, cores each): one actor per node with all of its cores, as the service runs
    on one machine; nodes of different sizes get one single-core actor per core instead."""
    per_node = [int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]
    per_node = [cpus for cpus in per_node if cpus > 0] or [1]
    if len(set(per_node)) == 1:
        return len(per_node), per_node[0]
    return sum(per_node), 1


def _connect(ray: Any, address: str) -> None:
    # Quiet: our own progress bar and summary say what happens.
    logging.getLogger("ray").setLevel(logging.WARNING)
    ray.data.DataContext.get_current().enable_progress_bars = False
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    # Ray reports usage statistics over the network by default; we never send anything the
    # user did not ask for (a cluster's own setting, `ray start --disable-usage-stats`, rules
    # its nodes).
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        if address == "auto" and not os.environ.get("RAY_ADDRESS"):
            # A local Ray for this run; no dashboard: the progress bar is ours.
            ray.init(include_dashboard=False, **kwargs)
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
    *,
    write: bool,
) -> None:
    """Count results as they come back (writing their sidecars when `write`) and hand them
    to the index/XMP writers."""
    from dropsight.daemon.progress import bar

    for sink in sinks:
        sink.configure(settings)
    try:
        with bar(total, desc="backfill") as shown:
            for row in rows:
                node = str(row["node"])[:12]
                summary.nodes[node] = summary.nodes.get(node, 0) + 1
                shown.update(1)
                photo, json_path = Path(os.fsdecode(row["path"])), Path(os.fsdecode(row["sidecar"]))
                outcome = str(row["outcome"])
                if outcome == "current":
                    summary.skipped += 1
                    continue
                if outcome == "not_written":
                    summary.failed += 1
                    continue
                if outcome == "unreadable":
                    if os.path.lexists(photo):  # here, but its node could not read it
                        summary.unreachable += 1
                    continue  # else vanished before it could be labelled
                record = json.loads(row["record"])
                if write and not _write(photo, json_path, record):
                    summary.failed += 1
                    continue
                if record["status"] == "ok":
                    summary.done += 1
                else:
                    summary.failed += 1
                written = Written(photo, Path(os.fsdecode(row["root"])), json_path, record)
                for sink in sinks:
                    sink.accept([written])
    finally:
        for sink in sinks:
            sink.close()


def _write(photo: Path, json_path: Path, record: SidecarRecord) -> bool:
    """Write a sidecar on the driver (`--ray-files driver`); False when it could not be."""
    if not os.path.lexists(photo):
        return False
    try:
        sidecar.write(json_path, record)  # atomic: a kill leaves no half file
    except OSError as exc:
        log.error("cannot write %s: %s", json_path, exc.strerror or exc)
        return False
    return True


def _read_files(batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
    """Read and hash photos on the driver's node (`--ray-files driver`); never raises."""
    out: dict[str, list[Any]] = {k: [] for k in ("path", "root", "data", "facts", "error")}
    for path, root in zip(batch["path"], batch["root"], strict=True):
        try:
            data, facts = imaging.read_file(Path(os.fsdecode(path)))
            error = ""
        except ImageError as exc:
            data, facts, error = b"", None, json.dumps([exc.kind, str(exc)])
        out["path"].append(path)
        out["root"].append(root)
        out["data"].append(data)
        out["facts"].append(json.dumps(asdict(facts)) if facts else "")
        out["error"].append(error)
    return out


class _Results:
    """The stages' result sink in an actor: what the writer wrote, until a call returns it."""

    name = "ray-results"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._written: dict[Path, Written] = {}

    def configure(self, settings: Settings) -> None:
        """Nothing to configure: results go back to the driver."""

    def accept(self, batch: Sequence[Written]) -> None:
        """Keep what the writer wrote."""
        with self._lock:
            for written in batch:
                self._written[written.photo] = written

    def take(self, photos: Sequence[Path]) -> list[Written | None]:
        """Hand these photos' results over (None: vanished, nothing written)."""
        with self._lock:
            return [self._written.pop(photo, None) for photo in photos]

    def close(self) -> None:
        """Nothing held open."""


class _NodeBackfill:
    """A Ray actor using all the cores Ray gave it: labels batches of photos."""

    def __init__(
        self,
        model: dict[str, Any],
        model_ref: list[Any],
        info: dict[str, Any],
        settings: Settings,
        *,
        cpus: int,
        files: str = "shared",
    ) -> None:
        import ray

        info["input_size"] = tuple(info["input_size"])
        model_info = ModelInfo(**info)
        tflite = Path(model["path"])
        self._copy: Path | None = None  # a model copy of our own, removed at the end
        if not (tflite.is_file() and tflite.stat().st_size == model["bytes"]):
            self._copy = Path(tempfile.mkdtemp(prefix="dropsight-ray-"))
            tflite = self._copy / f"{model_info.name}.tflite"
            tflite.write_bytes(ray.get(model_ref[0]))
        artifact = ModelArtifact(
            model_info.name, model_info.fingerprint, tflite, model_info.input_size, "ray"
        )
        settings = replace(settings, service=replace(settings.service, cores=cpus))
        plan = budget.plan(model_info.gflops, settings.model.batch_size, cpus=cpus)
        classifier = LiteRTClassifier(
            artifact, model_info, lanes=plan.lanes, threads=plan.threads_per_lane
        )
        self.node = ray.get_runtime_context().get_node_id()
        self._labeller: _StagesLabeller | _BytesLabeller = (
            _StagesLabeller(settings, classifier)
            if files == "shared"
            else _BytesLabeller(settings, classifier, plan.decoders)
        )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        return self._labeller(batch, self.node)

    def __del__(self) -> None:
        # Ray Data drops its reference when the pool shuts down gracefully: the one
        # shutdown path of the stages (no cycle holds this object, so it runs then).
        with contextlib.suppress(Exception):
            self._labeller.close()
        if self._copy is not None:
            shutil.rmtree(self._copy, ignore_errors=True)


class _StagesLabeller:
    """Runs the service's stages on the node: reads, labels and writes photos by path."""

    def __init__(self, settings: Settings, classifier: Classifier) -> None:
        self._results = _Results()
        self._layout = sidecar.Layout.of(settings)
        self._fingerprint = classifier.info.fingerprint
        self._stages = Stages(settings, classifier, [self._results])
        self._stages.start()

    def __call__(self, batch: dict[str, np.ndarray], node: str) -> dict[str, list[Any]]:
        photos = [
            (Path(os.fsdecode(p)), Path(os.fsdecode(r)))
            for p, r in zip(batch["path"], batch["root"], strict=True)
        ]
        for photo, root in photos:
            self._stages.put(photo, root)
        waiting = [photo for photo, _ in photos]
        while waiting:  # until the writer has been through each (vanished ones too)
            time.sleep(WAIT_S)
            waiting = [photo for photo in waiting if self._stages.jobs.is_queued(photo)]
        out: dict[str, list[Any]] = {k: [] for k in COLUMNS}
        results = self._results.take([photo for photo, _ in photos])
        for (photo, root), written in zip(photos, results, strict=True):
            json_path = self._layout.sidecar_for(photo, root)
            out["path"].append(os.fsencode(photo))
            out["root"].append(os.fsencode(root))
            out["sidecar"].append(os.fsencode(json_path))
            out["record"].append(sidecar.dumps(written.record) if written else "")
            out["outcome"].append("labelled" if written else self._why_not(photo, json_path))
            out["node"].append(node)
        return out

    def _why_not(self, photo: Path, json_path: Path) -> str:
        """Why the stages wrote no sidecar for a photo."""
        if not os.path.lexists(photo):
            return "unreadable"  # gone, or this node does not see the library
        if sidecar.scan_state(photo, json_path, self._fingerprint) == "current":
            return "current"  # labelled meanwhile (a retried batch after a lost node, say)
        return "not_written"  # the writer logged why (disk full, permissions)

    def close(self) -> None:
        """Stop the stages (what was labelled is written)."""
        self._stages.close()


class _BytesLabeller:
    """Labels photos whose bytes came from the driver's node; returns records, writes nothing."""

    def __init__(self, settings: Settings, classifier: Classifier, decoders: int) -> None:
        self._classifier = classifier
        self._layout = sidecar.Layout.of(settings)
        self._rules = Rules.of(settings)
        self._size, self._resize = classifier.info.input_size, settings.model.resize
        self._decoders = ThreadPoolExecutor(max(1, decoders), thread_name_prefix="decode")

    def __call__(self, batch: dict[str, np.ndarray], node: str) -> dict[str, list[Any]]:
        photos = [
            self._layout.job_for(Path(os.fsdecode(p)), Path(os.fsdecode(r)))
            for p, r in zip(batch["path"], batch["root"], strict=True)
        ]

        def decode(i: int) -> Prepared:
            if batch["error"][i]:
                kind, message = json.loads(batch["error"][i])
                facts = json.loads(batch["facts"][i]) if batch["facts"][i] else None
                error = ImageError(kind, message)
                return Prepared(photos[i], FileFacts(**facts) if facts else None, error=error)
            facts = FileFacts(**json.loads(batch["facts"][i]))
            return decode_read(photos[i], bytes(batch["data"][i]), facts, self._size, self._resize)

        items = list(self._decoders.map(decode, range(len(photos))))
        records = label(self._classifier, items, self._rules, self._layout.display_path)
        out: dict[str, list[Any]] = {k: [] for k in COLUMNS}
        for item, record in zip(items, records, strict=True):
            out["path"].append(os.fsencode(item.job.path))
            out["root"].append(os.fsencode(item.job.root))
            out["sidecar"].append(os.fsencode(item.job.sidecar))
            out["record"].append("" if item.vanished else sidecar.dumps(record))
            out["outcome"].append("unreadable" if item.vanished else "labelled")
            out["node"].append(node)
        return out

    def close(self) -> None:
        """Stop the decode threads."""
        self._decoders.shutdown(wait=True)
