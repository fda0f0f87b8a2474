"""The job queue: dedup, priorities, re-checks, bounded memory, jobs carry root and sidecar."""

from __future__ import annotations

import threading
import tracemalloc
from pathlib import Path

from dropsight.daemon.outputs.sidecar import Layout
from dropsight.daemon.pipeline.jobs import Job, JobQueue
from dropsight.daemon.pipeline.wiring import job_factory

ROOT = Path("/photos")


def queue() -> JobQueue:
    return JobQueue(job_factory(Layout()))


def taken(q: JobQueue, n: int) -> list[Path]:
    out = []
    for _ in range(n):
        job = q.take(0)
        if job is None:
            break
        out.append(job.path)
    return out


def test_duplicates_are_queued_once() -> None:
    q = queue()
    assert q.put(Path("/a/1.jpg"), ROOT)
    assert not q.put(Path("/a/1.jpg"), ROOT)
    assert not q.put(Path("/a/1.jpg"), ROOT, fresh=False)
    assert q.pending() == 1


def test_fresh_before_backlog_and_promotion() -> None:
    q = queue()
    q.put(Path("/old/1.jpg"), ROOT, fresh=False)
    q.put(Path("/old/2.jpg"), ROOT, fresh=False)
    q.put(Path("/new/3.jpg"), ROOT)
    q.put(Path("/old/2.jpg"), ROOT)  # touched again: promoted
    assert taken(q, 10) == [Path("/new/3.jpg"), Path("/old/2.jpg"), Path("/old/1.jpg")]


def test_a_job_carries_its_root_and_sidecar(tmp_path: Path) -> None:
    out = tmp_path / "labels"
    q = JobQueue(job_factory(Layout(out)))
    q.put(ROOT / "2026" / "a.jpg", ROOT)
    assert q.take(0) == Job(ROOT / "2026" / "a.jpg", ROOT, out / "2026" / "a.jpg.json")
    beside = queue()
    beside.put(ROOT / "b.jpg", ROOT)
    job = beside.take(0)
    assert job is not None and job.sidecar == ROOT / "b.jpg.json"


def test_change_while_in_flight_is_rechecked_once_done() -> None:
    q = queue()
    q.put(Path("/a.jpg"), ROOT)
    assert taken(q, 1) == [Path("/a.jpg")]
    assert not q.put(Path("/a.jpg"), ROOT)  # in flight: not queued twice
    assert q.pending() == 0
    assert q.is_queued(Path("/a.jpg"))
    q.done(Path("/a.jpg"))
    assert taken(q, 1) == [Path("/a.jpg")]
    q.done(Path("/a.jpg"))
    assert taken(q, 1) == []
    assert not q.is_queued(Path("/a.jpg"))


def test_take_waits_and_close_wakes() -> None:
    q = queue()
    got: list[Job | None] = []
    t = threading.Thread(target=lambda: got.append(q.take(10)))
    t.start()
    q.put(Path("/x.jpg"), ROOT)
    t.join(5)
    assert got[0] is not None and got[0].path == Path("/x.jpg")
    t = threading.Thread(target=lambda: got.append(q.take(None)))
    t.start()
    q.close()
    t.join(5)
    assert not t.is_alive()
    assert got[-1] is None
    assert not q.put(Path("/y.jpg"), ROOT), "queued after close"


def test_closed_queue_hands_out_nothing() -> None:
    q = queue()
    q.put(Path("/x.jpg"), ROOT)
    q.close()
    assert q.take(0) is None


def test_backlog_of_100000_paths_stays_small() -> None:
    q = queue()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for i in range(100_000):
        q.put(Path(f"/photos/2026/11/IMG_{i:06d}.jpg"), ROOT, fresh=False)
    used_mb = (tracemalloc.get_traced_memory()[0] - base) / 1e6
    tracemalloc.stop()
    assert q.pending() == 100_000
    assert used_mb < 40, f"{used_mb:.0f} MB for a 100,000-path backlog"
