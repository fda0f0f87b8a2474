"""Getting a model's weights inside the service, when the user asks (tray: "Download VGG16")."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from dropsight.daemon.contracts import ModelFetchStatus
from dropsight.daemon.models.download import DownloadError, Progress, fetch
from dropsight.daemon.models.sources import Source, source_for

log = logging.getLogger(__name__)


class ModelFetcher:
    """One download at a time, in a thread of its own; its progress goes into the status.

    When the file is in and verified, `on_fetched` asks the engine to load the model again;
    the engine converts it and switches between batches.
    """

    def __init__(self, on_fetched: Callable[[], None]) -> None:
        self._on_fetched = on_fetched
        self._lock = threading.Lock()
        self._status: ModelFetchStatus | None = None
        self._started = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, name: str) -> None:
        """Start getting `name`'s weights; ValueError when there is nothing to download."""
        source = source_for(name)  # KeyError for unknown names
        if source is None:
            raise ValueError(f"{name} needs no download: its weights ship with Dropsight")
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return  # already on its way
            self._started = time.monotonic()
            self._status = self._new_status(name, "downloading", source.size or 0)
            self._thread = threading.Thread(
                target=self._run, args=(source,), name="model-fetch", daemon=True
            )
            self._thread.start()

    def status(self, running: str | None) -> ModelFetchStatus | None:
        """The fetch's progress; "ready" once the engine runs the fetched model."""
        with self._lock:
            if self._status is None:
                return None
            current = dict(self._status)
            if self._status["stage"] in ("downloading", "verifying", "converting"):
                current["elapsed_s"] = round(time.monotonic() - self._started, 1)
        status: ModelFetchStatus = current  # type: ignore[assignment]
        if status["stage"] == "converting" and running == status["name"]:
            status["stage"] = "ready"
            with self._lock:
                self._status = status
        return status

    def failed(self, message: str) -> None:
        """The engine could not load the fetched model (conversion failed)."""
        with self._lock:
            if self._status is not None and self._status["stage"] == "converting":
                self._status["stage"] = "failed"
                self._status["error"] = message

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop a download in progress (its partial file stays, so a later one resumes)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self, source: Source) -> None:
        rate = _Rate()

        def progress(p: Progress) -> None:
            with self._lock:
                if self._status is None:
                    return
                total = p.total or self._status["total_bytes"]
                bps = rate.update(p.done)
                left = (total - p.done) / bps if total and bps > 0 else None
                s = self._status
                s["done_bytes"], s["total_bytes"], s["rate_bps"] = p.done, total, float(round(bps))
                s["eta_s"] = round(left, 1) if left is not None else None
                s["stage"] = "verifying" if total and p.done >= total else "downloading"

        try:
            log.info("downloading %s weights from %s to %s", source.name, source.url, source.target)
            fetch(
                source.url,
                source.target,
                md5=source.md5,
                size=source.size,
                on_progress=progress,
                stop=self._stop,
            )
        except DownloadError as exc:
            log.error("could not get %s: %s", source.name, exc)
            with self._lock:
                if self._status is not None:
                    self._status["stage"], self._status["error"] = "failed", str(exc)
            return
        log.info("%s weights are in (%s); loading the model", source.name, source.target)
        with self._lock:
            if self._status is not None:
                self._status["stage"] = "converting"
        self._on_fetched()

    @staticmethod
    def _new_status(name: str, stage: str, total: int) -> ModelFetchStatus:
        return {
            "name": name,
            "stage": stage,  # type: ignore[typeddict-item]
            "done_bytes": 0,
            "total_bytes": total,
            "rate_bps": 0.0,
            "eta_s": None,
            "elapsed_s": 0.0,
            "error": None,
        }


class _Rate:
    """Bytes per second over the last few seconds (a smooth rate for the ETA)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self._window_s = window_s
        self._points: list[tuple[float, int]] = []

    def update(self, done: int) -> float:
        now = time.monotonic()
        self._points.append((now, done))
        while len(self._points) > 2 and now - self._points[0][0] > self._window_s:
            self._points.pop(0)
        (t0, d0), (t1, d1) = self._points[0], self._points[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0
