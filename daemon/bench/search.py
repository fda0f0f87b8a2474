"""`dropsight bench --mode search`: search times over a synthetic index of many photos."""

from __future__ import annotations

import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

from dropsight.daemon.outputs.index.library import Index

QUERIES = (["dog"], ["golden retriever"], ["cat"], ["vehicle"], ["dog", "animal"], ["espresso"])
REPEATS = 7
GOAL_MS = 200.0


def fill(index: Index, photos: int, seed: int = 1) -> None:
    """`photos` synthetic photos, five labels each, in 10,000-photo transactions."""
    rng = random.Random(seed)
    chunk = 10_000
    for start in range(0, photos, chunk):
        rows = []
        for n in range(start, min(start + chunk, photos)):
            classes = rng.sample(range(1000), 5)
            scores = sorted((rng.random() for _ in classes), reverse=True)
            total = sum(scores) * rng.uniform(1.0, 1.6)
            rows.append(
                (
                    Path(f"/photos/{n // 1000:04d}/IMG_{n:07d}.jpg"),
                    Path(f"/photos/{n // 1000:04d}/IMG_{n:07d}.jpg.json"),
                    {
                        "status": "ok",
                        "model": {"name": "synthetic"},
                        "processed_at": "2026-01-01T00:00:00Z",
                        "predictions": [
                            {"rank": r + 1, "class_index": c, "score": round(s / total, 6)}
                            for r, (c, s) in enumerate(zip(classes, scores, strict=True))
                        ],
                    },
                    n,
                )
            )
        index.put_many(rows)  # type: ignore[arg-type]


def bench_search(photos: int, work: Path) -> dict[str, Any]:
    """Build (or reuse) a synthetic index of `photos` photos and time the queries."""
    path = work / f"search-{photos}.sqlite3"
    with Index(path) as index:
        built_s = 0.0
        if index.count() != photos:
            started = time.perf_counter()
            fill(index, photos)
            built_s = time.perf_counter() - started
        out: dict[str, Any] = {"photos": index.count(), "build_s": round(built_s, 1)}
        for query in QUERIES:
            times = []
            for _ in range(REPEATS):
                started = time.perf_counter()
                hits = index.search(query, limit=50)
                times.append((time.perf_counter() - started) * 1000)
            out[" ".join(query)] = {
                "median_ms": round(statistics.median(times), 1),
                "max_ms": round(max(times), 1),
                "hits": len(hits),
            }
        worst = max(v["median_ms"] for k, v in out.items() if isinstance(v, dict))
        out["goal"] = {"median_ms_under": GOAL_MS, "worst_median_ms": worst, "met": worst < GOAL_MS}
    return out


if __name__ == "__main__":
    import sys
    import tempfile

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    print(json.dumps(bench_search(count, Path(tempfile.gettempdir())), indent=2))
