"""Switching runtime (LiteRT -> OpenVINO) relabels nothing: the model's fingerprint is the
weights', the sidecar only records which runtime labelled it."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

from dropsight.config.settings import ModelSettings, Settings, WatchSettings
from dropsight.daemon.contracts import ModelStatus
from dropsight.daemon.service.service import Service
from tests.daemon.helpers import idle_after_scan, load_valid, sidecars


def _run(folder: Path, runtime: str) -> tuple[int, ModelStatus]:
    settings = Settings(
        watch=WatchSettings(folders=(folder,), settle_time_s=0.3, rescan_interval_s=0),
        model=replace(
            ModelSettings(name="efficientnet-lite0", fallback=""),
            runtime=runtime,  # type: ignore[arg-type]
        ),
    )
    service = Service(settings)
    service.start()
    try:
        idle_after_scan(service, timeout_s=300)
        status = service.status()
        return status["done"], status["model"]
    finally:
        service.join()


def test_another_runtime_relabels_nothing(tmp_path: Path, hundred_photos: list[Path]) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in hundred_photos[:4]:
        shutil.copy(p, folder / p.name)
    done, model = _run(folder, "litert")
    assert done == 4
    assert model["runtime"] == "litert-fp32"
    assert str(model.get("runtime_summary")).startswith("efficientnet-lite0 on LiteRT (fp32)")
    before = {p: p.read_bytes() for p in sidecars(folder)}
    assert all(load_valid(p)["model"]["runtime"] == "litert-fp32" for p in before)
    done, model = _run(folder, "openvino")
    assert str(model["runtime"]).startswith("openvino-")
    assert done == 0
    assert {p: p.read_bytes() for p in sidecars(folder)} == before  # nothing rewritten
    # A new photo is labelled by the runtime now running, recorded as such.
    shutil.copy(hundred_photos[5], folder / "new.jpg")
    done, _ = _run(folder, "openvino")
    assert done == 1
    record = json.loads((folder / "new.jpg.json").read_text("utf-8"))
    assert record["model"]["runtime"] == model["runtime"]
