"""A fake service for tray and viewer tests: a Controller with fixed answers.

Run as a script (`python -m tests.tray.fakes`) it serves the control API like
`dropsight service` would, until SIGTERM or the API's stop.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Literal, cast

from dropsight.daemon import __version__
from dropsight.daemon.contracts import RecentResult, ServiceState, SidecarRecord, Status
from dropsight.daemon.core import paths
from dropsight.daemon.outputs.events import EventHub, Listener

TOP5 = [
    ("n02124075", 285, "Egyptian_cat", 0.6123),
    ("n02123045", 281, "tabby", 0.2231),
    ("n02123159", 282, "tiger_cat", 0.1187),
    ("n02127052", 287, "lynx", 0.0208),
    ("n03958227", 728, "plastic_bag", 0.0034),
]


def sidecar_for(path: Path, status: Literal["ok", "error"] = "ok") -> SidecarRecord:
    """A sidecar-shaped answer with the fixed top-5."""
    return {
        "schema_version": 1,
        "status": status,
        "image": {"path": path.name, "sha256": "0" * 64, "bytes": 1, "width": 1, "height": 1},
        "model": {
            "name": "vgg16",
            "fingerprint": "f" * 64,
            "input_size": [224, 224],
            "runtime": "litert",
        },
        "predictions": [
            {"rank": i + 1, "class_index": idx, "wnid": wnid, "label": label, "score": score}
            for i, (wnid, idx, label, score) in enumerate(TOP5)
        ]
        if status == "ok"
        else [],
        "error": None if status == "ok" else {"type": "UnidentifiedImageError", "message": "bad"},
        "processed_at": "2026-11-24T05:00:00Z",
        "generator": {"name": "dropsight", "version": __version__},
    }


def fake_status(**fields: Any) -> Status:
    """A complete status as the service sends it; `fields` replace top-level keys."""
    status: Status = {
        "state": "idle",
        "done": 0,
        "failed": 0,
        "skipped": 0,
        "queued": 0,
        "progress": {"done": 0, "total": 0},
        "current": None,
        "errors": [],
        "recent": [],
        "model": {
            "name": "vgg16",
            "requested": "vgg16",
            "fallback": False,
            "fallback_reason": None,
            "runtime": "litert",
            "fingerprint": "f" * 64,
            "error": None,
        },
        "folders": [],
        "version": __version__,
        "pid": os.getpid(),
        "config_path": str(paths.config_file()),
        "log_path": str(paths.log_dir() / "dropsight.log"),
    }
    return cast(Status, {**status, **fields})


class RecordedCommands:
    """The Controller's newer commands, recorded in `calls` (shared by the test fakes)."""

    calls: list[str]
    events: EventHub

    def relabel(self) -> None:
        self.calls.append("relabel")

    def reload(self) -> None:
        self.calls.append("reload")

    def reload_model(self) -> None:
        self.calls.append("reload_model")

    def listen(self) -> Listener:
        return self.events.listen()

    def get_model(self, name: str) -> None:
        if name != "vgg16":
            raise KeyError(f"unknown model {name!r}")
        self.calls.append(f"get_model {name}")


class FakeController(RecordedCommands):
    """Status with settable fields; classify answers the fixed top-5 for any existing file."""

    def __init__(self, folder: Path | None = None) -> None:
        self.lock = threading.Lock()
        self.state: ServiceState = "working"
        self.done = 12
        self.queued = 327
        self.failed = 1
        self.fallback = False
        self.folder = folder
        self.recent: list[RecentResult] = []
        self.calls: list[str] = []
        self.events = EventHub()
        self.stopped = threading.Event()
        self.model_extra: dict[str, Any] = {}  # e.g. "missing" and "fetch" (first run)

    def status(self) -> Status:
        with self.lock:
            return {
                "state": self.state,
                "done": self.done,
                "queued": self.queued,
                "failed": self.failed,
                "skipped": 0,
                "progress": {
                    "done": self.done + self.failed,
                    "total": self.done + self.failed + self.queued,
                },
                "current": None,
                "model": {
                    "name": "efficientnet-lite0" if self.fallback else "vgg16",
                    "requested": "vgg16",
                    "fallback": self.fallback,
                    "fallback_reason": "VGG16 weights not found" if self.fallback else None,
                    "runtime": "litert",
                    "fingerprint": "f" * 64,
                    "error": None,
                    **self.model_extra,  # type: ignore[typeddict-item]
                },
                "folders": [
                    {"path": str(self.folder), "healthy": True, "error": None, "observer": "x"}
                ]
                if self.folder
                else [],
                "errors": [],
                "recent": list(self.recent),
                "version": __version__,
                "pid": os.getpid(),
                "config_path": str(paths.config_file()),
                "log_path": str(paths.log_dir() / "dropsight.log"),
            }

    def add_recent(self, image: Path, sidecar: Path, label: str, score: float) -> None:
        """Record a finished photo the way the service would."""
        with self.lock:
            self.recent.insert(
                0,
                {
                    "image": str(image),
                    "sidecar": str(sidecar),
                    "status": "ok",
                    "label": label,
                    "score": score,
                    "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                },
            )

    def pause(self) -> None:
        with self.lock:
            self.calls.append("pause")
            self.state = "paused"

    def resume(self) -> None:
        with self.lock:
            self.calls.append("resume")
            self.state = "working"

    def rescan(self) -> None:
        with self.lock:
            self.calls.append("rescan")

    def classify(self, path: Path) -> SidecarRecord:
        if not path.exists():
            raise FileNotFoundError(f"no such file: {path}")
        return sidecar_for(path)

    def stop(self) -> None:
        self.calls.append("stop")
        self.stopped.set()


def main() -> int:
    """Serve a FakeController until stopped (the stand-in for `dropsight service`)."""
    from dropsight.daemon.api.server import ControlServer

    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    controller = FakeController(folder)
    # Photos already in the folder count as finished, with sidecars, like a real service's.
    for image in sorted(folder.glob("*.jpg")) if folder else []:
        sidecar = image.with_name(image.name + ".json")
        sidecar.write_text(json.dumps(sidecar_for(image)), encoding="utf-8")
        controller.add_recent(image, sidecar, TOP5[0][2], TOP5[0][3])
    signal.signal(signal.SIGTERM, lambda *_: controller.stopped.set())
    server = ControlServer(controller)
    server.start()
    try:
        controller.stopped.wait()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
