"""`dropsight backfill`: a library's backlog under the service's rules, locally and on Ray."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dropsight.config.settings import Settings, WatchSettings
from dropsight.daemon.api.server import ControlServer
from dropsight.daemon.outputs.index.library import Index
from dropsight.daemon.service.service import Service
from tests.daemon.helpers import (
    FakeClassifier,
    dropsight,
    load_valid,
    make_photo,
    sidecars,
    temp_files,
    wait_for,
)
from tests.daemon.outputs.toy_output import ToyOutput, toy_path

MODEL = ["--model", "efficientnet-lite0"]


def library(folder: Path, count: int, size: tuple[int, int] = (320, 240)) -> Path:
    for i in range(count):
        make_photo(folder / f"sub{i % 3}" / f"{i:03d}.jpg", seed=i, size=size)
    return folder


def test_local_backfill_labels_what_is_left_once(tmp_path: Path) -> None:
    root = library(tmp_path / "lib", 24)
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    counted = dropsight("backfill", root, *MODEL, "--dry-run", "--json")
    assert counted.returncode == 0, counted.stderr
    assert json.loads(counted.stdout)["found"] == 25
    assert not sidecars(root)

    done = dropsight("backfill", root, *MODEL, "--json")
    assert done.returncode == 1, done.stderr  # the broken photo failed (and was recorded)
    summary = json.loads(done.stdout)
    assert (summary["done"], summary["failed"], summary["skipped"]) == (24, 1, 0)
    assert summary["img_per_s"] > 0
    written = {p: p.stat().st_mtime_ns for p in sidecars(root)}
    assert len(written) == 25
    assert load_valid(root / "broken.jpg.json")["status"] == "error"
    for p in written:
        load_valid(p)
    with Index() as index:
        assert index.count() == 25  # the library index is kept, as the service keeps it

    again = dropsight("backfill", root, *MODEL, "--json")
    assert json.loads(again.stdout)["skipped"] == 25
    assert {p: p.stat().st_mtime_ns for p in sidecars(root)} == written  # nothing redone
    assert not temp_files(root)


def test_local_backfill_hands_results_to_the_registrys_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Backfill uses the service's registry: a new output's line reaches both, and every
    result is with the outputs once the run returns (closing drains them)."""
    from dropsight.daemon.backfill.local import run_local
    from dropsight.daemon.outputs import registry

    monkeypatch.setattr(registry, "OUTPUTS", [*registry.OUTPUTS, registry.Entry(ToyOutput)])
    root = library(tmp_path / "lib", 12)
    summary = run_local(Settings(watch=WatchSettings(folders=(root,))), [root], FakeClassifier())
    assert summary.done == 12
    assert all(toy_path(p).exists() for p in root.rglob("*.jpg"))
    with Index() as index:
        assert index.count() == 12


def test_backfill_refuses_a_service_on_the_same_folders_but_a_dry_run_counts(
    tmp_path: Path,
) -> None:
    root = library(tmp_path / "lib", 2)
    service = Service(
        Settings(watch=WatchSettings(folders=(root,))),
        classifier_factory=lambda _s: FakeClassifier(),
    )
    server = ControlServer(service)
    service.start()
    server.start()
    try:
        counted = dropsight("backfill", root, *MODEL, "--dry-run")  # only counts: always
        assert counted.returncode == 0, counted.stderr
        assert "photos to label" in counted.stdout
        refused = dropsight("backfill", root, *MODEL)
        assert refused.returncode == 4
        assert "pause it first" in refused.stderr and str(root) in refused.stderr
        assert "--dry-run" in refused.stderr  # says what does work meanwhile
        service.pause()
        assert dropsight("backfill", root, *MODEL, "--dry-run").returncode == 0
    finally:
        server.stop()
        service.join()


def test_kill_9_mid_backfill_then_again_loses_and_redoes_nothing(tmp_path: Path) -> None:
    root = library(tmp_path / "lib", 300, size=(640, 480))
    first = subprocess.Popen(
        [sys.executable, "-m", "dropsight.daemon", "backfill", str(root), *MODEL],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: len(sidecars(root)) >= 30, 180, "some sidecars")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    before = {p: p.stat().st_mtime_ns for p in sidecars(root)}
    assert 30 <= len(before) < 300, "the backfill finished before the kill; make it bigger"
    for p in before:
        load_valid(p)  # complete JSON, even right after a kill
    again = dropsight("backfill", root, *MODEL, "--json")
    summary = json.loads(again.stdout)
    assert summary["skipped"] == len(before) and summary["done"] == 300 - len(before)
    assert len(sidecars(root)) == 300
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert not temp_files(root)


def test_ray_without_ray_installed_says_what_to_install(tmp_path: Path) -> None:
    root = library(tmp_path / "lib", 1)
    code = (
        "import sys; sys.modules['ray'] = None; from dropsight.daemon.cli.main import main; "
        f"sys.exit(main(['backfill', {str(root)!r}, '--model', 'efficientnet-lite0', "
        "'--ray', 'auto']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "dropsight backfill: --ray needs Ray (not installed here): pip install 'dropsight[ray]'"
    )


def _can_unshare() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux for a private network namespace"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs unshare and ip (util-linux, iproute2)"
    try:
        import ray  # noqa: F401
    except ImportError:
        return "needs Ray (pip install 'dropsight[ray]')"
    return None


def in_private_network(helper: str, *args: str | Path) -> dict[str, Any]:
    """Run a helper script beside this file inside `unshare -n` (loopback only); its report."""
    script = Path(__file__).parents[1] / helper
    command = " ".join(shlex.quote(str(a)) for a in (sys.executable, script, *args))
    done = subprocess.run(
        ["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {command}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


@pytest.mark.skipif(_can_unshare() is not None, reason=str(_can_unshare()))
def test_two_node_ray_cluster_on_loopback_with_a_killed_driver(tmp_path: Path) -> None:
    """A real 2-node cluster inside `unshare -n`: both nodes label, a SIGKILLed driver loses
    nothing, the re-run does only what is left, one valid sidecar per photo."""
    root = library(tmp_path / "lib", 200)
    report = in_private_network("ray_cluster.py", root, "40")
    assert str(report["address"]).startswith("127.0.0.1:")
    assert report["returncode"] == 0, report["stderr"]
    summary = report["summary"]
    after_kill = int(report["after_kill"])
    assert 40 <= after_kill < 200
    assert summary["skipped"] == after_kill and summary["done"] == 200 - after_kill
    assert report["redone"] == []  # what was written before the kill was not written again
    assert len(summary["nodes"]) == 2 and all(n > 0 for n in summary["nodes"].values()), summary
    assert len(sidecars(root)) == 200
    for p in sidecars(root):
        record = load_valid(p)
        assert record["status"] == "ok"
        # Each node chose its runtime through the same seam as the service.
        assert re.fullmatch(r"(litert|openvino)-(fp32|bf16)", record["model"]["runtime"])
    assert not temp_files(root)
    print(f"\nray backfill on 2 nodes: {summary}")


class _Nodes:
    """What `_pool` reads from Ray: the cluster's nodes."""

    def __init__(self, *cpus: int, dead: int = 0) -> None:
        self._nodes = [{"Alive": True, "Resources": {"CPU": float(n)}} for n in cpus]
        self._nodes += [{"Alive": False, "Resources": {"CPU": 8.0}}] * dead

    def nodes(self) -> list[dict[str, object]]:
        return self._nodes


def test_ray_pool_runs_one_actor_per_node_on_all_its_cores() -> None:
    """Like the service on one machine; mixed node sizes fall back to an actor per core."""
    from dropsight.daemon.backfill.on_ray import _pool

    assert _pool(_Nodes(4, 4, 4, dead=1)) == (3, 4)
    assert _pool(_Nodes(2)) == (1, 2)
    assert _pool(_Nodes(2, 4)) == (6, 1)
    assert _pool(_Nodes(0, 2)) == (1, 2)  # a head node without CPUs labels nothing


@pytest.mark.skipif(_can_unshare() is not None, reason=str(_can_unshare()))
def test_ray_driver_files_label_photos_a_node_cannot_see(tmp_path: Path) -> None:
    """A node without the library: `shared` says so and labels what it can; `driver` reads
    and writes on the driver's node, ships the bytes, and both nodes label."""
    root = library(tmp_path / "lib", 120)
    report = in_private_network("ray_hidden_node.py", root)
    shared, driver = report["shared"], report["driver"]
    # The hidden node found nothing: those photos are reported, not lost or marked failed.
    first = shared["summary"]
    assert shared["returncode"] == 1, shared["stderr"]
    assert first["unreachable"] > 0 and first["done"] + first["unreachable"] == 120, first
    assert "--ray-files driver" in shared["stderr"]
    second = driver["summary"]
    assert driver["returncode"] == 0, driver["stderr"]
    assert second["skipped"] == first["done"] and second["done"] == first["unreachable"]
    assert len(second["nodes"]) == 2 and all(n > 0 for n in second["nodes"].values()), second
    assert len(sidecars(root)) == 120
    for p in sidecars(root):
        assert load_valid(p)["status"] == "ok"
    assert not temp_files(root)
    print(f"\nshared: {first}\ndriver: {second}")


def test_ray_actor_says_why_a_photo_got_no_sidecar(tmp_path: Path) -> None:
    """The per-node labeller (no Ray needed): labelled, already current (a retried batch),
    unreadable on this node; the driver counts each differently."""
    from dropsight.daemon.backfill.ray_workers import StagesLabeller

    root = library(tmp_path / "lib", 2)
    fresh, done_before = sorted(root.rglob("*.jpg"))
    settings = Settings(watch=WatchSettings(folders=(root,)))
    labeller = StagesLabeller(settings, FakeClassifier())
    try:
        first = labeller(batch([done_before], root), "node-a")
        assert list(first["outcome"]) == ["labelled"]
        again = labeller(batch([fresh, done_before, root / "gone.jpg"], root), "node-a")
    finally:
        labeller.close()
    assert list(again["outcome"]) == ["labelled", "current", "unreadable"]
    assert [bool(r) for r in again["record"]] == [True, False, False]
    assert load_valid(Path(os.fsdecode(again["sidecar"][0])))["status"] == "ok"


def batch(photos: list[Path], root: Path) -> dict[str, Any]:
    """A batch as Ray Data hands it to an actor (numpy columns of byte paths)."""
    import numpy as np

    return {
        "path": np.array([os.fsencode(p) for p in photos], dtype=object),
        "root": np.array([os.fsencode(root)] * len(photos), dtype=object),
    }


def test_the_stand_in_model_is_said_once_per_backfill(tmp_path: Path) -> None:
    root = library(tmp_path / "lib", 1)
    done = dropsight("backfill", root, "--dry-run")  # VGG16 configured, its weights absent
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("vgg16 is not available") == 1, done.stderr
    assert "WARNING" not in done.stderr
