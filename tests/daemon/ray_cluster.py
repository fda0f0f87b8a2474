"""Run inside `unshare -n` (loopback only): a 2-node Ray cluster, a backfill driver on it,
killed once with SIGKILL mid-run, then run again. Prints one JSON line for the test."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

# Ray 2.60 authenticates with a token by default: every node and the driver share this one.
os.environ["RAY_AUTH_MODE"] = "token"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # no reports home (there is no network here anyway)
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))

from ray.cluster_utils import Cluster


def driver(folder: str, address: str) -> subprocess.Popen[str]:
    command = ["backfill", folder, "--model", "efficientnet-lite0", "--ray", address, "--json"]
    return subprocess.Popen(
        [sys.executable, "-m", "dropsight.daemon", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def main() -> int:
    folder, kill_after = sys.argv[1], int(sys.argv[2])
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1"}
    )
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    report: dict[str, object] = {"address": cluster.address}
    try:
        if kill_after:
            first = driver(folder, cluster.address)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and first.poll() is None:
                if len(list(Path(folder).rglob("*.json"))) >= kill_after:
                    break
                time.sleep(0.05)
            report["first_exit"] = first.poll()  # None: still running when killed
            first.send_signal(signal.SIGKILL)
            report["first_stderr"] = first.communicate()[1][-2000:]
            # The driver's actors live in the cluster, not under it: a batch in flight may
            # still land. Wait until nothing more appears, then record what is on disk.
            settled, seen = time.monotonic(), -1
            while time.monotonic() - settled < 3:
                now = len(list(Path(folder).rglob("*.json")))
                if now != seen:
                    seen, settled = now, time.monotonic()
                time.sleep(0.2)
            report["after_kill"] = {
                str(p): p.stat().st_mtime_ns for p in Path(folder).rglob("*.json")
            }
        second = driver(folder, cluster.address)
        out, err = second.communicate(timeout=600)
        report["returncode"] = second.returncode
        report["summary"] = json.loads(out.strip().splitlines()[-1]) if out.strip() else None
        if kill_after:
            before: dict[str, int] = report["after_kill"]  # type: ignore[assignment]
            report["redone"] = [p for p, t in before.items() if Path(p).stat().st_mtime_ns != t]
            report["after_kill"] = len(before)
        report["stderr"] = err[-3000:]
    finally:
        cluster.shutdown()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
