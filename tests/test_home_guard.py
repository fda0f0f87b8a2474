"""The guard that keeps tests out of the contributor's real home folder."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import REAL_HOME, home_snapshot


def test_tests_run_with_a_home_of_their_own() -> None:
    assert Path(os.environ["HOME"]) != REAL_HOME
    assert Path.home() != REAL_HOME


def test_snapshot_sees_what_wine_and_keras_would_leave(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "Pictures").mkdir(parents=True)
    before = home_snapshot(home)
    (home / "IMG_0001.jpg.json").write_text("{}")  # wine's My Pictures -> $HOME
    assert home_snapshot(home) != before
    before = home_snapshot(home)
    (home / "Pictures" / "x.json").write_text("{}")
    assert home_snapshot(home) != before
    before = home_snapshot(home)
    (home / ".local" / "share" / "applications" / "wine").mkdir(parents=True)
    assert home_snapshot(home) != before
    assert home_snapshot(home) == home_snapshot(home)
