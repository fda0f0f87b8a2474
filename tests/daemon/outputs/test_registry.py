"""The one output registry: a new output is one file and one line, and closing is bounded."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dropsight.config.settings import HookSettings, Settings, WatchSettings
from dropsight.daemon.outputs import registry, sidecar
from dropsight.daemon.outputs.hooks import HookSink
from dropsight.daemon.outputs.protocol import Written
from dropsight.daemon.outputs.registry import Entry, Outputs
from dropsight.daemon.service.service import STOP_TIMEOUT_S, Service
from tests.daemon.helpers import FakeClassifier, make_photo, wait_for
from tests.daemon.outputs.toy_output import ToyOutput, toy_path


def test_a_toy_output_hears_write_forget_reconfigure_and_close(
    watched: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registered with one line, a real service on a real folder drives its whole life."""
    monkeypatch.setattr(registry, "OUTPUTS", [*registry.OUTPUTS, Entry(ToyOutput)])
    settings = Settings(
        watch=WatchSettings(folders=(watched,), settle_time_s=0.3, rescan_interval_s=0)
    )
    changed = replace(settings, hooks=HookSettings(timeout_s=5.0))
    service = Service(
        settings, classifier_factory=lambda _s: FakeClassifier(), reload_settings=lambda: changed
    )
    toy = service.outputs.get(ToyOutput)
    service.start()
    try:
        photo = make_photo(watched / "cat.jpg", seed=1)
        wait_for(toy_path(photo).exists, 20, "the toy's file written")
        label = sidecar.read(watched / "cat.jpg.json")
        assert label is not None
        assert toy_path(photo).read_text("utf-8").strip() == label["predictions"][0]["label"]
        photo.unlink()
        wait_for(lambda: not toy_path(photo).exists(), 20, "the toy's file forgotten")
        wait_for(lambda: not (watched / "cat.jpg.json").exists(), 20, "the sidecar forgotten")
        service.reload()
        assert toy.settings == [settings, changed]
    finally:
        service.join()
    calls = [call for call, _thread in toy.calls]
    assert calls[-1] == "close" and calls.count("close") == 1
    assert {"accept", "forget"} <= set(calls)
    # Everything but configure ran on the toy's own thread, never the writer's.
    assert {thread for call, thread in toy.calls if call != "configure"} == {"output-toy"}


def _record(photo: Path) -> Written:
    from dropsight.daemon.runtime.classifier import ModelInfo

    info = ModelInfo(name="fake", fingerprint="f" * 64, input_size=(224, 224))
    record = sidecar.build(photo.name, None, info, [])
    return Written(photo, photo.parent, sidecar.sidecar_path(photo), record)


def test_closing_never_waits_for_a_backlog_of_slow_hooks(tmp_path: Path) -> None:
    """1,000 results queued for a hook that takes 30 s each: closing ends the running one at
    the deadline and drops the rest, instead of holding shutdown for hours."""
    marks = tmp_path / "marks"
    marks.mkdir()
    script = (
        "import os, sys, pathlib, time;"
        f"m = pathlib.Path({str(marks)!r});"
        "(m / ('started-' + pathlib.Path(sys.argv[1]).name)).write_text(str(os.getpid()));"
        "time.sleep(30);"
        "(m / ('finished-' + pathlib.Path(sys.argv[1]).name)).write_text('')"
    )
    (hooks,) = [e for e in registry.OUTPUTS if e.make is HookSink]
    outputs = Outputs("service", lambda _p, _m: None, entries=[hooks])
    outputs.configure(
        Settings(hooks=HookSettings(on_result=(sys.executable, "-c", script, "{photo}")))
    )
    for i in range(1000):
        outputs.accept([_record(tmp_path / f"{i:04d}.jpg")])
    wait_for(lambda: any(marks.glob("started-*")), 20, "the first hook running")
    started = time.monotonic()
    outputs.close(STOP_TIMEOUT_S)
    print(f"\nclosed in {time.monotonic() - started:.1f} s (deadline {STOP_TIMEOUT_S:g} s)")
    (first,) = marks.glob("started-*")  # no other hook ever started
    pid = int(first.read_text())
    wait_for(lambda: not _alive(pid), 10, "the running hook stopped")
    assert not list(marks.glob("finished-*")), "the running hook was cut at the deadline"
    assert [m.name for m in marks.iterdir()] == [first.name], "the backlog was dropped"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie counts as ended: subprocess reaps it when it returns.
    try:
        return Path(f"/proc/{pid}/stat").read_text("ascii").split()[2] != "Z"
    except OSError:
        return False


class Gated:
    """An output that blocks in its first call until let go (a stuck SQLite, a slow share)."""

    name = "gated"

    def __init__(self, _ctx: object) -> None:
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.calls: list[object] = []

    def configure(self, settings: Settings) -> None:
        """Nothing to configure."""

    def accept(self, batch: Sequence[Written]) -> None:
        self._call([w.photo.name for w in batch])

    def forget(self, photo: Path, root: Path) -> None:
        self._call(("forget", photo.name))

    def walk_started(self, root: Path) -> None:
        self._call("started")

    def walked(self, found: Sequence[tuple[Path, Path, Path]]) -> None:
        self._call(len(found))

    def walk_finished(self, root: Path, complete: bool) -> None:
        self._call(("finished", complete))

    def close(self) -> None:
        self._call("close")

    def _call(self, what: object) -> None:
        self.entered.set()
        self.gate.wait(20)
        self.calls.append(what)


def _gated(**entry: Any) -> tuple[Outputs, Gated]:
    outputs = Outputs("service", lambda _p, _m: None, entries=[Entry(Gated, **entry)])
    return outputs, outputs.get(Gated)


@pytest.mark.parametrize("when_full", ["wait", "skip"])
def test_a_stuck_output_holds_results_back_or_skips_them(tmp_path: Path, when_full: str) -> None:
    """Its line decides: the writer waits for room (nothing lost), or results are skipped."""
    outputs, gated = _gated(backlog=2, when_full=when_full)
    outputs.accept([_record(tmp_path / "0.jpg")])
    wait_for(gated.entered.is_set, 10, "the output busy with the first result")

    def write_more() -> None:
        for i in range(1, 5):
            outputs.accept([_record(tmp_path / f"{i}.jpg")])

    writer = threading.Thread(target=write_more)
    writer.start()
    if when_full == "skip":
        writer.join(20)  # skipping never waits
        assert not writer.is_alive()
    gated.gate.set()
    writer.join(20)
    outputs.close(10)
    expected = 5 if when_full == "wait" else 3  # the first, then a backlog of two
    assert gated.calls == [[f"{i}.jpg"] for i in range(expected)] + ["close"]


def test_a_walk_an_output_could_not_keep_up_with_counts_as_incomplete(tmp_path: Path) -> None:
    """The index must not forget photos it never saw because their chunk was skipped."""
    outputs, gated = _gated(walk_backlog=2)
    root = tmp_path
    found = [(root / f"{i}.jpg", root, root / f"{i}.jpg.json") for i in range(3)]
    outputs.walk_started(root)
    wait_for(gated.entered.is_set, 10, "the output busy with the walk's start")
    outputs.walked(found)  # fits: nothing else waits
    outputs.walked(found[:1])  # does not: skipped
    outputs.walk_finished(root, True)
    gated.gate.set()
    wait_for(lambda: len(gated.calls) == 3, 10, "the walk's end reaching the output")
    outputs.close(10)
    assert gated.calls == ["started", 3, ("finished", False), "close"]
