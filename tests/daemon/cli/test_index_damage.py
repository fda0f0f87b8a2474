"""Issue 20 items 8-9 and the index's mode (13): a damaged index is set aside and rebuilt
from the sidecars, said in one line; a read-only index is searched; the file is private."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from dropsight.daemon.core import paths
from dropsight.daemon.outputs.index.library import Index, IndexDamaged, default_path
from dropsight.daemon.outputs.index.repair import open_repairing
from dropsight.daemon.outputs.index.sync import IndexSink
from dropsight.daemon.outputs.protocol import Context
from tests.daemon.helpers import dropsight, tmpfs_over
from tests.daemon.outputs.test_library import labelled_photo


@pytest.fixture
def library(tmp_path: Path, app_home: Path) -> Path:
    """400 labelled photos in a watched folder, indexed."""
    root = tmp_path / "library"
    for i in range(400):
        labelled_photo(root, f"dog{i:03d}.jpg", {207: 0.5 + i / 1000})
    config = paths.config_file()
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'[watch]\nfolders = ["{root}"]\n', "utf-8")
    done = dropsight("index", "rebuild")
    assert done.returncode == 0, done.stderr
    return root


def damage(path: Path) -> None:
    """8 KB of random bytes in the middle of the file, as the issue did."""
    size = path.stat().st_size
    assert size > 32 << 10, size
    with path.open("r+b") as f:
        f.seek(size // 2)
        f.write(os.urandom(8 << 10))


def test_the_index_file_is_private(library: Path) -> None:
    assert stat.S_IMODE(default_path().stat().st_mode) == 0o600


def test_a_damaged_index_is_refused_at_open_and_set_aside(library: Path) -> None:
    damage(default_path())
    with pytest.raises(IndexDamaged):
        Index()
    index, aside = open_repairing()
    with index:
        assert index.count() == 0
    assert aside is not None and aside.name.startswith("library.sqlite3.damaged-")
    assert aside.exists()


def test_search_on_a_damaged_index_rebuilds_it_and_says_so_once(library: Path) -> None:
    damage(default_path())
    found = dropsight("search", "dog", "--paths")
    assert found.returncode == 0, found.stderr
    assert len(found.stdout.splitlines()) == 400
    said = [line for line in found.stderr.splitlines() if "damaged" in line]
    assert len(said) == 1 and "set aside as library.sqlite3.damaged-" in said[0]
    assert "Traceback" not in found.stderr
    again = dropsight("search", "dog", "--paths")
    assert again.returncode == 0 and "damaged" not in again.stderr


def test_index_rebuild_on_a_damaged_index(library: Path) -> None:
    damage(default_path())
    rebuilt = dropsight("index", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "400 photos" in rebuilt.stdout
    assert "damaged: set aside" in rebuilt.stderr and "Traceback" not in rebuilt.stderr


def test_the_service_sets_a_damaged_index_aside_and_walks_again(library: Path) -> None:
    damage(default_path())
    errors: list[str] = []
    walks: list[int] = []
    sink = IndexSink(
        Context(on_error=lambda _p, m: errors.append(m), request_walk=lambda: walks.append(1))
    )
    sink.walk_started(library)
    sink.close()
    assert walks == [1]
    assert any("set aside as library.sqlite3.damaged-" in m for m in errors)
    with Index(read_only=True) as index:
        assert index.count() == 0  # a fresh file, for the walk to fill


def test_a_read_only_index_is_searched(library: Path) -> None:
    state = default_path().parent
    copy = {p.name: p.read_bytes() for p in state.iterdir() if p.name.startswith("library")}
    with tmpfs_over(state):
        for name, data in copy.items():
            (state / name).write_bytes(data)
        subprocess.run(["mount", "-o", "remount,ro", str(state)], check=True)
        found = dropsight("search", "dog", "--paths")
        assert found.returncode == 0, found.stderr
        assert len(found.stdout.splitlines()) == 400
        status = dropsight("index", "status")
        assert status.returncode == 0 and "400 photos" in status.stdout
