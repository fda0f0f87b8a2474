"""Raw JSON narrowed to the contracts' types where it arrives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dropsight.daemon.api.wire import WireError, narrow, read_sidecar
from dropsight.daemon.contracts import ResultEvent, Status
from tests.tray.fakes import fake_status, sidecar_for


def test_a_status_passes_and_fields_from_a_newer_service_are_dropped() -> None:
    status = json.loads(json.dumps(fake_status()))
    status["added_in_9"] = {"x": 1}
    narrowed = narrow(status, Status)
    assert "added_in_9" not in narrowed
    assert narrowed["model"]["name"] == "vgg16"


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"state": "exploded"}, "$.state"),
        ({"done": "12"}, "$.done"),
        ({"done": True}, "$.done"),
        ({"recent": [{"image": "a.jpg"}]}, "$.recent[0]"),
    ],
)
def test_a_status_off_the_contract_is_refused(change: dict[str, object], where: str) -> None:
    status = {**json.loads(json.dumps(fake_status())), **change}
    with pytest.raises(WireError, match=r"does not follow the contract") as info:
        narrow(status, Status)
    assert where in str(info.value)


def test_missing_fields_are_refused() -> None:
    with pytest.raises(WireError, match="missing required field"):
        narrow({"type": "result", "photo": "/p/a.jpg"}, ResultEvent, "event")


def test_read_sidecar(tmp_path: Path) -> None:
    good = tmp_path / "a.jpg.json"
    good.write_text(json.dumps(sidecar_for(tmp_path / "a.jpg")))
    assert read_sidecar(good)["predictions"][0]["class_index"] == 285
    for text in ("[1, 2]", "{not json", '{"schema_version": 1}'):
        good.write_text(text)
        with pytest.raises(WireError):
            read_sidecar(good)
    good.write_bytes(b"\xff\xfe")
    with pytest.raises(WireError):
        read_sidecar(good)
