"""Fixtures the service tests share: a watched folder, and in-process services always joined."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dropsight.config.settings import Settings, WatchSettings
from dropsight.daemon.service.service import Service
from tests.daemon.helpers import FakeClassifier, idle_after_scan, wait_for


@pytest.fixture
def watched(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    return folder


@pytest.fixture
def run() -> Iterator[Callable[..., Service]]:
    """Start a Service on one folder (FakeClassifier, no periodic rescans), idle after its
    catch-up scan; joined after."""
    started: list[Service] = []

    def start(folder: Path, fake: FakeClassifier | None = None, **watch: object) -> Service:
        options: dict[str, object] = {"settle_time_s": 0.3, "rescan_interval_s": 0, **watch}
        settings = Settings(watch=WatchSettings(folders=(folder,), **options))  # type: ignore[arg-type]
        classifier = fake or FakeClassifier()
        service = Service(settings, classifier_factory=lambda _s: classifier)
        service.start()
        started.append(service)
        idle_after_scan(service)  # the catch-up scan ran, and labelled what it found
        wait_for(lambda: service.status()["state"] == "idle", 20, "service idle")
        return service

    yield start
    for service in started:
        service.join()
