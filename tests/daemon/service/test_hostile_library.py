"""Issue 20's acceptance: odd files where sidecars go (a wrong-shaped record, a FIFO, a
160 MB file) beside 200 real photos, a real service with EfficientNet-Lite0: all 200
labelled, the odd files left as they were and counted in the status, and every reader of
sidecars (backfill, export, index rebuild, xmp write) gets through the same folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from dropsight.config.settings import ModelSettings, Settings, WatchSettings
from dropsight.daemon.cli.control import format_status
from dropsight.daemon.service.service import Service
from tests.daemon.helpers import dropsight, idle_after_scan, load_valid
from tests.daemon.service.test_xmp_real import fingerprint

WRONG_SHAPE = b'{"schema_version": 1, "model": "made by another tool"}'


def seed(folder: Path, hundred: list[Path]) -> dict[str, Path]:
    """200 photos (the hundred twice), and odd files: three beside photos, two beside none."""
    for i, photo in enumerate(hundred):
        shutil.copy(photo, folder / f"p{i:03d}a.jpg")
        shutil.copy(photo, folder / f"p{i:03d}b.jpg")
    odd = {name: folder / f"{name}.jpg.json" for name in ("aaa", "x", "big", "gone", "g.jpg")}
    for name in ("aaa", "x", "big"):
        shutil.copy(hundred[0], folder / f"{name}.jpg")
    odd["aaa"].write_bytes(WRONG_SHAPE)  # item 1
    os.mkfifo(odd["x"])  # item 2
    with odd["big"].open("wb") as f:  # item 3: sparse, 160 MB that cost no disk
        f.write(b'{"schema_version": 1, "status": "ok", "image": "')
        f.truncate(160 << 20)
    os.mkfifo(odd["gone"])  # an odd file beside no photo: not an orphan of ours
    odd["g.jpg"].write_bytes(WRONG_SHAPE)  # item 12's leftovers: g.jpg.json.json
    return odd


def test_odd_sidecars_beside_200_photos(tmp_path: Path, hundred_photos: list[Path]) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    odd = seed(folder, hundred_photos)
    before = {name: fingerprint(path) for name, path in odd.items()}
    settings = Settings(
        watch=WatchSettings(folders=(folder,), settle_time_s=0.3, rescan_interval_s=0),
        model=ModelSettings(name="efficientnet-lite0"),
    )
    service = Service(settings)
    service.start()
    try:
        idle_after_scan(service, timeout_s=600)
        status = service.status()
    finally:
        service.join()
    labelled = sorted(folder.glob("p*.jpg.json"))
    assert len(labelled) == 200
    assert all(load_valid(p)["status"] == "ok" for p in labelled)
    assert {name: fingerprint(path) for name, path in odd.items()} == before
    assert status["odd_files"] == 3
    assert status["done"] == 200
    assert "3 odd files" in format_status(status)
    assert any("aaa.jpg.json is not a Dropsight sidecar" in e["message"] for e in status["errors"])

    # Every other reader of sidecars gets through the same folder, leaving the odd files be.
    backfill = dropsight("backfill", "--model", "efficientnet-lite0", folder, timeout_s=300)
    assert backfill.returncode == 0, backfill.stderr
    assert "0 labelled" in backfill.stdout and "3 skipped" in backfill.stdout
    out = tmp_path / "export.csv"
    export = dropsight("export", folder, "--output", out, timeout_s=120)
    assert export.returncode == 0, export.stderr
    assert len(out.read_text("utf-8").splitlines()) == 1 + 200
    rebuild = dropsight("index", "rebuild", folder, timeout_s=120)
    assert rebuild.returncode == 0, rebuild.stderr
    assert "200 photos" in rebuild.stdout
    xmp = dropsight("xmp", "write", folder, timeout_s=120)
    assert xmp.returncode == 0, xmp.stderr
    assert {name: fingerprint(path) for name, path in odd.items()} == before
