"""Control API under hostile clients: connection caps, the token's reserve, whole-request deadlines.

A real loopback ControlServer with small injected Limits; `test_service_process.py` floods a
real service process at a lowered descriptor limit.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dropsight.daemon.api.client import ServiceClient
from dropsight.daemon.api.connlimit import Limits
from dropsight.daemon.api.server import ControlServer
from tests.daemon.api.test_control import FakeController
from tests.daemon.helpers import wait_for


@pytest.fixture
def fake() -> FakeController:
    return FakeController()


@contextlib.contextmanager
def serving(fake: FakeController, limits: Limits) -> Iterator[ControlServer]:
    srv = ControlServer(fake, limits)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def connect(srv: ControlServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port), timeout=10)


def head(srv: ControlServer, method: str, path: str, token: bool, length: int | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{srv.port}"]
    if token:
        lines.append(f"Authorization: Bearer {srv.token}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    """Read the whole answer (the server closes after it): status and JSON body."""
    data = sock.makefile("rb").read()
    status_line, _, rest = data.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(body)


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has answered or closed this connection (looks without waiting)."""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)  # an answer or end of file: either way, done with us
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


def status_code(srv: ControlServer, token: bool) -> int:
    """The HTTP status of one GET /v1/status."""
    with connect(srv) as sock:
        sock.sendall(head(srv, "GET", "/v1/status", token=token, length=None))
        return answer(sock)[0]


def test_idle_connections_beyond_the_cap_are_shed_and_status_gets_through(
    app_home: Path, fake: FakeController
) -> None:
    limits = Limits(max_pending=4, max_active=2, reserve=1)
    with serving(fake, limits) as srv:
        idle = [connect(srv) for _ in range(30)]
        try:
            # The server keeps at most 4 heads waiting: the oldest are closed as others come.
            wait_for(
                lambda: sum(closed_by_server(s) for s in idle) >= 26, 20, "oldest connections shed"
            )
            assert ServiceClient.connect().status()["state"] in {"working", "idle"}
        finally:
            for s in idle:
                s.close()


def test_the_token_has_a_reserve_when_answering_slots_are_full(
    app_home: Path, fake: FakeController
) -> None:
    # The deadline must outlast the steps below on a busy machine: at 5 s the stuck requests
    # sometimes ended (408) before the reserve was tried, freeing their slots.
    limits = Limits(max_pending=8, max_active=2, reserve=1, request_timeout_s=20.0)
    with serving(fake, limits) as srv:
        # Two authenticated requests whose bodies never come hold both answering slots.
        stuck = [connect(srv) for _ in range(2)]
        extra: socket.socket | None = None
        try:
            for s in stuck:
                s.sendall(head(srv, "POST", "/v1/pause", token=True, length=2))
            # Without the token: 401 while a slot is free, then 503 once both are taken.
            wait_for(lambda: status_code(srv, token=False) == 503, 10, "both slots taken")
            with connect(srv) as anon:
                anon.sendall(head(srv, "GET", "/v1/status", token=False, length=None))
                assert answer(anon)[1] == {
                    "error": {"code": "busy", "message": "too many requests; try again"},
                    "state": "busy",
                }
            # The token's reserve slot: stop and status still get through.
            assert ServiceClient(srv.port, srv.token).status()["pid"]
            extra = connect(srv)
            extra.sendall(head(srv, "POST", "/v1/pause", token=True, length=2))
            wait_for(lambda: status_code(srv, token=True) == 503, 10, "the reserve taken too")
            # The stuck requests end at their deadline (408), and the slots come back.
            for s in stuck:
                s.settimeout(60)
                status, body = answer(s)
                assert (status, body["error"]["code"]) == (408, "request_timeout")
            ServiceClient(srv.port, srv.token).stop()
            assert fake.calls == ["stop"]
        finally:
            for s in [*stuck, *([extra] if extra else [])]:
                s.close()


def test_a_head_trickling_in_is_cut_off_at_the_whole_request_deadline(
    app_home: Path, fake: FakeController
) -> None:
    with serving(fake, Limits(request_timeout_s=1.0)) as srv:
        with connect(srv) as sock:
            started = time.monotonic()
            sent = 0
            # A byte every 0.2 s: a per-read timeout would never fire.
            with contextlib.suppress(OSError):
                for byte in b"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 200:
                    if closed_by_server(sock):
                        break
                    sock.send(bytes([byte]))
                    sent += 1
                    time.sleep(0.2)
            assert time.monotonic() - started < 30
            assert sent < 200, "the server kept reading a trickling head"
            status, body = answer(sock)
        assert (status, body["error"]["code"]) == (408, "request_timeout")


def test_a_body_trickling_in_is_cut_off_at_the_whole_request_deadline(
    app_home: Path, fake: FakeController
) -> None:
    with serving(fake, Limits(request_timeout_s=1.0)) as srv:
        payload = json.dumps({"path": "/" + "x" * 300}).encode()
        with connect(srv) as sock:
            sock.sendall(head(srv, "POST", "/v1/classify", token=True, length=len(payload)))
            sent = 0
            with contextlib.suppress(OSError):
                for byte in payload:
                    if closed_by_server(sock):
                        break
                    sock.send(bytes([byte]))
                    sent += 1
                    time.sleep(0.2)
            assert sent < len(payload), "the server kept reading a trickling body"
            status, body = answer(sock)
        assert (status, body["error"]["code"]) == (408, "request_timeout")
        assert fake.classified == []


def test_an_oversized_head_is_refused(app_home: Path, fake: FakeController) -> None:
    with serving(fake, Limits(max_head_bytes=1024)) as srv:
        with connect(srv) as sock:
            # Under one read of the server's, so it closes with nothing unread (no reset).
            sock.sendall(b"GET /v1/status HTTP/1.1\r\nX-Big: " + b"y" * 2000)
            status, body = answer(sock)
        assert (status, body["error"]["code"]) == (431, "too_large")


def event_stream(srv: ControlServer) -> socket.socket:
    """A token-bearing `GET /v1/events` that never reads what it is sent."""
    sock = connect(srv)
    sock.sendall(head(srv, "GET", "/v1/events", token=True, length=None))
    return sock


def refused_busy(sock: socket.socket) -> bool:
    """Whether the server answered this connection 503 busy (an admitted stream gets 200)."""
    if not closed_by_server(sock):
        return False
    sock.settimeout(5)
    if not sock.recv(16, socket.MSG_PEEK).startswith(b"HTTP/1.0 503"):
        return False
    status, body = answer(sock)
    return status == 503 and body.get("state") == "busy"


def test_event_streams_never_take_the_control_slots(
    app_home: Path, fake: FakeController, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 20 item 7: 40 streams made `status` and `pause` say "not running" (exit 3)."""
    from dropsight.daemon.cli.control import run_command
    from dropsight.daemon.contracts import ExitCode

    limits = Limits(max_pending=64, max_active=4, reserve=2, max_streams=3)
    with serving(fake, limits) as srv:
        streams = [event_stream(srv) for _ in range(40)]
        try:
            wait_for(lambda: fake.events.listeners() == 3, 10, "three streams admitted")
            waiting, busy = list(streams), 0
            deadline = time.monotonic() + 10
            while busy < 37 and time.monotonic() < deadline:
                refused = [s for s in waiting if refused_busy(s)]
                waiting = [s for s in waiting if s not in refused]
                busy += len(refused)
            assert busy == 37
            assert run_command("status", False) == ExitCode.OK
            assert run_command("pause", False) == ExitCode.OK
            assert fake.calls == ["pause"]
        finally:
            for s in streams:
                s.close()
    assert "not running" not in capsys.readouterr().err


def test_a_service_with_no_slot_free_is_busy_not_gone(
    app_home: Path, fake: FakeController, capsys: pytest.CaptureFixture[str]
) -> None:
    from dropsight.daemon.api.client import ServiceBusy
    from dropsight.daemon.cli.control import run_command
    from dropsight.daemon.contracts import ExitCode

    limits = Limits(max_pending=8, max_active=1, reserve=0, max_streams=1, request_timeout_s=30)
    with serving(fake, limits) as srv:
        stuck = connect(srv)  # holds the one answering slot: its body never comes
        stuck.sendall(head(srv, "POST", "/v1/pause", token=True, length=2))
        stream = event_stream(srv)
        try:
            wait_for(lambda: status_code(srv, token=True) == 503, 10, "the slot taken")
            with pytest.raises(ServiceBusy):
                ServiceClient.connect()
            assert run_command("status", False) == ExitCode.SERVICE_BUSY
            err = capsys.readouterr().err
            assert "busy" in err and "not running" not in err
            with pytest.raises(ServiceBusy):
                next(iter(ServiceClient(srv.port, srv.token).events()))
        finally:
            stuck.close()
            stream.close()
