"""Issue 20 item 13: two backfills never label the same folders at once; `watch add /`
is refused unless forced."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dropsight.daemon.contracts import ExitCode
from dropsight.daemon.core import paths
from dropsight.daemon.core.lock import Claimed, FolderClaims
from tests.daemon.helpers import dropsight, make_photo

HOLD = """
import sys, time
from pathlib import Path
from dropsight.daemon.core.lock import FolderClaims
claims = FolderClaims(Path(sys.argv[1])).claim([Path(sys.argv[2])])
print("claimed", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def other_run(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process (as a running backfill would) holding a claim on tmp_path/photos."""
    folder = tmp_path / "photos"
    folder.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(paths.state_dir() / "claims"), str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "claimed\n"
    yield proc
    proc.communicate("", timeout=10)


def test_a_second_backfill_of_the_same_folders_refuses(
    tmp_path: Path, other_run: subprocess.Popen[str]
) -> None:
    folder = tmp_path / "photos"
    make_photo(folder / "sub" / "a.jpg")
    for target in (folder, folder / "sub", tmp_path):  # the same, inside, around
        done = dropsight("backfill", "--model", "efficientnet-lite0", target)
        assert done.returncode == ExitCode.BUSY, done.stderr
        assert f"another backfill (pid {other_run.pid}) is labelling {folder}" in done.stderr
    assert not (folder / "sub" / "a.jpg.json").exists()
    counted = dropsight("backfill", "--dry-run", "--model", "efficientnet-lite0", folder)
    assert counted.returncode == 0, counted.stderr  # a dry run only counts


def test_claims_end_with_the_run(tmp_path: Path) -> None:
    state = tmp_path / "claims"
    a, b = tmp_path / "a", tmp_path / "b"
    with FolderClaims(state).claim([a]):
        FolderClaims(state).claim([b]).release()  # another folder: fine
        with pytest.raises(Claimed):
            FolderClaims(state).claim([a / "inside"])
    FolderClaims(state).claim([a]).release()  # let go


@pytest.mark.parametrize("folder", ["/", "/usr", "/etc", "/home"])
def test_watch_add_refuses_system_folders_unless_forced(app_home: Path, folder: str) -> None:
    refused = dropsight("watch", "add", folder)
    assert refused.returncode == ExitCode.USAGE
    assert "is a system folder" in refused.stderr and "--force" in refused.stderr
    assert not paths.config_file().exists() or folder not in paths.config_file().read_text()


def test_watch_add_force(app_home: Path) -> None:
    forced = dropsight("watch", "add", "/usr", "--force")
    assert forced.returncode == 0, forced.stderr
    assert '"/usr"' in paths.config_file().read_text()
