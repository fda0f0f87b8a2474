"""Control API: a real loopback server with a fake Controller, raw HTTP and the client."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import socket
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dropsight.daemon import __version__
from dropsight.daemon.api.client import (
    ServiceClient,
    ServiceError,
    ServiceNotRunning,
)
from dropsight.daemon.api.server import MAX_BODY_BYTES, ControlServer, control_file
from dropsight.daemon.contracts import (
    SidecarRecord,
    Status,
)
from dropsight.daemon.outputs.events import EventHub
from tests.tray.fakes import RecordedCommands, fake_status, sidecar_for

TOTAL = 500


class FakeController(RecordedCommands):
    """Counters that a burst thread moves while requests read them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = 0
        self.queued = TOTAL
        self.calls: list[str] = []
        self.events = EventHub()
        self.fail_status = False
        self.classified: list[Path] = []

    def status(self) -> Status:
        if self.fail_status:
            raise RuntimeError("boom")
        with self.lock:
            return fake_status(
                state="working" if self.queued else "idle", done=self.done, queued=self.queued
            )

    def step(self) -> None:
        with self.lock:
            if self.queued:
                self.queued -= 1
                self.done += 1

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")

    def rescan(self) -> None:
        self.calls.append("rescan")

    def stop(self) -> None:
        self.calls.append("stop")

    def classify(self, path: Path) -> SidecarRecord:
        if path.name == "missing.jpg":
            raise FileNotFoundError(f"no such file: {path}")
        if path.suffix == ".txt":
            raise ValueError(f"not an image: {path}")
        if path.name == "early.jpg":
            raise RuntimeError("the model is still loading")
        self.classified.append(path)
        return sidecar_for(path)


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


def raw(
    server: ControlServer,
    method: str,
    path: str,
    *,
    token: str | None = "ours",
    host: str | None = "ours",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request with full control over Host and Authorization; JSON-decoded answer."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", f"127.0.0.1:{server.port}" if host == "ours" else host)
        if token is not None:
            value = f"Bearer {server.token}" if token == "ours" else token
            conn.putheader("Authorization", value)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body is not None and "Content-Length" not in (headers or {}):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        data = response.read()
        assert response.getheader("Content-Type", "").startswith("application/json")
        return response.status, dict(response.getheaders()), json.loads(data) if data else None
    finally:
        conn.close()


# --- happy path ------------------------------------------------------------------------------


def test_status_with_token(server: ControlServer) -> None:
    status, _, body = raw(server, "GET", "/v1/status")
    assert status == 200
    assert body["state"] == "working"
    assert body["queued"] == TOTAL


@pytest.mark.parametrize("name", ["pause", "resume", "rescan", "stop", "relabel", "reload"])
@pytest.mark.parametrize("body", [None, b"{}"])
def test_actions(
    server: ControlServer, fake: FakeController, name: str, body: bytes | None
) -> None:
    status, _, answer = raw(server, "POST", f"/v1/{name}", body=body)
    assert (status, answer) == (200, {"ok": True})
    assert fake.calls == [name]


def test_localhost_and_ipv6_host_names_accepted(server: ControlServer) -> None:
    for host in (f"localhost:{server.port}", f"LOCALHOST:{server.port}", f"[::1]:{server.port}"):
        assert raw(server, "GET", "/v1/status", host=host)[0] == 200


def test_classify(server: ControlServer, fake: FakeController, tmp_path: Path) -> None:
    target = tmp_path / "cat.jpg"
    status, _, answer = raw(
        server, "POST", "/v1/classify", body=json.dumps({"path": str(target)}).encode()
    )
    assert status == 200
    assert answer["predictions"][0]["label"] == "Egyptian_cat"
    assert fake.classified == [target]


# --- refusals --------------------------------------------------------------------------------


def test_no_token_is_401(server: ControlServer) -> None:
    status, headers, body = raw(server, "GET", "/v1/status", token=None)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert body["error"]["code"] == "unauthorized"
    assert "state" not in body


@pytest.mark.parametrize(
    "value",
    ["Bearer wrong", "Bearer ", "Basic dXNlcjpwYXNz", "ours-without-scheme", "Bearer \u00e9\u00e9"],
)
def test_wrong_token_is_403(server: ControlServer, value: str) -> None:
    token = server.token if value == "ours-without-scheme" else value
    status, _, body = raw(server, "POST", "/v1/pause", token=token)
    assert status == 403
    assert body["error"]["code"] == "forbidden"


def test_refusals_do_not_act(server: ControlServer, fake: FakeController) -> None:
    raw(server, "POST", "/v1/stop", token=None)
    raw(server, "POST", "/v1/stop", token="Bearer nope")
    raw(server, "POST", "/v1/stop", host="evil.example")
    assert fake.calls == []


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:{port}", "127.0.0.1", "127.0.0.1:1", "", None]
)
def test_foreign_host_is_403(server: ControlServer, host: str | None) -> None:
    value = host.format(port=server.port) if host is not None else None
    status, _, body = raw(server, "GET", "/v1/status", host=value)
    assert status == 403
    assert body["error"]["code"] == "forbidden_host"


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b'"path"',
        b"{}",
        b'{"paths": "/x.jpg"}',
        b'{"path": 5}',
        b'{"path": ""}',
        b'{"path": "relative/cat.jpg"}',
        b'{"path": "/a\\u0000b.jpg"}',
        b'{"path": "/x.jpg", "extra": 1}',
    ],
)
def test_bad_classify_body_is_400(server: ControlServer, fake: FakeController, body: bytes) -> None:
    status, _, answer = raw(server, "POST", "/v1/classify", body=body)
    assert status == 400
    assert answer["error"]["code"] in {"bad_json", "bad_request", "bad_path"}
    assert fake.classified == []


@pytest.mark.parametrize("body", [b"{nope", b"[]", b'{"now": true}'])
def test_bad_action_body_is_400(server: ControlServer, fake: FakeController, body: bytes) -> None:
    assert raw(server, "POST", "/v1/pause", body=body)[0] == 400
    assert fake.calls == []


@pytest.mark.parametrize("length", ["abc", "-5"])
def test_bad_content_length_is_400(server: ControlServer, length: str) -> None:
    status, _, _ = raw(server, "POST", "/v1/pause", body=b"", headers={"Content-Length": length})
    assert status == 400


def test_chunked_body_is_refused(server: ControlServer) -> None:
    status, _, _ = raw(
        server,
        "POST",
        "/v1/classify",
        body=b"0\r\n\r\n",
        headers={"Transfer-Encoding": "chunked"},
    )
    assert status == 411


@pytest.mark.parametrize("path", ["/", "/v1/", "/v1/nope", "/v2/status", "/v1/status/extra"])
def test_unknown_path_is_404(server: ControlServer, path: str) -> None:
    status, _, body = raw(server, "GET", path)
    assert status == 404
    assert body["error"]["code"] == "not_found"


def test_unknown_path_without_token_is_401_not_404(server: ControlServer) -> None:
    assert raw(server, "GET", "/v1/nope", token=None)[0] == 401


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/pause", "POST"),
        ("POST", "/v1/status", "GET"),
        ("DELETE", "/v1/status", "GET"),
        ("PUT", "/v1/classify", "POST"),
    ],
)
def test_wrong_method_is_405(server: ControlServer, method: str, path: str, allow: str) -> None:
    status, headers, body = raw(server, method, path)
    assert status == 405
    assert headers["Allow"] == allow
    assert body["error"]["code"] == "method_not_allowed"


def test_unsupported_method_is_json(server: ControlServer) -> None:
    status, _, body = raw(server, "BREW", "/v1/status")
    assert status == 501
    assert "error" in body


def test_oversized_body_is_413_without_reading_it(server: ControlServer) -> None:
    # Announce a huge body but send none: the server must answer from the header alone.
    status, _, body = raw(
        server,
        "POST",
        "/v1/classify",
        body=b"",
        headers={"Content-Length": str(MAX_BODY_BYTES + 1)},
    )
    assert status == 413
    assert body["error"]["code"] == "too_large"


def test_oversized_body_sent_in_full_is_413(server: ControlServer) -> None:
    payload = json.dumps({"path": "/" + "x" * (MAX_BODY_BYTES * 2)}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        head = (
            f"POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Authorization: Bearer {server.token}\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode()
        sock.sendall(head)
        # The server may close before reading everything; the answer still came.
        with contextlib.suppress(OSError):
            sock.sendall(payload)
        answer = sock.makefile("rb").read()
    assert answer.startswith(b"HTTP/1.0 413")


def test_garbage_request_line_is_json_400(server: ControlServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01 garbage\r\n\r\n")
        answer = sock.makefile("rb").read()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 400")
    assert "error" in json.loads(body)


def test_handler_exception_is_500_and_server_lives_on(
    server: ControlServer, fake: FakeController, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail_status = True
    status, _, body = raw(server, "GET", "/v1/status")
    assert status == 500
    assert body["error"]["code"] == "internal_error"
    assert "boom" not in json.dumps(body)  # internals stay in the log
    assert any("boom" in (r.exc_text or "") for r in caplog.records)
    fake.fail_status = False
    assert raw(server, "GET", "/v1/status")[0] == 200


def test_nothing_written_to_stderr(
    server: ControlServer, capfd: pytest.CaptureFixture[str]
) -> None:
    raw(server, "GET", "/v1/status")
    raw(server, "GET", "/v1/status", token=None)
    assert capfd.readouterr().err == ""


def test_stalled_client_does_not_block_others_or_stop(home: Path, fake: FakeController) -> None:
    srv = ControlServer(fake)
    srv.start()
    stalled = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    try:
        assert raw(srv, "GET", "/v1/status")[0] == 200
        started = time.monotonic()
        srv.stop()
        assert time.monotonic() - started < 2
    finally:
        stalled.close()
        srv.stop()


# --- control.json ----------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_control_file_is_private(server: ControlServer) -> None:
    path = control_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    info = json.loads(path.read_text())
    assert info == {
        "port": server.port,
        "token": server.token,
        "pid": os.getpid(),
        "version": __version__,
    }
    assert len(server.token) >= 40
    # No temp files left beside it.
    assert [p.name for p in path.parent.iterdir()] == ["control.json"]


def test_stop_removes_control_file(home: Path, fake: FakeController) -> None:
    srv = ControlServer(fake)
    srv.start()
    assert control_file().exists()
    srv.stop()
    assert not control_file().exists()
    srv.stop()  # idempotent


def test_stop_leaves_another_instances_file(home: Path, fake: FakeController) -> None:
    srv = ControlServer(fake)
    srv.start()
    foreign = {"port": 1, "token": "theirs", "pid": 1, "version": "x"}
    control_file().write_text(json.dumps(foreign))
    srv.stop()
    assert json.loads(control_file().read_text()) == foreign


def test_tokens_differ_per_server(home: Path, fake: FakeController) -> None:
    assert ControlServer(fake).token != ControlServer(fake).token


# --- concurrency -----------------------------------------------------------------------------


def test_concurrent_status_during_burst(server: ControlServer, fake: FakeController) -> None:
    stop = threading.Event()

    def burst() -> None:
        while not stop.is_set() and fake.queued:
            fake.step()
            time.sleep(0.0005)

    mover = threading.Thread(target=burst)
    mover.start()
    client = ServiceClient.connect()
    results: list[Status] = []
    errors: list[BaseException] = []
    gate = threading.Barrier(20)

    def ask() -> None:
        try:
            gate.wait(timeout=5)
            for _ in range(5):
                results.append(client.status())
        except BaseException as exc:
            errors.append(exc)

    askers = [threading.Thread(target=ask) for _ in range(20)]
    try:
        for t in askers:
            t.start()
        for t in askers:
            t.join(timeout=30)
    finally:
        stop.set()
        mover.join(timeout=5)
    assert errors == []
    assert len(results) == 100
    # Each snapshot is consistent, and the counters were really moving.
    assert all(r["done"] + r["queued"] == TOTAL for r in results)
    assert len({r["done"] for r in results}) > 1


# --- client ----------------------------------------------------------------------------------


def test_client_round_trip(server: ControlServer, fake: FakeController, tmp_path: Path) -> None:
    client = ServiceClient.connect()
    assert client.status()["done"] == 0
    client.pause()
    client.resume()
    client.rescan()
    client.stop()
    client.relabel()
    client.reload()
    client.reload_model()
    assert fake.calls == ["pause", "resume", "rescan", "stop", "relabel", "reload", "reload_model"]
    assert client.classify(tmp_path / "a.jpg")["status"] == "ok"
    with pytest.raises(FileNotFoundError, match=r"missing\.jpg"):
        client.classify(tmp_path / "missing.jpg")
    with pytest.raises(ValueError, match="not an image"):
        client.classify(tmp_path / "notes.txt")
    with pytest.raises(ServiceError, match="still loading") as info:
        client.classify(tmp_path / "early.jpg")
    assert info.value.status == 503


def test_client_sends_absolute_paths(
    server: ControlServer, fake: FakeController, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ServiceClient.connect().classify("cat.jpg")
    assert fake.classified == [tmp_path / "cat.jpg"]


def test_client_without_control_file(home: Path) -> None:
    with pytest.raises(ServiceNotRunning, match="not running"):
        ServiceClient.connect()


@pytest.mark.parametrize("content", ["", "{", "[]", '{"port": "x", "token": "t"}'])
def test_client_with_malformed_control_file(home: Path, content: str) -> None:
    control_file().parent.mkdir(parents=True)
    control_file().write_text(content)
    with pytest.raises(ServiceNotRunning):
        ServiceClient.connect()


def test_client_detects_stale_control_file(home: Path, fake: FakeController) -> None:
    # A crashed service: the file stays, nothing listens on its port any more.
    srv = ControlServer(fake)
    srv.start()
    stale = control_file().read_text()
    srv.stop()
    control_file().write_text(stale)
    with pytest.raises(ServiceNotRunning, match=r"stale|nothing answers"):
        ServiceClient.connect()


class _Unrelated(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_client_detects_port_reused_by_another_program(home: Path) -> None:
    other = http.server.HTTPServer(("127.0.0.1", 0), _Unrelated)
    thread = threading.Thread(target=other.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        control_file().parent.mkdir(parents=True)
        control_file().write_text(
            json.dumps({"port": other.server_address[1], "token": "t", "pid": 1})
        )
        with pytest.raises(ServiceNotRunning, match="stale"):
            ServiceClient.connect()
    finally:
        other.shutdown()
        other.server_close()
        thread.join(timeout=5)


def test_client_after_service_went_away(home: Path, fake: FakeController) -> None:
    srv = ControlServer(fake)
    srv.start()
    client = ServiceClient.connect()
    srv.stop()
    with pytest.raises(ServiceNotRunning):
        client.status()


def test_client_with_wrong_token_is_an_error(server: ControlServer) -> None:
    client = ServiceClient(server.port, "wrong")
    with pytest.raises(ServiceError) as info:
        client.pause()
    assert info.value.status == 403


def test_ping_asks_the_controller_nothing(server: ControlServer, fake: FakeController) -> None:
    fake.fail_status = True
    status, _, body = raw(server, "GET", "/v1/ping")
    assert (status, body) == (200, {"ok": True, "pid": os.getpid(), "version": __version__})
    assert raw(server, "GET", "/v1/ping", token=None)[0] == 401
