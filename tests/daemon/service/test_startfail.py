"""The last failed start, as the tray and viewer read it."""

from __future__ import annotations

import time

from dropsight.daemon.service import startfail


def test_record_read_clear() -> None:
    assert startfail.read() is None
    before = time.time()
    startfail.record("config error: cfg.toml: model.top_k = 0 is invalid; expected 1 to 1000")
    failure = startfail.read(since=before)
    assert failure is not None and failure.message.startswith("config error: cfg.toml")
    assert startfail.read(since=time.time() + 60) is None  # older than asked for
    startfail.clear()
    assert startfail.read() is None
    startfail.clear()  # nothing to clear is fine


def test_a_damaged_file_reads_as_none() -> None:
    startfail.record("x")
    path = next(p for p in startfail.paths.state_dir().iterdir() if p.name == startfail.FILE_NAME)
    path.write_text("{not json", "utf-8")
    assert startfail.read() is None
