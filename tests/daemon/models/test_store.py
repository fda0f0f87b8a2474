"""Finding weights, caching converted models, the fallback, and LiteRT == Keras for both models."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dropsight.config.settings import ModelSettings, Settings
from dropsight.daemon import __version__
from dropsight.daemon.core import paths
from dropsight.daemon.models import store
from dropsight.daemon.models.weights import (
    VGG16_WEIGHTS_FILE,
    WeightsNotFound,
    find_efficientnet_lite0,
    find_vgg16,
    keras_home,
)
from dropsight.daemon.outputs import sidecar
from dropsight.daemon.photos.imaging import load as prepare
from dropsight.daemon.runtime.classifier import Classifier, open_classifier
from tests.daemon.outputs.test_sidecar import validate

CATS = set(range(281, 286))
EFFNET = Settings(model=ModelSettings(name="efficientnet-lite0", fallback=""))


def place(src: Path, dst: Path) -> Path:
    """Make `src` appear at `dst` without copying 553 MB (hard link, else symlink)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        dst.symlink_to(src)
    return dst


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder standing in for the frozen app's folder."""
    folder = tmp_path / "app"
    folder.mkdir()
    monkeypatch.setattr(paths, "app_dir", lambda: folder)
    return folder


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail loudly on any network use or child process; returns what was attempted."""
    attempts: list[str] = []

    def refuse(what: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            attempts.append(what)
            raise AssertionError(f"{what} attempted: {args!r}")

        return fail

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    monkeypatch.setattr(subprocess, "run", refuse("subprocess.run"))
    monkeypatch.setattr(subprocess, "Popen", refuse("subprocess.Popen"))
    return attempts


def photo_batch(photos: dict[str, Path]) -> np.ndarray:
    """Real photos, decoded and preprocessed exactly as Dropsight does it."""
    return np.stack([prepare(photos[n]).pixels for n in ("chelsea", "coffee", "rocket")])


def top5(probs: np.ndarray) -> list[list[int]]:
    return [[int(i) for i in np.argsort(-p, kind="stable")[:5]] for p in probs]


# --- the VGG16 weights chain ---------------------------------------------------------------


def test_vgg16_weights_from_the_config_path(vgg16_weights: Path, app_dir: Path) -> None:
    found = find_vgg16(vgg16_weights, allow_download=False, config_name="cfg.toml")
    assert (found.origin, found.path) == ("config", vgg16_weights)


def test_vgg16_weights_next_to_the_app(vgg16_weights: Path, app_dir: Path) -> None:
    placed = place(vgg16_weights, app_dir / "models" / VGG16_WEIGHTS_FILE)
    found = find_vgg16(None, allow_download=False, config_name="cfg.toml")
    assert (found.origin, found.path) == ("app", placed)


def test_vgg16_weights_in_the_keras_cache(vgg16_weights: Path, app_dir: Path) -> None:
    assert keras_home() == Path(os.environ["KERAS_HOME"])
    placed = place(vgg16_weights, keras_home() / "models" / VGG16_WEIGHTS_FILE)
    found = find_vgg16(None, allow_download=False, config_name="cfg.toml")
    assert (found.origin, found.path) == ("keras-cache", placed)


def test_vgg16_weights_order(vgg16_weights: Path, app_dir: Path, tmp_path: Path) -> None:
    at_app = place(vgg16_weights, app_dir / "models" / VGG16_WEIGHTS_FILE)
    place(vgg16_weights, keras_home() / "models" / VGG16_WEIGHTS_FILE)
    find = find_vgg16
    assert find(vgg16_weights, allow_download=True, config_name="c").origin == "config"
    # a configured path that does not exist falls through to the next place
    assert find(tmp_path / "nope.h5", allow_download=False, config_name="c").origin == "app"
    at_app.unlink()
    at_app.write_bytes(b"")  # an empty file (an interrupted copy) is not weights
    assert find(None, allow_download=False, config_name="c").origin == "keras-cache"


def test_no_vgg16_weights_explains_every_place_and_every_fix(
    app_dir: Path, tmp_path: Path, offline: list[str]
) -> None:
    configured = tmp_path / "weights" / "mine.h5"
    with pytest.raises(WeightsNotFound) as err:
        find_vgg16(configured, allow_download=False, config_name="/home/me/dropsight.toml")
    message = str(err.value)
    for place_looked in (
        configured,
        app_dir / "models" / VGG16_WEIGHTS_FILE,
        keras_home() / "models" / VGG16_WEIGHTS_FILE,
    ):
        assert str(place_looked) in message
    assert "download: not allowed" in message
    assert "/home/me/dropsight.toml" in message
    for fix in ("model.weights", "model.allow_download = true", "--download"):
        assert fix in message
    assert "--model efficientnet-lite0" in message
    # unset config path: says so instead of showing "None"
    with pytest.raises(WeightsNotFound) as err:
        find_vgg16(None, allow_download=False, config_name="cfg.toml")
    assert "model.weights is not set in cfg.toml" in str(err.value)
    assert "None" not in str(err.value)
    assert offline == []


def test_no_vgg16_weights_through_store_and_classifier_stays_offline(
    app_dir: Path, offline: list[str]
) -> None:
    with pytest.raises(WeightsNotFound):
        store.resolve("vgg16", ModelSettings(), "cfg.toml")
    no_fallback = Settings(model=ModelSettings(name="vgg16", fallback=""))
    with pytest.raises(WeightsNotFound, match="VGG16 weights not found"):
        open_classifier(no_fallback)
    assert offline == []  # no download, no converter child


def test_download_is_only_a_candidate_when_allowed(app_dir: Path, offline: list[str]) -> None:
    found = find_vgg16(None, allow_download=True, config_name="cfg.toml")
    assert found.origin == "download"
    assert found.path == keras_home() / "models" / VGG16_WEIGHTS_FILE  # where Keras will put it
    assert offline == []  # finding never downloads by itself


# --- fallback ----------------------------------------------------------------------------------


def test_fallback_model_is_used_with_the_reason(app_dir: Path, photos: dict[str, Path]) -> None:
    defaults = Settings()
    assert defaults.model.name == "vgg16"
    assert defaults.model.fallback == "efficientnet-lite0"
    classifier = open_classifier(defaults)
    info = classifier.info
    assert info.name == "efficientnet-lite0"
    assert info.requested == "vgg16"
    assert info.is_fallback
    assert info.fallback_reason is not None
    assert info.fallback_reason.startswith("vgg16 could not be loaded: VGG16 weights not found")
    probs = classifier.predict(prepare(photos["chelsea"]).pixels[None])
    record = sidecar.build("chelsea.jpg", prepare(photos["chelsea"]).facts, info, [])
    record["predictions"] = sidecar.top_predictions(probs[0], 5)
    validate(record)
    assert record["model"]["name"] == "efficientnet-lite0"
    assert record["model"]["fallback_for"] == "vgg16"
    assert record["predictions"][0]["class_index"] in CATS


def test_unknown_model_is_refused() -> None:
    with pytest.raises(store.ModelUnavailable, match="unknown model 'resnet'"):
        store.resolve("resnet", ModelSettings(), "cfg.toml")


# --- the converted-model cache -----------------------------------------------------------------


def test_efficientnet_cache_entry(app_home: Path) -> None:
    artifact = store.resolve("efficientnet-lite0", ModelSettings(), "cfg.toml")
    weights = find_efficientnet_lite0().path
    assert artifact.fingerprint == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert artifact.path.is_relative_to(paths.cache_dir())
    assert artifact.fingerprint[:16] in artifact.path.name  # keyed by weights ...
    assert __version__ in artifact.path.name  # ... and app version
    assert artifact.input_size == (224, 224)
    assert artifact.path.read_bytes()[4:8] == b"TFL3"
    # a second resolve is a cache hit (no converter child)
    again = store.resolve("efficientnet-lite0", ModelSettings(), "cfg.toml")
    assert again == artifact


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_cached_model_is_rebuilt(
    damage: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    photos: dict[str, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = store.resolve("efficientnet-lite0", ModelSettings(), "cfg.toml")
    # a private cache holding a copy of the good entry, so the shared one stays intact
    home = tmp_path / "private-home"
    monkeypatch.setenv("DROPSIGHT_HOME", str(home))
    entry = paths.cache_dir() / "models" / good.path.name
    entry.parent.mkdir(parents=True)
    shutil.copy(good.path, entry)
    shutil.copy(good.path.with_suffix(".json"), entry.with_suffix(".json"))
    size = entry.stat().st_size
    if damage == "truncated":  # an interrupted write or a full disk
        with entry.open("r+b") as f:
            f.truncate(size // 3)
    else:  # same size, so only loading it can tell
        entry.write_bytes(np.random.default_rng(0).bytes(size))

    classifier = open_classifier(EFFNET)

    assert entry.read_bytes()[4:8] == b"TFL3"
    assert classifier.info.fingerprint == good.fingerprint
    assert not classifier.info.is_fallback
    probs = classifier.predict(prepare(photos["chelsea"]).pixels[None])
    assert int(np.argmax(probs[0])) in CATS
    if damage == "garbage":
        assert "rebuilding it" in caplog.text


# --- LiteRT agrees with Keras --------------------------------------------------------------------


def assert_agree(lite: np.ndarray, keras_probs: np.ndarray) -> None:
    assert lite.shape == keras_probs.shape == (len(lite), 1000)
    assert top5(lite) == top5(keras_probs)
    np.testing.assert_allclose(lite, keras_probs, rtol=0, atol=1e-4)


def test_litert_agrees_with_keras_efficientnet(photos: dict[str, Path]) -> None:
    from dropsight.daemon.models import keras_efficientnet_lite

    x = photo_batch(photos)
    classifier = open_classifier(EFFNET)
    lite = classifier.predict(x)
    model = keras_efficientnet_lite.build(find_efficientnet_lite0().path)
    keras_probs = np.asarray(model.predict(x, verbose=0))
    assert_agree(lite, keras_probs)
    assert top5(lite)[0][0] in CATS
    assert {967, 968, 504} & set(top5(lite)[1])
    # batch size changes re-plan the interpreter without changing results
    single = np.concatenate([classifier.predict(x[i : i + 1]) for i in range(len(x))])
    np.testing.assert_allclose(single, lite, rtol=0, atol=1e-5)


def vgg16_classifier(weights: Path) -> Classifier:
    """VGG16 on LiteRT from the generated weights (converted once per run, then cached)."""
    settings = Settings(model=ModelSettings(name="vgg16", weights=weights, fallback=""))
    return open_classifier(settings)


@pytest.mark.slow
def test_litert_agrees_with_keras_vgg16(vgg16_weights: Path, photos: dict[str, Path]) -> None:
    import keras
    from keras.applications import vgg16

    from dropsight.daemon.models import keras_vgg16

    x = photo_batch(photos)
    classifier = vgg16_classifier(vgg16_weights)
    assert classifier.info.name == "vgg16"
    assert classifier.info.fingerprint == hashlib.sha256(vgg16_weights.read_bytes()).hexdigest()
    lite = classifier.predict(x)

    # the reference: Keras' VGG16 fed by Keras' own preprocessing, as the original tutorial did
    reference = keras_vgg16.reference(vgg16_weights)
    keras_probs = np.asarray(reference.predict(vgg16.preprocess_input(x.copy()), verbose=0))
    del reference
    keras.backend.clear_session()

    assert_agree(lite, keras_probs)
    # the scaled last layer makes the top-5 distinct enough for the comparison to mean something
    assert all(np.diff(np.sort(p)[::-1][:6]).min() < -1e-3 for p in keras_probs)


@pytest.mark.slow
def test_vgg16_cache_is_shared_by_every_place_the_weights_are_found(
    vgg16_weights: Path, app_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = vgg16_classifier(vgg16_weights)  # converts, unless the test above already did
    artifact = store.resolve("vgg16", ModelSettings(weights=vgg16_weights), "cfg.toml")

    def no_conversion(args: list[str], what: str) -> None:
        raise AssertionError(f"converted again: {what}")

    monkeypatch.setattr(store, "_run_converter", no_conversion)
    at_app = place(vgg16_weights, app_dir / "models" / VGG16_WEIGHTS_FILE)
    from_app = store.resolve("vgg16", ModelSettings(), "cfg.toml")
    assert from_app.origin == "app"
    assert (from_app.path, from_app.fingerprint) == (artifact.path, artifact.fingerprint)
    at_app.unlink()
    place(vgg16_weights, keras_home() / "models" / VGG16_WEIGHTS_FILE)
    from_keras = store.resolve("vgg16", ModelSettings(), "cfg.toml")
    assert from_keras.origin == "keras-cache"
    assert from_keras.path == artifact.path
    # and the default settings now load VGG16 itself, not the fallback
    classifier = open_classifier(Settings())
    assert classifier.info.name == "vgg16"
    assert not classifier.info.is_fallback
    assert classifier.info.fingerprint == first.info.fingerprint


def test_conversion_short_of_memory_says_the_ways_out(
    app_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_weights = tmp_path / "vgg16.h5"
    fake_weights.write_bytes(b"not really weights")
    monkeypatch.setattr(store, "available_memory", lambda: 2_000_000_000)
    before = set((paths.cache_dir() / "models").glob("vgg16-*"))  # the shared cache may hold some
    with pytest.raises(store.ModelUnavailable) as caught:
        store.resolve("vgg16", ModelSettings(weights=fake_weights), "cfg.toml")
    message = str(caught.value)
    assert "needs about 6 GB of free memory; 2.0 GB is available" in message
    assert "--model efficientnet-lite0" in message
    assert set((paths.cache_dir() / "models").glob("vgg16-*")) == before


def test_available_memory_is_read_on_linux() -> None:
    have = store.available_memory()
    if sys.platform.startswith("linux"):
        assert have is not None and have > 100_000_000
