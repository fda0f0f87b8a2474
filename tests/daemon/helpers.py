"""Test helpers for the service: a fast fake classifier, waiting, sidecar checks."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from PIL import Image

from dropsight.daemon.core.atomic import TEMP_SUFFIX
from dropsight.daemon.outputs.sidecar import schema
from dropsight.daemon.runtime.classifier import Description, ModelInfo
from dropsight.daemon.service.service import Service

FAKE_FINGERPRINT = "f" * 64


class FakeClassifier:
    """Instant classifier for tests about finding work, ordering and faults (not accuracy)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.info = ModelInfo(name="fake", fingerprint=FAKE_FINGERPRINT, input_size=(224, 224))
        self.delay_s = delay_s
        self.calls = 0
        self.images = 0
        self.lock = threading.Lock()

    def describe(self) -> Description:
        """Not a real runtime: described as LiteRT's default."""
        return Description("litert", "fp32")

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Class = mean brightness bucket, so different images get different labels."""
        with self.lock:
            self.calls += 1
            self.images += len(batch)
        if self.delay_s:
            time.sleep(self.delay_s * len(batch))
        probs = np.full((len(batch), 1000), 1e-4, np.float32)
        for i, img in enumerate(batch):
            probs[i, int(img.mean()) % 1000] = 0.9
        return probs / probs.sum(axis=1, keepdims=True)


def wait_for(cond: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition") -> None:
    """Poll `cond` until true or fail after `timeout_s`."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def idle_after_scan(service: Service, generation: int = 1, timeout_s: float = 20.0) -> None:
    """Wait until full scan `generation` (1: the catch-up scan) ran and all it found is done."""
    assert service.wait_idle_after_scan(generation, timeout_s), (
        f"not idle after scan {generation} within {timeout_s} s (at scan {service.scan_generation})"
    )


def rescanned(service: Service, timeout_s: float = 20.0) -> None:
    """Ask for a scan of every folder; wait until it ran and everything it found is done."""
    idle_after_scan(service, service.scanner.request(), timeout_s)


def heard(service: Service, folder: Path, marker: str = "marker.jpg", seed: int = 99) -> Path:
    """Prove that every event of `folder` so far was handled: drop a photo, wait for its
    sidecar (a folder's events arrive in order), then for whatever the earlier ones started.

    Returns the marker photo (labelled once: count it).
    """
    photo = make_photo(folder / marker, seed=seed, size=(64, 48))
    wait_for(photo.with_name(photo.name + ".json").exists, 20, f"the sidecar of {marker}")
    idle_after_scan(service)
    return photo


def make_photo(path: Path, seed: int = 0, size: tuple[int, int] = (320, 240)) -> Path:
    """Write a small, distinct JPEG."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, quality=85)
    return path


def sidecars(root: Path) -> list[Path]:
    """Every sidecar under `root`."""
    return sorted(root.rglob("*.json"))


def temp_files(root: Path) -> list[Path]:
    """Every temp file of ours under `root`."""
    return sorted(root.rglob("*" + TEMP_SUFFIX))


def load_valid(path: Path) -> dict[str, Any]:
    """Read a sidecar and check it against the public schema."""
    record: dict[str, Any] = json.loads(path.read_text("utf-8"))
    jsonschema.Draft202012Validator(
        schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(record)
    return record


def dropsight(
    *args: str | Path, env: dict[str, str] | None = None, timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the `dropsight` command line as a person would (no stdin), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "dropsight.daemon", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        timeout=timeout_s,
    )


class SlowClients:
    """Connections that send one byte of a request head every `every_s`, never finishing it.

    Runs in a thread; connections the server closes are opened again (as an attacker would).
    `rounds` counts the passes over all connections.
    """

    def __init__(self, port: int, count: int, every_s: float) -> None:
        self.port = port
        self.count = count
        self.every_s = every_s
        self.rounds = 0
        self._socks: list[socket.socket | None] = [None] * count
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-clients")

    def __enter__(self) -> SlowClients:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for sock in self._socks:
            if sock is not None:
                sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            for i in range(self.count):
                self._socks[i] = self._nudge(self._socks[i])
            self.rounds += 1
            self._stop.wait(self.every_s)

    def _nudge(self, sock: socket.socket | None) -> socket.socket | None:
        if sock is not None:
            try:
                sock.send(b"G")
                return sock
            except BlockingIOError:
                return sock  # still connecting, or the server reads nothing
            except OSError:
                sock.close()  # closed by the server: come back
        fresh = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        fresh.setblocking(False)
        fresh.connect_ex(("127.0.0.1", self.port))  # EINPROGRESS: not waiting for accept
        return fresh


@contextlib.contextmanager
def tmpfs_over(folder: Path, size: str = "16m") -> Iterator[None]:
    """A real tmpfs mounted over `folder` for the block (root only; skips when it cannot)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "dropsight-test", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield
    finally:
        if subprocess.run(["umount", str(folder)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=False)  # never leave it behind


def fill(folder: Path) -> Path:
    """Fill the file system under `folder` up; returns the filler file."""
    filler = folder / "filler.bin"
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler
