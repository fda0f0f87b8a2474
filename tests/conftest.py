"""Shared fixtures: isolated app folders, converted models once per run, real photos."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample-100"


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the whole run, so each model is converted at most once."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(autouse=True)
def app_home(tmp_path: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every Dropsight folder at a temp dir (never the user's), sharing the model cache."""
    home = tmp_path / "dropsight-home"
    home.mkdir()
    (home / "cache").symlink_to(model_cache, target_is_directory=True)
    monkeypatch.setenv("DROPSIGHT_HOME", str(home))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    return home


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves threads running (as watchdog's own suite does)."""
    before = set(threading.enumerate())
    yield
    deadline_s = 5.0
    leaked: list[threading.Thread] = []
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        leaked = [
            t
            for t in threading.enumerate()
            if t not in before and t.is_alive() and not t.name.startswith("pytest_timeout")
        ]
        if not leaked:
            return
        time.sleep(0.05)
    pytest.fail(f"threads leaked: {[t.name for t in leaked]}")


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real photos shipped by scikit-image, saved as JPEG files."""
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    out = {}
    for name in ("chelsea", "coffee", "rocket", "astronaut"):
        path = folder / f"{name}.jpg"
        Image.fromarray(getattr(data, name)()).save(path, quality=92)
        out[name] = path
    return out


@pytest.fixture(scope="session")
def imagenet_sample() -> Path:
    """The shared ImageNet sample folder, or skip when this checkout has none."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared ImageNet sample not present at {SHARED_DATA}")
    return SHARED_DATA


def pytest_configure(config: pytest.Config) -> None:
    """Keep TensorFlow's C++ logging quiet in every test process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
