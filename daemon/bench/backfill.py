"""`dropsight bench --mode backfill`: the same photos backfilled locally and on Ray, one run.

Local with 1 core and with every core; Ray with 1 node holding every core, and with 2 nodes
sharing them. Ray runs in a private network namespace (loopback only, `unshare -n`), which
needs root; without it the Ray rows say why they are missing. The clock starts once Ray is
connected (the actors' model loading counts, Ray's own start does not).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from dropsight.config.settings import Settings, WatchSettings
from dropsight.daemon.outputs.protocol import Written

GOAL_RAY_VS_LOCAL = 0.85
DEFAULT_PHOTOS = {"light": 600, "heavy": 160}


def bench_backfill(args: argparse.Namespace, settings: Settings, work: Path) -> dict[str, Any]:
    """Every way of backfilling the same photos, with scaling figures and the goal."""
    from dropsight.daemon.bench.main import photos, say
    from dropsight.daemon.models import registry

    heavy = registry.spec(settings.model.name).gflops >= 2
    count = args.count or DEFAULT_PHOTOS["heavy" if heavy else "light"]
    library = work / "library"
    for i, src in enumerate(photos(args.images, count)):
        target = library / f"{i // 100:02d}" / f"{i:05d}{src.suffix.lower()}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    cpus = os.cpu_count() or 1
    out: dict[str, Any] = {"model": settings.model.name, "photos": count, "cpus": cpus}
    for name, cores in (("local_1_core", 1), ("local_all_cores", 0)):
        say(f"backfill {name} ...")
        out[name] = _local(settings, library, cores)
        _clear(library)
    say("backfill on Ray: 1 node, then 2 nodes (private network namespace) ...")
    out.update(_ray_runs(settings, library, cpus))
    local_all = out["local_all_cores"]["img_per_s"]
    out["scaling_local"] = round(local_all / (out["local_1_core"]["img_per_s"] * cpus), 2)
    # Whole runs (each loads its model: ~1 s for Lite0, several for VGG16) and the steady
    # rate after the first result, which is what a library of thousands of photos sees.
    ran = [key for key in ("ray_1_node", "ray_2_nodes") if "img_per_s" in out.get(key, {})]
    goal: dict[str, Any] = {"ray_vs_local_at_least": GOAL_RAY_VS_LOCAL}
    for name, figure in (("equal_cores", "img_per_s"), ("steady", "steady_img_per_s")):
        local = out["local_all_cores"][figure]
        ratios = {key: round(out[key][figure] / local, 2) if local else 0.0 for key in ran}
        out[f"ray_vs_local_{name}"] = ratios
        goal[f"met_{name}"] = bool(ratios) and min(ratios.values()) >= GOAL_RAY_VS_LOCAL
    out["goal"] = goal
    return out


class Clock:
    """An output that notes when results arrive, to time the middle of a run."""

    name = "bench-clock"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.arrivals: list[tuple[float, int]] = []  # (when, results so far)

    def configure(self, settings: Settings) -> None:
        """Nothing to configure."""

    def accept(self, batch: Sequence[Written]) -> None:
        """Note a batch of results."""
        now = time.monotonic()
        with self._lock:
            done = self.arrivals[-1][1] if self.arrivals else 0
            self.arrivals.append((now, done + len(batch)))

    def forget(self, photo: Path, root: Path) -> None:
        """Nothing to forget."""

    def close(self) -> None:
        """Nothing to release."""

    def figures(self, started: float) -> dict[str, float]:
        """Seconds to the first result, and photos/s over the middle half of the results.

        The middle half leaves out start-up (processes, model loading) and the tail, which a
        library of thousands of photos hardly sees; Ray returns results a batch at a time,
        so a rate from the first result on would count work done before it.
        """
        if not self.arrivals:
            return {"first_result_s": 0.0, "steady_img_per_s": 0.0}
        total = self.arrivals[-1][1]
        t1, n1 = next(a for a in self.arrivals if a[1] >= total / 4)
        t3, n3 = next(a for a in self.arrivals if a[1] >= 3 * total / 4)
        return {
            "first_result_s": round(self.arrivals[0][0] - started, 1),
            "steady_img_per_s": round((n3 - n1) / (t3 - t1), 2) if t3 > t1 else 0.0,
        }


def _local(settings: Settings, library: Path, cores: int) -> dict[str, Any]:
    from dropsight.daemon.backfill.local import backfill_outputs, run_local
    from dropsight.daemon.runtime.classifier import open_classifier

    s = replace(
        settings,
        watch=WatchSettings(folders=(library,)),
        service=replace(settings.service, cores=cores),
    )
    clock, started = Clock(), time.monotonic()  # loading the model counts, as on Ray
    outputs = backfill_outputs(extra=[clock], entries=())  # timing only
    summary = run_local(s, [library], open_classifier(s), outputs=outputs)
    summary.seconds = time.monotonic() - started
    return {**summary.as_json(), **clock.figures(started)}


def _clear(library: Path) -> None:
    for p in library.rglob("*.json"):
        p.unlink()


def _ray_runs(settings: Settings, library: Path, cpus: int) -> dict[str, Any]:
    why_not = _no_namespace()
    if why_not:
        return {"ray_1_node": why_not, "ray_2_nodes": why_not}
    out: dict[str, Any] = {}
    for key, nodes in (("ray_1_node", [cpus]), ("ray_2_nodes", [cpus // 2, cpus - cpus // 2])):
        weights = str(settings.model.weights) if settings.model.weights else ""
        config = json.dumps({"model": settings.model.name, "weights": weights, "nodes": nodes})
        script = (
            f"ip link set lo up && exec {sys.executable} -m dropsight.daemon.bench.backfill "
            f"{library} '{config}'"
        )
        done = subprocess.run(
            ["unshare", "-n", "sh", "-c", script], capture_output=True, text=True, check=False
        )
        lines = done.stdout.strip().splitlines()
        out[key] = (
            json.loads(lines[-1])
            if done.returncode == 0 and lines
            else {"error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
        )
        _clear(library)
    return out


def _no_namespace() -> str | None:
    try:
        import ray  # noqa: F401
    except ImportError:
        return "skipped: Ray is not installed (pip install 'dropsight[ray]')"
    if sys.platform != "linux" or os.geteuid() != 0 or not shutil.which("unshare"):
        return "skipped: Ray runs in a private network namespace here, which needs root"
    return None


def _ray_child(library: Path, config: dict[str, Any]) -> None:
    """Inside the namespace: a cluster of the given nodes, one backfill, its summary."""
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # never reports home (and cannot: no network)
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    from ray.cluster_utils import Cluster

    from dropsight.config.settings import load
    from dropsight.daemon.backfill.local import backfill_outputs
    from dropsight.daemon.backfill.on_ray import run_ray
    from dropsight.daemon.core import paths

    first, *others = config["nodes"]
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": first, "node_ip_address": "127.0.0.1"}
    )
    for cpus in others:
        cluster.add_node(num_cpus=cpus, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    try:
        base = load(paths.config_file())
        s = replace(
            base,
            watch=WatchSettings(folders=(library,)),
            model=replace(
                base.model,
                name=config["model"],
                fallback="",
                weights=Path(config["weights"]) if config["weights"] else base.model.weights,
            ),
        )
        clock, started = Clock(), time.monotonic()
        outputs = backfill_outputs(extra=[clock], entries=())  # timing only
        summary = run_ray(s, [library], cluster.address, outputs=outputs)
    finally:
        cluster.shutdown()
    print(json.dumps({**summary.as_json(), **clock.figures(started)}))


if __name__ == "__main__":
    _ray_child(Path(sys.argv[1]), json.loads(sys.argv[2]))
