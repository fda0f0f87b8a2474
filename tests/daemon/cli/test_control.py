"""The control commands (`dropsight status|pause|...`) against a real control API server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dropsight.daemon.api.client import ServiceClient, ServiceError, not_running_message
from dropsight.daemon.api.server import ControlServer
from dropsight.daemon.cli.control import format_status, run_command
from dropsight.daemon.contracts import FolderStatus, RecentResult, Status
from tests.daemon.api.test_control import TOTAL, FakeController
from tests.daemon.helpers import dropsight
from tests.tray.fakes import fake_status


@pytest.fixture
def home(app_home: Path) -> Path:
    """DROPSIGHT_HOME, already a temp folder (tests/conftest.py)."""
    return app_home


@pytest.fixture
def fake() -> FakeController:
    return FakeController()


@pytest.fixture
def server(home: Path, fake: FakeController) -> Iterator[ControlServer]:
    srv = ControlServer(fake)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_run_command_not_running(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_command("status", as_json=False) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip() == not_running_message()
    assert run_command("status", as_json=True) == 3
    out, err = capsys.readouterr()
    assert json.loads(out) == {"state": "not-running"}
    assert err.strip() == not_running_message()


def test_run_command_status_human(
    server: ControlServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_command("status", as_json=False) == 0
    out = capsys.readouterr().out
    assert "working" in out
    assert f"0 done, {TOTAL} queued, 0 failed" in out
    assert "vgg16" in out


def test_run_command_status_json(server: ControlServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_command("status", as_json=True) == 0
    assert json.loads(capsys.readouterr().out)["queued"] == TOTAL


@pytest.mark.parametrize("name", ["pause", "resume", "rescan", "stop"])
def test_run_command_actions(
    server: ControlServer, fake: FakeController, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    assert run_command(name, as_json=True) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "command": name}
    assert fake.calls == [name]


def test_stop_works_when_status_fails(
    server: ControlServer, fake: FakeController, capsys: pytest.CaptureFixture[str]
) -> None:
    # The status snapshot is what breaks first (a name it cannot encode, a bug): stop must not
    # depend on it, nor may status then claim that nothing is running.
    fake.fail_status = True
    assert run_command("status", as_json=False) == 1
    assert "HTTP 500" in capsys.readouterr().err
    assert run_command("stop", as_json=False) == 0
    assert fake.calls == ["stop"]


class _NamesNotUtf8(FakeController):
    """Watches a folder whose name has a byte that is not UTF-8; a Windows-style odd name too."""

    FOLDER = os.fsdecode(b"/photos/caf\xe9")

    def status(self) -> Status:
        folder: FolderStatus = {
            "path": self.FOLDER,
            "healthy": True,
            "error": None,
            "observer": "InotifyObserver",
        }
        recent: RecentResult = {
            "image": self.FOLDER + "/\ud800.jpg",
            "sidecar": self.FOLDER + "/\ud800.jpg.json",
            "status": "ok",
            "label": "tabby",
            "score": 0.5,
            "time": "t",
        }
        return fake_status(folders=[folder], recent=[recent], current=self.FOLDER + "/x.jpg")


def test_status_shows_names_that_are_not_utf8_as_escapes(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with ControlServer(_NamesNotUtf8()):
        # capsys, like a pipe, takes only UTF-8: raw surrogates would crash the command.
        assert run_command("status", as_json=False) == 0
        out = capsys.readouterr().out
        assert "Watching:  /photos/caf\\udce9 (ok)" in out
        assert "\\ud800.jpg: tabby 50.0%" in out
        assert run_command("status", as_json=True) == 0
        folder = json.loads(capsys.readouterr().out)["folders"][0]["path"]
        assert os.fsencode(folder) == b"/photos/caf\xe9"  # the bytes come back


def test_run_command_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_command("explode", as_json=False) == 2
    assert "unknown command" in capsys.readouterr().err


def test_status_text_indents_multi_line_errors_newest_first() -> None:
    errors = [
        {"time": "t2", "path": None, "message": "the changed config was not applied:\nline two"},
        {"time": "t1", "path": "/p/a.jpg", "message": "corrupt: bad"},
    ]
    text = format_status(
        fake_status(errors=errors, output={"xmp": "beside", "xmp_name": "IMG.xmp"})
    )
    lines = text.splitlines()
    first = lines.index("  Last errors:")
    assert lines[first + 1 : first + 4] == [
        "    t2 the changed config was not applied:",
        "      line two",
        "    t1 /p/a.jpg: corrupt: bad",
    ]
    assert "  XMP:       keywords beside each photo (IMG.xmp)" in lines


class _OffContract(FakeController):
    """A service whose status does not follow the contract (a bug, or not our service)."""

    def status(self) -> Status:
        broken: Any = {**fake_status(), "state": "exploded"}
        return broken


def test_an_answer_off_the_contract_is_the_services_error(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with ControlServer(_OffContract()):
        client = ServiceClient.connect()  # ping still proves it is alive
        with pytest.raises(ServiceError, match=r"status does not follow the contract.*\$\.state"):
            client.status()
        assert run_command("status", as_json=False) == 1
        assert "does not follow the contract" in capsys.readouterr().err
        client.pause()  # other answers are still read


def test_a_stand_in_model_is_said_calmly() -> None:
    status = fake_status()
    status["model"] |= {
        "name": "efficientnet-lite0",
        "fallback": True,
        "fallback_reason": "VGG16 weights not found",
        "missing": {"name": "vgg16", "download_bytes": 553_467_096},
    }
    line = next(x for x in format_status(status).splitlines() if "Model:" in x)
    assert "WARNING" not in line
    assert line == (
        "  Model:     efficientnet-lite0 (litert), standing in for vgg16 until its weights are "
        "here (`dropsight models get vgg16`)"
    )


def test_status_after_a_failed_start_says_why(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\ntop_k = 0\n", "utf-8")
    failed = dropsight("service", "--config", bad)
    assert failed.returncode == 2
    status = dropsight("status")
    assert status.returncode == 3
    lines = status.stderr.splitlines()
    assert lines[0].startswith("Dropsight is not running")
    assert lines[1].startswith("The last start failed (") and "top_k" in lines[1]
    answer = json.loads(dropsight("status", "--json").stdout)
    assert answer["state"] == "not-running" and "top_k" in answer["start_failure"]["message"]


def test_hints_name_the_command_as_it_was_run(home: Path) -> None:
    venv_bin = Path(sys.executable).parent
    if not (venv_bin / "dropsight").is_file():
        pytest.skip("no dropsight console script beside this Python")
    ran = subprocess.run(
        ["bin/dropsight", "status"],  # as `make run` leaves it: .venv/bin/dropsight
        cwd=venv_bin.parent,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PATH": "/usr/bin:/bin"},
    )
    assert ran.returncode == 3
    assert "start it with `bin/dropsight service` or `bin/dropsight tray`" in ran.stderr
    on_path = subprocess.run(
        ["dropsight", "status"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PATH": f"{venv_bin}:/usr/bin:/bin"},
    )
    assert "start it with `dropsight service`" in on_path.stderr
