"""The job queue: dedup, priorities, re-checks, bounded memory."""

from __future__ import annotations

import threading
import tracemalloc
from pathlib import Path

from dropsight.daemon.jobs import JobQueue


def test_duplicates_are_queued_once() -> None:
    q = JobQueue()
    assert q.put(Path("/a/1.jpg"))
    assert not q.put(Path("/a/1.jpg"))
    assert not q.put(Path("/a/1.jpg"), fresh=False)
    assert q.pending() == 1


def test_fresh_before_backlog_and_promotion() -> None:
    q = JobQueue()
    q.put(Path("/old/1.jpg"), fresh=False)
    q.put(Path("/old/2.jpg"), fresh=False)
    q.put(Path("/new/3.jpg"))
    q.put(Path("/old/2.jpg"))  # touched again: promoted
    assert q.take(10, 0) == [Path("/new/3.jpg"), Path("/old/2.jpg"), Path("/old/1.jpg")]


def test_change_while_in_flight_is_rechecked_once_done() -> None:
    q = JobQueue()
    q.put(Path("/a.jpg"))
    assert q.take(1, 0) == [Path("/a.jpg")]
    assert not q.put(Path("/a.jpg"))  # in flight: not queued twice
    assert q.pending() == 0
    q.done(Path("/a.jpg"))
    assert q.take(1, 0) == [Path("/a.jpg")]
    q.done(Path("/a.jpg"))
    assert q.take(1, 0) == []


def test_take_waits_and_close_wakes() -> None:
    q = JobQueue()
    got: list[list[Path]] = []
    t = threading.Thread(target=lambda: got.append(q.take(5, 10)))
    t.start()
    q.put(Path("/x.jpg"))
    t.join(5)
    assert got == [[Path("/x.jpg")]]
    t = threading.Thread(target=lambda: got.append(q.take(5, None)))
    t.start()
    q.close()
    t.join(5)
    assert not t.is_alive()
    assert got[-1] == []


def test_backlog_of_100000_paths_stays_small() -> None:
    q = JobQueue()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for i in range(100_000):
        q.put(Path(f"/photos/2026/11/IMG_{i:06d}.jpg"), fresh=False)
    used_mb = (tracemalloc.get_traced_memory()[0] - base) / 1e6
    tracemalloc.stop()
    assert q.pending() == 100_000
    assert used_mb < 40, f"{used_mb:.0f} MB for a 100,000-path backlog"
