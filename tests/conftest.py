"""Shared fixtures: isolated app folders, converted models once per run, real photos."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

# Beside the checkout (/work/main -> /work/shared), or one level up for a worktree in /work/wt/.
SHARED_DATA = next(
    (
        folder
        for up in (2, 3)
        if (
            folder := Path(__file__).resolve().parents[up]
            / "shared"
            / "data"
            / "imagenet-sample-100"
        ).is_dir()
    ),
    Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample-100",
)


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


@pytest.fixture(scope="session")
def hundred_photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """100 real photos: the shared ImageNet sample, or (where a clone has none, as in CI)
    crops of scikit-image's real photos at varied sizes, so such tests run everywhere."""
    if SHARED_DATA.is_dir():
        found = sorted(SHARED_DATA.glob("*.JPEG"))
        if len(found) >= 100:
            return found[:100]
    from skimage import data

    folder = tmp_path_factory.mktemp("hundred")
    sources = [
        Image.fromarray(getattr(data, n)()).convert("RGB")
        for n in ("chelsea", "coffee", "rocket", "astronaut", "cat")
    ]
    out = []
    for i in range(100):
        src = sources[i % len(sources)]
        w, h = src.size
        f = 0.6 + 0.4 * ((i * 7) % 10) / 10  # a different crop of each for every i
        box = ((i * 13) % max(1, int(w * (1 - f)) + 1), (i * 17) % max(1, int(h * (1 - f)) + 1))
        crop = src.crop((box[0], box[1], box[0] + int(w * f), box[1] + int(h * f)))
        path = folder / f"photo_{i:03d}.JPEG"
        crop.save(path, quality=90)
        out.append(path)
    return out


# The contributor's real home, and what in it a test could plausibly touch: wine links its
# profile folders (My Pictures, Desktop) to $HOME and adds menu entries; Keras writes
# ~/.keras; an app without DROPSIGHT_HOME would use the platform folders.
REAL_HOME = Path(os.environ.get("HOME") or Path.home())
GUARDED = (
    ".keras",
    ".wine",
    ".config/menus",
    ".config/autostart",
    ".config/dropsight",
    ".cache/dropsight",
    ".local/share/applications",
    ".local/share/desktop-directories",
    ".local/share/icons",
    ".local/share/mime",
    ".local/share/dropsight",
    ".local/state/dropsight",
    "Desktop",
    "Documents",
    "Pictures",
)


def home_snapshot(home: Path = REAL_HOME) -> dict[str, tuple[int, int]]:
    """Names at the top of `home`, and every entry (mtime, size) under the guarded folders."""
    snap: dict[str, tuple[int, int]] = {}
    with contextlib.suppress(OSError):
        snap.update({entry.name: (0, 0) for entry in os.scandir(home)})
    for rel in GUARDED:
        root = home / rel
        if not root.is_dir():
            continue
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = Path(folder) / name
                with contextlib.suppress(OSError):
                    st = path.lstat()
                    snap[str(path.relative_to(home))] = (st.st_mtime_ns, st.st_size)
    return snap


@pytest.fixture(autouse=True)
def real_home_untouched() -> Iterator[None]:
    """Fail a test that changes anything in the contributor's real home folder."""
    before = home_snapshot()
    yield
    after = home_snapshot()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"the test changed the real home {REAL_HOME}: {changed[:10]}"


def pytest_configure(config: pytest.Config) -> None:
    """Quiet TensorFlow; give every test process (and what it spawns) a home of its own."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Set before any test module imports Keras (which writes ~/.keras at import) and before
    # any subprocess starts: wine, Tk, ImageMagick and platformdirs all follow $HOME.
    home = Path(tempfile.mkdtemp(prefix="dropsight-test-home-"))
    config.stash[_TEST_HOME] = home
    os.environ["HOME"] = str(home)
    for var, sub in (("XDG_CACHE_HOME", ".cache"), ("XDG_DATA_HOME", ".local/share")):
        os.environ[var] = str(home / sub)
    os.environ["XDG_STATE_HOME"] = str(home / ".local" / "state")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the test home and put the real one back."""
    home = config.stash.get(_TEST_HOME, None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)
    os.environ["HOME"] = str(REAL_HOME)


_TEST_HOME = pytest.StashKey[Path]()
