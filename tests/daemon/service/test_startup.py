"""`dropsight service` start and end: exit codes a supervisor acts on, a private state folder."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dropsight.config.settings import Settings, WatchSettings
from dropsight.daemon.contracts import ExitCode
from dropsight.daemon.core import logs
from dropsight.daemon.service import startup
from dropsight.daemon.service.service import Service
from tests.daemon.helpers import fill, tmpfs_over, wait_for

SERVICE = [sys.executable, "-m", "dropsight.daemon", "service"]


def test_an_internal_failure_exits_70_so_systemd_restarts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, app_home: Path
) -> None:
    """`Restart=on-failure` with `RestartPreventExitStatus=1 2`: 0, 1 and 2 are never restarted."""

    def broken(self: Service) -> None:
        raise RuntimeError("a bug in start-up")

    monkeypatch.setattr(Service, "start", broken)
    settings = Settings(watch=WatchSettings(folders=(tmp_path,)))
    assert startup.run_service(settings) == ExitCode.INTERNAL == 70
    text = logs.log_file().read_text("utf-8")
    assert "the service failed" in text and "a bug in start-up" in text
    lock = app_home / "state" / "service.lock"
    assert lock.read_text() == "", "the lock was released"
    unit = Path(__file__).parents[3] / "packaging" / "linux" / "dropsight.service"
    prevented = next(
        line for line in unit.read_text().splitlines() if line.startswith("RestartPreventExit")
    )
    assert "70" not in prevented.split("=", 1)[1].split()


@pytest.fixture
def full_state_folder(app_home: Path) -> Iterator[Path]:
    """The state folder on a real, full 64 KiB tmpfs (root only)."""
    state = app_home / "state"
    state.mkdir()
    with tmpfs_over(state, "64k"):
        fill(state)
        yield state


def test_a_full_state_folder_is_one_clear_line_and_exit_70(
    tmp_path: Path, full_state_folder: Path
) -> None:
    done = subprocess.run(
        [*SERVICE, "--watch", str(tmp_path)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    assert done.returncode == 70, done.stderr
    assert "Traceback" not in done.stderr
    assert f"cannot use the state folder {full_state_folder}" in done.stderr
    assert "No space left on device" in done.stderr


def test_the_state_folder_and_log_are_private(tmp_path: Path, app_home: Path) -> None:
    """Both hold photo paths (and the API token): readable by their owner only."""
    # Left by an older version with the usual umask.
    (app_home / "state").mkdir(mode=0o755)
    (app_home / "log").mkdir(mode=0o755)
    (app_home / "log" / "dropsight.log").write_text("old line\n")
    os.chmod(app_home / "log" / "dropsight.log", 0o644)  # noqa: PTH101
    log = tmp_path / "out.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*SERVICE, "--watch", str(tmp_path), "--model", "efficientnet-lite0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_for((app_home / "state" / "control.json").exists, 120, "the service up")
        for folder in (app_home / "state", app_home / "log"):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
        for path in (app_home / "log" / "dropsight.log", app_home / "state" / "control.json"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, "a requested stop exits 0"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
