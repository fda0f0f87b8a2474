"""Live results: Server-Sent Events, `dropsight events`, and `[hooks] on_result`."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from dropsight.config.settings import HookSettings, Settings, WatchSettings
from dropsight.daemon.api.client import ServiceClient
from dropsight.daemon.api.server import ControlServer
from dropsight.daemon.contracts import ResultEvent
from dropsight.daemon.service.service import Service
from tests.daemon.helpers import FakeClassifier, make_photo, wait_for


def service_on(folder: Path, **settings: Any) -> tuple[Service, ControlServer]:
    fake = FakeClassifier()
    service = Service(
        Settings(watch=WatchSettings(folders=(folder,), settle_time_s=0.3), **settings),
        classifier_factory=lambda _s: fake,
    )
    server = ControlServer(service)
    service.start()
    server.start()
    wait_for(lambda: service.status()["state"] == "idle", 20, "idle")
    return service, server


def stream(port: int, token: str | None) -> tuple[http.client.HTTPConnection, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn.request("GET", "/v1/events", headers=headers)
    return conn, conn.getresponse()


def read_events(response: Any, count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while len(events) < count:
        line = response.fp.readline().decode("utf-8")
        assert line, "the stream ended early"
        if line.startswith("data: "):
            events.append(json.loads(line[6:]))
    return events


def test_events_stream_to_two_clients_and_need_the_token(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    service, server = service_on(folder)
    try:
        refused, answer = stream(server.port, None)
        assert answer.status == 401
        refused.close()
        first, one = stream(server.port, server.token)
        second, two = stream(server.port, server.token)
        assert one.status == two.status == 200
        assert one.getheader("Content-Type").startswith("text/event-stream")
        wait_for(lambda: service.events.listeners() == 2, 10, "two listeners")
        for i in range(3):
            make_photo(folder / f"{i}.jpg", seed=i)
        got_one, got_two = read_events(one, 3), read_events(two, 3)
        assert sorted(e["photo"] for e in got_one) == sorted(
            str(folder / f"{i}.jpg") for i in range(3)
        )
        assert got_one == got_two
        event = got_one[0]
        assert event["type"] == "result" and event["status"] == "ok"
        assert event["sidecar"] == event["photo"] + ".json"
        assert event["name"] and 0 < event["score"] <= 1 and event["model"] == "fake"
        # A client that goes away is forgotten; the other one keeps streaming.
        one.close()  # the response holds the socket too
        first.close()
        make_photo(folder / "later.jpg", seed=9)
        assert read_events(two, 1)[0]["photo"] == str(folder / "later.jpg")
        wait_for(lambda: service.events.listeners() == 1, 10, "the closed client dropped")
        second.close()
    finally:
        server.stop()
        service.join()


def test_dropsight_events_prints_json_lines_as_photos_are_labelled(
    tmp_path: Path, app_home: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    service, server = service_on(folder)
    reader = subprocess.Popen(
        [sys.executable, "-m", "dropsight.daemon", "events", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: service.events.listeners() == 1, 20, "the events command listening")
        make_photo(folder / "cat.jpg")
        line = reader.stdout.readline() if reader.stdout else ""
        assert json.loads(line)["photo"] == str(folder / "cat.jpg")
    finally:
        server.stop()
        service.join()
        assert reader.wait(20) == 0  # the stream ends with the service
        reader.stdout and reader.stdout.close()
        reader.stderr and reader.stderr.close()


def test_events_command_without_a_service_exits_3(app_home: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dropsight.daemon", "events"],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 3 and "not running" in done.stderr.lower()


def test_client_events_iterator(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    service, server = service_on(folder)
    got: list[ResultEvent] = []
    done = threading.Event()

    def listen() -> None:
        for event in ServiceClient.connect().events():
            got.append(event)
            if len(got) == 2:
                break
        done.set()

    thread = threading.Thread(target=listen)
    thread.start()
    try:
        wait_for(lambda: service.events.listeners() == 1, 10, "listening")
        make_photo(folder / "a.jpg", seed=1)
        make_photo(folder / "b.jpg", seed=2)
        assert done.wait(20)
        assert {Path(e["photo"]).name for e in got} == {"a.jpg", "b.jpg"}
    finally:
        server.stop()
        service.join()
        thread.join(10)


def test_hooks_run_per_result_and_a_slow_one_never_holds_labelling(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    out = tmp_path / "hooked"
    out.mkdir()
    script = (
        "import sys, pathlib, time;"
        "p = pathlib.Path(sys.argv[1]);"
        "time.sleep(3) if p.name.startswith('slow') else None;"
        f"(pathlib.Path({str(out)!r}) / (p.name + '.txt'))"
        ".write_text(sys.argv[2] + ' ' + sys.argv[3])"
    )
    hooks = HookSettings(
        on_result=(sys.executable, "-c", script, "{photo}", "{name}", "{status}"), timeout_s=1
    )
    service, server = service_on(folder, hooks=hooks)
    try:
        make_photo(folder / "slow.jpg", seed=1)
        started = time.monotonic()
        wait_for((folder / "slow.jpg.json").exists, 20, "the slow photo labelled")
        for i in range(3):
            make_photo(folder / f"{i}.jpg", seed=10 + i)
        for i in range(3):
            wait_for((folder / f"{i}.jpg.json").exists, 20, "labelling goes on")
        labelled_s = time.monotonic() - started
        for i in range(3):
            wait_for((out / f"{i}.jpg.txt").exists, 20, f"the hook for {i}.jpg")
            name, status = (out / f"{i}.jpg.txt").read_text().rsplit(" ", 1)
            assert status == "ok" and name
        assert not (out / "slow.jpg.txt").exists()  # stopped at its timeout
        errors = [e["message"] for e in service.status()["errors"]]
        assert any("on_result hook failed: took longer than 1 s" in m for m in errors), errors
        print(f"\nfour photos labelled in {labelled_s:.1f} s with a 3 s hook on one")
    finally:
        server.stop()
        service.join()
