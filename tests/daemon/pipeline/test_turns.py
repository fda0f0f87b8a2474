"""Decoding and inference take turns for heavy models; the pipeline labels everything once."""

from __future__ import annotations

import threading
from pathlib import Path

from dropsight.config.settings import Settings, WatchSettings
from dropsight.daemon.pipeline.turns import Turns
from dropsight.daemon.runtime import budget
from dropsight.daemon.runtime.classifier import ModelInfo
from dropsight.daemon.service.service import Service
from tests.daemon.helpers import (
    FakeClassifier,
    idle_after_scan,
    load_valid,
    make_photo,
    sidecars,
    wait_for,
)


def test_inference_waits_for_running_decodes_and_blocks_new_ones() -> None:
    turns = Turns(enabled=True)
    halt = threading.Event()
    log: list[str] = []
    decoding, decoded = threading.Event(), threading.Event()
    inferring, inferred = threading.Event(), threading.Event()

    def decoder() -> None:
        with turns.decoding(halt) as ok:
            assert ok
            decoding.set()
            decoded.wait(5)  # a decode under way when inference asks for its turn
            log.append("decode done")

    def inference() -> None:
        with turns.inferring():
            log.append("inference")
            inferring.set()
            inferred.wait(5)

    def late() -> None:
        with turns.decoding(halt):
            log.append("late decode")

    threads = [threading.Thread(target=f) for f in (decoder, inference, late)]
    threads[0].start()
    assert decoding.wait(5)
    threads[1].start()
    wait_for(lambda: turns.state() == (True, 1, 0), 5, "inference waiting for the decode")
    assert log == [], "inference began during a decode"
    threads[2].start()
    wait_for(lambda: turns.state() == (True, 1, 1), 5, "a new decode waiting for inference")
    decoded.set()
    assert inferring.wait(5)
    assert turns.state() == (True, 0, 1), "the late decoder still waits"
    assert log == ["decode done", "inference"], "a decode began during inference"
    inferred.set()
    for t in threads:
        t.join(5)
    assert log == ["decode done", "inference", "late decode"]
    assert turns.state() == (False, 0, 0)


def test_a_halt_releases_a_waiting_decoder() -> None:
    turns = Turns(enabled=True)
    halt = threading.Event()
    result: list[bool] = []
    with turns.inferring():
        t = threading.Thread(target=lambda: result.append(turns.decoding(halt).__enter__()))
        t.start()
        halt.set()
        t.join(5)
    assert result == [False]


def test_heavy_model_budget_takes_turns() -> None:
    heavy = budget.plan(15.5, 16, cpus=2)
    assert (heavy.lanes, heavy.threads_per_lane, heavy.batch_size) == (1, 2, 16)
    assert heavy.take_turns and heavy.decoders == 2 and heavy.fill_wait_s > 0
    light = budget.plan(0.41, 16, cpus=2)
    assert (light.lanes, light.threads_per_lane, light.batch_size) == (2, 1, 1)
    assert not light.take_turns


def test_heavy_model_service_labels_a_burst_once(tmp_path: Path) -> None:
    fake = FakeClassifier(delay_s=0.005)
    fake.info = ModelInfo(name="heavy", fingerprint="e" * 64, input_size=(224, 224), gflops=15.5)
    service = Service(
        Settings(watch=WatchSettings(folders=(tmp_path,), settle_time_s=0.3, rescan_interval_s=0)),
        classifier_factory=lambda _s: fake,
    )
    service.start()
    try:
        idle_after_scan(service)
        plan = budget.plan(15.5, 16)
        assert service.status().get("pipeline") == {
            "decoders": plan.decoders,
            "lanes": 1,
            "threads_per_lane": plan.threads_per_lane,
            "batch_size": 16,
        }
        for i in range(60):
            make_photo(tmp_path / f"{i}.jpg", seed=i, size=(64, 48))
        wait_for(lambda: len(sidecars(tmp_path)) == 60, 60, "60 sidecars")
        idle_after_scan(service)  # every event handled: nothing left to label twice
        assert fake.images == 60
        assert fake.calls < 60, "never batched"
        assert all(load_valid(p)["status"] == "ok" for p in sidecars(tmp_path))
    finally:
        service.join()
