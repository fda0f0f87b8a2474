"""Run inside `unshare -n` (loopback only): a 2-node Ray cluster whose second node cannot see
the library (a tmpfs is mounted over it in that node's own mount namespace). Backfills once
with the default `--ray-files shared`, then with `--ray-files driver`. Prints one JSON line."""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

os.environ["RAY_AUTH_MODE"] = "token"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))

import ray
from ray.cluster_utils import Cluster


def backfill(folder: str, address: str, *extra: str) -> dict[str, object]:
    command = ["backfill", folder, "--model", "efficientnet-lite0", "--ray", address, "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "dropsight.daemon", *command, *extra],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    return {
        "returncode": done.returncode,
        "summary": json.loads(lines[-1]) if lines else None,
        "stderr": done.stderr[-3000:],
    }


def hidden_node(folder: str, address: str) -> subprocess.Popen[bytes]:
    """`ray start` in a mount namespace of its own where `folder` is an empty tmpfs."""
    ray_cli = Path(sys.executable).with_name("ray")
    start = (
        f"mount -t tmpfs none '{folder}' && exec '{ray_cli}' start --address '{address}' "
        "--node-ip-address 127.0.0.1 --num-cpus 1 --block --disable-usage-stats"
    )
    return subprocess.Popen(
        ["unshare", "-m", "sh", "-c", start],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its raylet and workers go with it
    )


def main() -> int:
    folder = sys.argv[1]
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1"}
    )
    node = hidden_node(folder, cluster.address)
    report: dict[str, object] = {"address": cluster.address}
    try:
        ray.init(address=cluster.address, logging_level=logging.WARNING)
        deadline = time.monotonic() + 120
        while sum(n["Alive"] for n in ray.nodes()) < 2:
            assert time.monotonic() < deadline, "the hidden node did not join"
            assert node.poll() is None, "the hidden node's `ray start` ended"
            time.sleep(0.5)
        ray.shutdown()
        report["shared"] = backfill(folder, cluster.address)
        report["driver"] = backfill(folder, cluster.address, "--ray-files", "driver")
    finally:
        os.killpg(node.pid, signal.SIGTERM)
        node.wait(60)
        cluster.shutdown()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
