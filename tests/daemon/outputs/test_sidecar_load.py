"""Issue 20 items 1-3: a file at a sidecar's place is input, checked before it is trusted."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from dropsight.daemon.api.wire import WireError, read_sidecar
from dropsight.daemon.outputs import sidecar
from tests.daemon.outputs.test_sidecar import FACTS, MODEL

T = TypeVar("T")
WRONG_SHAPE = b'{"schema_version": 1, "model": "made by another tool"}'


def ours(path: Path) -> Path:
    sidecar.write(path, sidecar.build(path.name.removesuffix(".json"), FACTS, MODEL, []))
    return path


def in_time(fn: Callable[[], T], timeout_s: float = 5.0) -> T:
    """Call `fn` on a thread: a reader that blocks fails the test instead of hanging it."""
    out: list[T] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(timeout_s)
    if errors:
        raise errors[0]
    assert out, f"the reader blocked for more than {timeout_s} s"
    return out[0]


def test_ours_and_absent(tmp_path: Path) -> None:
    loaded = sidecar.load(ours(tmp_path / "a.jpg.json"))
    assert loaded.kind == "ours" and loaded.record is not None
    assert sidecar.load(tmp_path / "none.jpg.json") == sidecar.ABSENT
    assert sidecar.load(tmp_path / "no-folder" / "x.jpg.json") == sidecar.ABSENT


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (WRONG_SHAPE, "not a Dropsight sidecar"),
        (b"", "not UTF-8 JSON"),
        (b"[1, 2]", "not a Dropsight sidecar"),
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"[" * 100_000, "not UTF-8 JSON"),  # deep nesting is not a crash either
    ],
)
def test_wrong_shape_is_odd_with_a_reason(tmp_path: Path, content: bytes, why: str) -> None:
    path = tmp_path / "aaa.jpg.json"
    path.write_bytes(content)
    loaded = sidecar.load(path)
    assert loaded.kind == "odd" and loaded.record is None
    assert why in loaded.reason
    assert sidecar.read(path) is None


def test_another_programs_valid_looking_record_is_odd(tmp_path: Path) -> None:
    path = ours(tmp_path / "a.jpg.json")
    record = json.loads(path.read_text("utf-8"))
    record["generator"]["name"] = "SomeOtherTagger"
    path.write_text(json.dumps(record), "utf-8")
    loaded = sidecar.load(path)
    assert loaded.kind == "odd" and "SomeOtherTagger" in loaded.reason


def test_a_fifo_is_never_opened_blocking(tmp_path: Path) -> None:
    path = tmp_path / "aaa.jpg.json"
    os.mkfifo(path)
    loaded = in_time(lambda: sidecar.load(path))
    assert loaded.kind == "odd" and loaded.reason == "not a regular file"
    assert in_time(lambda: sidecar.scan_state(tmp_path, path, "f" * 64)) == "odd"


def test_a_huge_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg.json"
    with path.open("wb") as f:  # sparse: 160 MB that cost no disk
        f.write(b'{"schema_version": 1, "x": "')
        f.truncate(160 << 20)
    started = time.monotonic()
    loaded = sidecar.load(path)
    assert loaded.kind == "odd" and "larger than 1 MB" in loaded.reason
    assert time.monotonic() - started < 1.0  # refused by its size, not read


def test_a_symlink_is_odd(tmp_path: Path) -> None:
    target = ours(tmp_path / "real.jpg.json")
    link = tmp_path / "a.jpg.json"
    link.symlink_to(target)
    assert sidecar.load(link).kind == "odd"


def test_the_viewer_reader_is_safe_too(tmp_path: Path) -> None:
    path = tmp_path / "aaa.jpg.json"
    os.mkfifo(path)
    with pytest.raises(WireError, match="not a regular file"):
        in_time(lambda: read_sidecar(path))
    assert read_sidecar(ours(tmp_path / "b.jpg.json"))["schema_version"] == 1


def test_ours_only_for_our_valid_records(tmp_path: Path) -> None:
    photo = tmp_path / "aaa.jpg"
    photo.write_bytes(b"x")
    path = tmp_path / "aaa.jpg.json"
    path.write_bytes(WRONG_SHAPE)
    assert not sidecar.ours(path, photo)
    ours(path)
    assert sidecar.ours(path, photo)
