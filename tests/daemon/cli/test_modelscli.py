"""`dropsight models` as a person runs it: list, get (from a server on 127.0.0.1), import,
remove, and a running service switching to the model once its weights arrive."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import random
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dropsight.config.settings import Settings, WatchSettings
from dropsight.daemon.api.server import ControlServer
from dropsight.daemon.models.sources import MD5_ENV, URL_ENV
from dropsight.daemon.models.weights import VGG16_WEIGHTS_FILE
from dropsight.daemon.runtime.classifier import ModelInfo
from dropsight.daemon.service.service import Service
from tests.daemon.helpers import FakeClassifier, dropsight, make_photo, wait_for

PAYLOAD = random.Random(7).randbytes(3 * 1024 * 1024)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def weights_server() -> Iterator[str]:
    """A stand-in for Keras' download address, on loopback only."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, name="weights-server")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{VGG16_WEIGHTS_FILE}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def vgg16_once_weights_are_in(target: Path) -> Callable[[Settings], FakeClassifier]:
    """A model factory standing in for the real one: the fallback until the weights arrive."""

    def factory(_settings: Settings) -> FakeClassifier:
        fake = FakeClassifier()
        if target.is_file():  # stands in for building VGG16 from the arrived weights
            fake.info = ModelInfo(name="vgg16", fingerprint="a" * 64, input_size=(224, 224))
        else:
            fake.info = ModelInfo(
                name="efficientnet-lite0",
                fingerprint="b" * 64,
                input_size=(224, 224),
                requested="vgg16",
                fallback_reason="vgg16 could not be loaded: VGG16 weights not found",
                requested_missing=True,
            )
        return fake

    return factory


def test_get_then_list_then_remove(weights_server: str, app_home: Path) -> None:
    env = {URL_ENV: weights_server, MD5_ENV: hashlib.md5(PAYLOAD).hexdigest()}
    before = json.loads(dropsight("models", "--json").stdout)
    vgg = next(m for m in before if m["name"] == "vgg16")
    assert vgg["weights"] is None and vgg["configured"] and vgg["download_bytes"] > 5e8

    got = dropsight("models", "get", "vgg16", env=env)
    assert got.returncode == 0, got.stderr
    target = Path(os.environ["KERAS_HOME"]) / "models" / VGG16_WEIGHTS_FILE
    assert target.read_bytes() == PAYLOAD
    assert "no service running" in got.stdout
    after = json.loads(dropsight("models", "--json").stdout)
    vgg = next(m for m in after if m["name"] == "vgg16")
    assert vgg["weights"] == {"path": str(target), "origin": "keras-cache"}

    again = dropsight("models", "get", "vgg16", env=env)
    assert "here already" in again.stdout

    removed = dropsight("models", "remove", "vgg16")
    assert removed.returncode == 0 and f"removed {target}" in removed.stdout
    assert not target.exists()


def test_get_without_network_is_one_clear_line(app_home: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {URL_ENV: f"http://127.0.0.1:{port}/w.h5", MD5_ENV: "0" * 32}
    got = dropsight("models", "get", "vgg16", env=env)
    assert got.returncode == 1
    lines = got.stderr.strip().splitlines()
    assert len(lines) == 1, got.stderr
    assert lines[0].startswith("dropsight models get vgg16: no network")
    assert "Traceback" not in got.stderr


def test_import_checks_the_file(app_home: Path, tmp_path: Path) -> None:
    good = tmp_path / "mine.h5"
    good.write_bytes(PAYLOAD)
    env = {MD5_ENV: hashlib.md5(PAYLOAD).hexdigest()}
    assert dropsight("models", "import", good, env=env).returncode == 0
    bad = tmp_path / "other.h5"
    bad.write_bytes(b"something else")
    refused = dropsight("models", "import", bad, env=env)
    assert refused.returncode == 1
    assert "dropsight models import:" in refused.stderr
    assert (Path(os.environ["KERAS_HOME"]) / "models" / VGG16_WEIGHTS_FILE).read_bytes() == PAYLOAD


def test_a_running_service_switches_when_the_weights_arrive(
    weights_server: str, app_home: Path, tmp_path: Path
) -> None:
    """`models get` tells the running service; it switches without a restart."""
    target = Path(os.environ["KERAS_HOME"]) / "models" / VGG16_WEIGHTS_FILE

    factory = vgg16_once_weights_are_in(target)
    folder = tmp_path / "photos"
    folder.mkdir()
    settings = Settings(watch=WatchSettings(folders=(folder,), settle_time_s=0.3))
    service = Service(settings, classifier_factory=factory)
    server = ControlServer(service)
    service.start()
    server.start()
    try:
        wait_for(lambda: service.status()["model"]["name"] == "efficientnet-lite0", 20, "fallback")
        env = {URL_ENV: weights_server, MD5_ENV: hashlib.md5(PAYLOAD).hexdigest()}
        got = dropsight("models", "get", "vgg16", env=env)
        assert got.returncode == 0, got.stderr
        assert "switches when ready" in got.stdout
        wait_for(lambda: service.status()["model"]["name"] == "vgg16", 20, "the switch")
        make_photo(folder / "after.jpg")
        sidecar = folder / "after.jpg.json"
        wait_for(sidecar.exists, 20, "a photo labelled after the switch")
        assert json.loads(sidecar.read_text("utf-8"))["model"]["name"] == "vgg16"
    finally:
        server.stop()
        service.join()


def test_the_service_downloads_on_request_and_switches(
    weights_server: str, app_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tray's "Download VGG16": the service fetches, shows progress, then switches."""
    from dropsight.daemon.api.client import ServiceClient, ServiceError

    target = Path(os.environ["KERAS_HOME"]) / "models" / VGG16_WEIGHTS_FILE
    monkeypatch.setenv(MD5_ENV, hashlib.md5(PAYLOAD).hexdigest())
    monkeypatch.setenv(URL_ENV, "http://127.0.0.1:9/nothing-listens-here")

    factory = vgg16_once_weights_are_in(target)
    folder = tmp_path / "photos"
    folder.mkdir()
    service = Service(Settings(watch=WatchSettings(folders=(folder,))), classifier_factory=factory)
    server = ControlServer(service)
    service.start()
    server.start()
    try:
        wait_for(lambda: service.status()["model"].get("missing") is not None, 20, "missing")
        client = ServiceClient.connect()
        # No network: the attempt fails visibly and nothing is switched.
        client.get_model("vgg16")
        wait_for(
            lambda: fetch_stage(service) == "failed",
            20,
            "the failed download",
        )
        fetch = service.status()["model"]["fetch"]
        assert fetch is not None and str(fetch["error"]).startswith("no network")
        with pytest.raises(ServiceError, match="unknown model"):
            client.get_model("resnet")
        # Online: progress, then the switch.
        monkeypatch.setenv(URL_ENV, weights_server)
        client.get_model("vgg16")
        wait_for(lambda: service.status()["model"]["name"] == "vgg16", 30, "the switch")
        wait_for(
            lambda: fetch_stage(service) == "ready",
            10,
            "the fetch marked ready",
        )
        fetch = service.status()["model"]["fetch"]
        assert fetch is not None and fetch["done_bytes"] == len(PAYLOAD)
        assert target.read_bytes() == PAYLOAD
        assert service.status()["model"].get("missing") is None
    finally:
        server.stop()
        service.join()


def fetch_stage(service: Service) -> str | None:
    fetch = service.status()["model"].get("fetch")
    return fetch["stage"] if fetch else None


def test_import_refuses_a_file_of_the_wrong_size_before_copying(
    app_home: Path, tmp_path: Path
) -> None:
    """Issue 20 item 13: a 3 GB file was copied whole before its known size was checked."""
    huge = tmp_path / "huge.h5"
    with huge.open("wb") as f:  # sparse: 3 GB that cost no disk
        f.truncate(3 << 30)
    refused = dropsight("models", "import", huge)
    assert refused.returncode == 1
    assert "3221225472 bytes, expected 553467096" in refused.stderr
    assert not (Path(os.environ["KERAS_HOME"]) / "models").exists()
