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

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dropsight.config.settings import Settings
from dropsight.daemon.backfill import ray_workers
from dropsight.daemon.backfill.local import STOP_TIMEOUT_S, Summary, backfill_outputs, to_do
from dropsight.daemon.contracts import SidecarRecord
from dropsight.daemon.models.store import ModelArtifact
from dropsight.daemon.outputs import sidecar
from dropsight.daemon.outputs.protocol import Written
from dropsight.daemon.outputs.registry import Outputs
from dropsight.daemon.photos.imaging import PhotoLimits
from dropsight.daemon.runtime.classifier import ModelInfo

log = logging.getLogger(__name__)

BATCH = 32  # photos per hand-over to a node's actor, at most
IN_FLIGHT = 2  # batches an actor holds at once: one labelled while the next is decoded
SINK_BATCH = 256  # results per hand-over to the driver's index/XMP writers
READERS = 2  # `--ray-files driver`: read tasks at once on the driver's node
FILES = ("shared", "driver")  # who reads photos and writes sidecars: every node, or the driver
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
    outputs: Outputs | None = None,
) -> Summary:
    """Label what is left under `roots` on the Ray cluster at `address` (or `auto`).

    `files`: "shared", every node reads the photos and writes sidecars at the same paths;
    "driver", only the driver's node touches them (the other nodes get the bytes).
    `outputs`: the registry's backfill outputs (index, XMP) unless given; kept here.
    """
    if files not in FILES:
        raise ValueError(f"files must be one of {FILES}, not {files!r}")
    ray = _ray()
    from dropsight.daemon.runtime.classifier import resolve_model

    artifact, info = resolve_model(settings)
    summary = Summary(model=info.name, mode="ray")
    work = list(to_do(settings, roots, info.fingerprint, summary))
    if dry_run or not work:
        return summary
    _connect(ray, address)
    started = time.monotonic()  # Ray's own start-up is not the photos' time
    try:
        rows = _dataset(ray, settings, artifact, info, work, files=files).iter_rows()
        keepers = outputs if outputs is not None else backfill_outputs()
        _collect(rows, summary, keepers, settings, len(work), write=files == "driver")
    finally:
        ray.shutdown()
    summary.seconds = time.monotonic() - started
    return summary


def _dataset(
    ray: Any,
    settings: Settings,
    artifact: ModelArtifact,
    info: ModelInfo,
    work: list[tuple[Path, Path]],
    *,
    files: str,
) -> Any:
    """The Ray Data pipeline: (read on the driver's node ->) an actor per node labelling."""
    actors, cpus = _pool(ray)
    model = ray.put(artifact.path.read_bytes())
    rows = [{"path": os.fsencode(photo), "root": os.fsencode(root)} for photo, root in work]
    # Small enough batches that every actor gets many (an even finish), two in flight
    # per actor so its stages never drain between them.
    size = max(1, min(BATCH, len(rows) // (8 * actors)))
    ds = ray.data.from_items(rows, override_num_blocks=max(1, len(rows) // size))
    if files == "driver":
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = ray.get_runtime_context().get_node_id()
        ds = ds.map_batches(
            ray_workers.read_files,
            fn_kwargs={"limits": PhotoLimits.of(settings)},
            num_cpus=0,  # reading waits on the disk; the cores are the actors'
            concurrency=READERS,  # without cores asked for, nothing else holds them back
            batch_size=size,
            batch_format="numpy",
            scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
        )
    return ds.map_batches(
        ray_workers.NodeBackfill,
        fn_constructor_kwargs={
            # The file where it is (a node that sees the same path at the same size uses
            # it as is), else its bytes from the object store (in a list: fetched only
            # when needed, not by Ray before the constructor runs).
            "model": ray_workers.ShippedModel.of(artifact, info),
            "model_ref": [model],
            "settings": settings,
            "cpus": cpus,
            "files": files,
        },
        # Calls really run side by side (Ray Data runs an actor's calls one at a time
        # unless told): one batch decodes while the other is labelled.
        compute=ray.data.ActorPoolStrategy(
            size=actors,
            max_tasks_in_flight_per_actor=IN_FLIGHT,
            max_concurrent_calls_per_actor=IN_FLIGHT,
            enable_true_multi_threading=True,
        ),
        num_cpus=cpus,
        batch_size=size,
        batch_format="numpy",
        scheduling_strategy="SPREAD",
    )


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
    outputs: Outputs,
    settings: Settings,
    total: int,
    *,
    write: bool,
) -> None:
    """Count results as they come back (writing their sidecars when `write`) and hand them
    to the outputs (index, XMP)."""
    from dropsight.daemon.core.progress import bar

    outputs.configure(settings)
    batch: list[Written] = []

    def hand_over() -> None:
        # One call (one index transaction) per batch, not per photo.
        outputs.accept(tuple(batch))
        batch.clear()

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
                if outcome == "odd":
                    summary.odd += 1
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
                batch.append(Written(photo, Path(os.fsdecode(row["root"])), json_path, record))
                if len(batch) >= SINK_BATCH:
                    hand_over()
        hand_over()
    finally:
        outputs.close(STOP_TIMEOUT_S)


def _write(photo: Path, json_path: Path, record: SidecarRecord) -> bool:
    """Write a sidecar on the driver (`--ray-files driver`); False when it could not be."""
    if not os.path.lexists(photo):
        return False
    odd = sidecar.load(json_path)
    if odd.kind == "odd":  # another program's file: never written over
        log.warning("%s is not a Dropsight sidecar (%s): left as it is", json_path, odd.reason)
        return False
    try:
        sidecar.write(json_path, record)  # atomic: a kill leaves no half file
    except OSError as exc:
        log.error("cannot write %s: %s", json_path, exc.strerror or exc)
        return False
    return True
