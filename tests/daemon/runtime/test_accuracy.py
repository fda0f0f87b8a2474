"""Accuracy on real ImageNet photos through the real CLI (skipped when the sample is absent)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from dropsight.daemon.labels.imagenet import imagenet
from tests.daemon.outputs.test_sidecar import validate


def test_efficientnet_lite0_accuracy_on_imagenet_sample(
    imagenet_sample: Path, tmp_path: Path
) -> None:
    files = sorted(p for p in imagenet_sample.iterdir() if p.suffix.lower() in {".jpeg", ".jpg"})
    assert files
    wnids = sorted(imagenet().wnids)
    assert len(wnids) == 1000
    command = ["classify", "--model", "efficientnet-lite0", "--json", str(imagenet_sample)]
    proc = subprocess.run(
        [sys.executable, "-m", "dropsight.daemon", *command],
        cwd=tmp_path,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert sorted(Path(r["image"]["path"]) for r in records) == files

    top1 = top5 = 0
    for record in records:
        validate(record)
        path = Path(record["image"]["path"])
        assert record["status"] == "ok", record["error"]
        assert record["image"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        truth = wnids.index(path.name.split("_", 1)[0])
        predicted = [p["class_index"] for p in record["predictions"]]
        assert len(predicted) == 5
        top1 += predicted[0] == truth
        top5 += truth in predicted
    n = len(records)
    print(f"efficientnet-lite0 on {n} ImageNet photos: top-1 {top1 / n:.2f}, top-5 {top5 / n:.2f}")
    assert top1 / n >= 0.85
    assert top5 / n >= 0.95
