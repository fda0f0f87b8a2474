"""The typed contracts agree with the public JSON Schema, the service and the control API."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any, get_args, get_type_hints

import pytest

from dropsight.config.settings import Settings, WatchSettings
from dropsight.daemon import contracts
from dropsight.daemon.api.server import ControlServer
from dropsight.daemon.outputs import sidecar
from dropsight.daemon.service.service import Service
from tests.daemon.helpers import FakeClassifier, wait_for
from tests.tray.fakes import FakeController

# (TypedDict, path to its object in the schema)
BLOCKS: list[tuple[Any, tuple[str | int, ...]]] = [
    (contracts.SidecarRecord, ()),
    (contracts.ImageBlock, ("properties", "image")),
    (contracts.ModelBlock, ("properties", "model")),
    (contracts.Prediction, ("properties", "predictions", "items")),
    (contracts.ErrorBlock, ("properties", "error", "anyOf", 1)),
    (contracts.GeneratorBlock, ("properties", "generator")),
]


def _schema_at(path: tuple[str | int, ...]) -> dict[str, Any]:
    node: Any = sidecar.schema()
    for key in path:
        node = node[key]
    assert isinstance(node, dict)
    return node


@pytest.mark.parametrize(("typed", "where"), BLOCKS, ids=[b[0].__name__ for b in BLOCKS])
def test_sidecar_types_match_the_json_schema(typed: Any, where: tuple[str | int, ...]) -> None:
    node = _schema_at(where)
    assert set(node["properties"]) == set(get_type_hints(typed)), "fields differ"
    assert set(node.get("required", [])) == set(typed.__required_keys__), "required differ"


def test_service_status_has_exactly_the_contract_fields(tmp_path: Path) -> None:
    fake = FakeClassifier()
    service = Service(
        Settings(watch=WatchSettings(folders=(tmp_path,), rescan_interval_s=0)),
        classifier_factory=lambda _s: fake,
    )
    service.start()
    try:
        wait_for(lambda: service.status()["state"] == "idle", 20, "idle")
        status: dict[str, Any] = dict(service.status())
    finally:
        service.join()
    hints = get_type_hints(contracts.Status)
    assert set(contracts.Status.__required_keys__) <= set(status)
    assert set(status) <= set(hints), f"undeclared: {set(status) - set(hints)}"
    model = status["model"]
    assert set(contracts.ModelStatus.__required_keys__) <= set(model)
    assert set(model) <= set(get_type_hints(contracts.ModelStatus))
    for folder in status["folders"]:
        assert set(folder) == set(get_type_hints(contracts.FolderStatus))
    json.dumps(status)  # JSON-ready


def _request(port: int, token: str, method: str, route: str) -> tuple[int, dict[str, Any], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        headers = {"Authorization": f"Bearer {token}", "Content-Length": "0"}
        conn.request(method, contracts.API_PREFIX + route, headers=headers)
        response = conn.getresponse()
        body = json.loads(response.read() or b"{}")
        return response.status, body, response.getheader("Allow") or ""
    finally:
        conn.close()


def test_control_api_serves_exactly_the_contract_routes(tmp_path: Path) -> None:
    server = ControlServer(FakeController(tmp_path))
    server.start()
    try:
        for route, method in contracts.ROUTES.items():
            wrong = "POST" if method == "GET" else "GET"
            status, body, allow = _request(server.port, server.token, wrong, route)
            assert (status, allow) == (405, method), route
            assert body["error"]["code"] == "method_not_allowed"
        status, body, _ = _request(server.port, server.token, "GET", "no-such-route")
        assert status == 404
        assert body["error"]["code"] in contracts.ErrorCode.__args__  # type: ignore[attr-defined]
    finally:
        server.stop()


def test_the_route_table_names_every_route_once() -> None:
    assert sorted(contracts.ROUTES) == sorted(get_args(contracts.Route))
