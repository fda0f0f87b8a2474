"""The runtime seam with the real Lite0 model: LiteRT and OpenVINO behind one protocol,
the timed choice remembered, forced runtimes and devices, OpenVINO's telemetry kept off."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dropsight.config.settings import ModelSettings, Settings, WatchSettings
from dropsight.daemon.models import store
from dropsight.daemon.photos import imaging
from dropsight.daemon.runtime import classifier as runtime
from dropsight.daemon.runtime import decisions, openvino, selection
from dropsight.daemon.runtime.choice import BASELINE, Candidate, agreement
from dropsight.daemon.runtime.selection import RuntimeUnavailable

LITE0 = Settings(model=ModelSettings(name="efficientnet-lite0", fallback=""))


def settings(photos: list[Path] | None = None, **model: str) -> Settings:
    folders = (photos[0].parent,) if photos else ()
    return replace(LITE0, model=replace(LITE0.model, **model), watch=WatchSettings(folders))  # type: ignore[arg-type]


@pytest.fixture
def images(hundred_photos: list[Path]) -> np.ndarray:
    return np.stack([imaging.load(p).pixels for p in hundred_photos[:12]])


@pytest.mark.parametrize(
    "candidate",
    [BASELINE, Candidate("openvino", "fp32"), Candidate("openvino", "bf16")],
    ids=lambda c: c.label,
)
def test_each_runtime_labels_through_the_one_protocol(
    candidate: Candidate, images: np.ndarray
) -> None:
    if candidate.precision == "bf16" and not openvino.supports_bf16():
        pytest.skip("this CPU has no bf16")
    reference = runtime.open_as(BASELINE, LITE0).predict(images)
    classifier = runtime.open_as(candidate, LITE0, lanes=2, threads=1)
    d = classifier.describe()
    assert (d.runtime, d.precision, d.device, d.lanes, d.threads) == (
        candidate.runtime,
        candidate.precision,
        "cpu",
        2,
        1,
    )
    assert classifier.info.runtime == candidate.label  # what the sidecar records
    assert classifier.info.fingerprint == runtime.open_as(BASELINE, LITE0).info.fingerprint
    for n in (1, 5, 12):  # any batch size
        probs = classifier.predict(images[:n])
        assert probs.shape == (n, 1000)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=2e-2)
    probs = classifier.predict(images)
    top1 = float(np.mean(probs.argmax(1) == reference.argmax(1)))
    if candidate.precision == "fp32":
        assert top1 == 1.0
        assert agreement(reference, probs) >= 0.9
    else:
        assert top1 >= 0.75  # bf16 keeps most labels; whether enough is the choice's call


def test_auto_times_once_then_remembers(
    hundred_photos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = settings(hundred_photos)
    shutil.rmtree(decisions.folder(), ignore_errors=True)  # the run's cache: others chose too
    timed: list[list[str]] = []
    measure = selection.measure

    def spy(options, *args, **kwargs):
        timed.append([c.label for c in options])
        return measure(options, *args, **kwargs)

    monkeypatch.setattr(selection, "measure", spy)
    first = runtime.open_classifier(s)
    assert timed and timed[0][0] == "litert-fp32" and "openvino-fp32" in timed[0]
    d = first.describe()
    assert d.img_s and d.img_s > 0
    assert first.info.runtime == d.label
    assert d.summary("efficientnet-lite0").startswith("efficientnet-lite0 on ")
    again = runtime.open_classifier(s)
    assert len(timed) == 1  # remembered: no timing at the next start
    assert again.describe() == d
    # Another cores setting is another decision.
    runtime.open_classifier(replace(s, service=replace(s.service, cores=1)))
    assert len(timed) == 2


def test_forced_runtimes(hundred_photos: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selection, "measure", lambda *a, **k: pytest.fail("litert is not timed"))
    lite = runtime.open_classifier(settings(runtime="litert"))
    assert lite.describe().label == lite.info.runtime == "litert-fp32"
    monkeypatch.undo()
    ov = runtime.open_classifier(settings(hundred_photos, runtime="openvino"))
    assert ov.describe().runtime == "openvino"


def test_a_device_that_is_not_here_is_a_clear_error() -> None:
    seen = openvino.devices()
    assert "cpu" in seen
    missing = next((d for d in ("gpu", "npu") if d not in seen), None)
    if missing is None:
        pytest.skip("this machine has a GPU and an NPU")
    with pytest.raises(RuntimeUnavailable, match=f'device = "{missing}".*no {missing.upper()}'):
        runtime.open_classifier(settings(device=missing))


@pytest.mark.parametrize("device", ["gpu", "npu"])
def test_an_accelerator_labels_like_the_cpu(device: str, images: np.ndarray) -> None:
    if device not in openvino.devices():
        pytest.skip(f"no {device.upper()} here")
    reference = runtime.open_as(BASELINE, LITE0).predict(images)
    accel = runtime.open_as(Candidate("openvino", "fp32", device), LITE0)
    assert accel.describe().device == device
    assert agreement(reference, accel.predict(images)) >= 0.9


def test_openvino_writes_nothing_into_home(tmp_path: Path, hundred_photos: list[Path]) -> None:
    """Loading and predicting with OpenVINO, in a fresh process with an empty HOME."""
    artifact = store.resolve("efficientnet-lite0", LITE0.model, "test")
    home = tmp_path / "home"
    home.mkdir()
    code = textwrap.dedent(
        f"""
        import numpy as np
        from dropsight.config.settings import ModelSettings, Settings
        from dropsight.daemon.photos import imaging
        from dropsight.daemon.runtime.choice import Candidate
        from dropsight.daemon.runtime.classifier import open_as
        s = Settings(model=ModelSettings(name="efficientnet-lite0", fallback=""))
        c = open_as(Candidate("openvino", "fp32"), s)
        x = imaging.load(__import__("pathlib").Path({str(hundred_photos[0])!r})).pixels[None]
        print(c.info.runtime, int(c.predict(x).argmax()))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
    env |= {"HOME": str(home), "USERPROFILE": str(home)}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("openvino-fp32 ")
    assert artifact.path.is_file()
    assert sorted(p.name for p in home.iterdir()) == []  # no ~/intel
