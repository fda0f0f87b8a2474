"""The background service: watch folders, classify complete photos, write sidecars once."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropsight.config.settings import Settings
from dropsight.daemon import __version__, logs, paths, sidecar
from dropsight.daemon.activity import Activity
from dropsight.daemon.candidates import PhotoFilter, stale_temp_files
from dropsight.daemon.classifier import Classifier, load_classifier
from dropsight.daemon.imaging import ImageError, prepare_bytes, read_file
from dropsight.daemon.jobs import JobQueue
from dropsight.daemon.lock import AlreadyRunning, InstanceLock
from dropsight.daemon.pipeline import Outcome, records
from dropsight.daemon.watcher import FolderWatch, Settler

log = logging.getLogger(__name__)

BATCH_WAIT_S = 0.005  # how long a batch waits for one more decoded image
SUPERVISE_EVERY_S = 2.0  # folder health checks: vanished folders, dead observers
IDLE_POLL_S = 0.5  # worker wake-up when nothing is queued, to notice pause/stop
STOP_TIMEOUT_S = 8.0  # shutdown budget per thread (the issue allows 10 s in all)


@dataclass
class _Item:
    """One taken path on its way through decode, inference and writing."""

    path: Path
    root: Path | None = None
    sidecar: Path | None = None
    outcome: Outcome | None = None  # None: nothing to do (up to date, vanished, not ours)


class Service:
    """Owns the watchers, the queue, the worker and the status; implements the Controller."""

    def __init__(
        self,
        settings: Settings,
        *,
        classifier_factory: Callable[[Settings], Classifier] = load_classifier,
    ) -> None:
        self.settings = settings
        self.queue = JobQueue()
        self.filter = PhotoFilter.from_settings(settings.watch)
        self._factory = classifier_factory
        self._classifier: Classifier | None = None
        self._model_error: str | None = None
        self._stop = threading.Event()
        self._resumed = threading.Event()
        self._resumed.set()
        self._scan_request = threading.Event()
        self.activity = Activity()
        self.settler = Settler(self._on_complete, settings.watch.settle_time_s)
        self.watches = [
            FolderWatch(
                root,
                recursive=settings.watch.recursive,
                mode=settings.watch.observer,
                photo_filter=self.filter,
                settler=self.settler,
                on_rearmed=lambda _root: self._scan_request.set(),
            )
            for root in settings.watch.folders
        ]
        self._pool = ThreadPoolExecutor(
            settings.service.decode_threads, "decode", initializer=_yield_to_inference
        )
        self._threads = [
            threading.Thread(target=self._guard(self._work), name="worker", daemon=True),
            threading.Thread(target=self._guard(self._scan_loop), name="scanner", daemon=True),
            threading.Thread(target=self._guard(self._supervise), name="supervisor", daemon=True),
        ]

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start watching and working (the model loads in the background)."""
        self.settler.start()
        for w in self.watches:
            w.arm()
            if not w.health.healthy:
                log.warning("cannot watch %s: %s", w.root, w.health.error)
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        """Ask the service to stop; the one shutdown path for signals, tray and API."""
        if not self._stop.is_set():
            log.info("stopping")
        self._stop.set()
        self._resumed.set()
        self._scan_request.set()
        self.queue.close()

    @property
    def stopping(self) -> bool:
        """True once stop() was called."""
        return self._stop.is_set()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until stop() is called (or the timeout passes); True if stopping."""
        return self._stop.wait(timeout_s)

    def join(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Finish shutting down after stop(): threads, observers, decode pool."""
        self.stop()
        deadline = time.monotonic() + timeout_s
        for w in self.watches:
            w.disarm(timeout_s=1.0)
        self.settler.stop(timeout_s=1.0)
        for t in self._threads:
            if t.is_alive():
                t.join(max(0.1, deadline - time.monotonic()))
            if t.is_alive():
                log.error("thread %s did not stop in time", t.name)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        """Run a thread body; an unexpected exception is logged and stops the service."""

        def run() -> None:
            try:
                fn()
            except Exception:
                log.exception("%s thread failed; stopping", threading.current_thread().name)
                self.activity.error(None, f"internal error in {threading.current_thread().name}")
                self.stop()

        return run

    # --- controller API --------------------------------------------------------------------

    def pause(self) -> None:
        """Stop taking new work (what is in flight finishes)."""
        log.info("paused")
        self._resumed.clear()

    def resume(self) -> None:
        """Take work again."""
        log.info("resumed")
        self._resumed.set()

    def rescan(self) -> None:
        """Scan every watched folder for photos without an up-to-date sidecar."""
        self._scan_request.set()

    def classify(self, path: Path) -> dict[str, Any]:
        """Classify one file now and return its record (nothing is written)."""
        classifier = self._classifier
        if classifier is None:
            raise RuntimeError(self._model_error or "the model is still loading")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        m = self.settings.model
        try:
            data, facts = read_file(path)
            outcome = Outcome(
                path, prepared=prepare_bytes(data, facts, classifier.info.input_size, m.resize)
            )
        except ImageError as exc:
            outcome = Outcome(path, error=exc)
        return records(classifier, [outcome], m.top_k, m.min_score, str)[0]

    def status(self) -> dict[str, Any]:
        """A JSON-ready snapshot of what the service is doing."""
        pending = self.queue.pending() + self.queue.in_flight() + self.settler.pending_count()
        c = self._classifier
        if self._stop.is_set():
            state = "stopping"
        elif c is None:
            state = "error" if self._model_error else "starting"
        elif not self._resumed.is_set():
            state = "paused"
        else:
            state = "working" if pending else "idle"
        folders = []
        for w in self.watches:
            write_error = self.activity.write_error(w.root)
            folders.append(
                {
                    "path": str(w.root),
                    "healthy": w.health.healthy and write_error is None,
                    "error": w.health.error or write_error,
                    "observer": w.health.observer_kind,
                }
            )
        return {
            "state": state,
            **self.activity.snapshot(pending),
            "model": {
                "name": c.info.name if c else self.settings.model.name,
                "requested": self.settings.model.name,
                "fallback": bool(c and c.info.is_fallback),
                "fallback_reason": c.info.fallback_reason if c else None,
                "runtime": c.info.runtime if c else None,
                "fingerprint": c.info.fingerprint if c else None,
                "error": self._model_error,
            },
            "folders": folders,
            "version": __version__,
            "pid": os.getpid(),
            "config_path": str(self.settings.source or paths.config_file()),
            "log_path": str(logs.log_file()),
        }

    # --- finding work ----------------------------------------------------------------------

    def _root_for(self, path: Path) -> Path | None:
        best: Path | None = None
        for w in self.watches:
            if path.is_relative_to(w.root) and (
                best is None or len(w.root.parts) > len(best.parts)
            ):
                best = w.root
        return best

    def _sidecar_for(self, path: Path, root: Path) -> Path:
        out = self.settings.output
        return sidecar.sidecar_path(path, root, out.folder if out.mode == "folder" else None)

    def _on_complete(self, path: Path) -> None:
        self.queue.put(path, fresh=True)

    def _looks_done(self, path: Path, sc: Path, fingerprint: str) -> bool:
        """Cheap scan-time check (no hashing): a newer sidecar for this size and model."""
        try:
            st, st_sc = path.stat(), sc.stat()
        except OSError:
            return False
        if st_sc.st_mtime_ns < st.st_mtime_ns:
            return False
        rec = sidecar.read(sc)
        return bool(
            rec
            and (rec.get("model") or {}).get("fingerprint") == fingerprint
            and (rec.get("image") or {}).get("bytes") == st.st_size
        )

    def _recently_modified(self, path: Path) -> bool:
        try:
            age_s = time.time() - path.stat().st_mtime
        except OSError:
            return False
        return age_s < max(self.settings.watch.settle_time_s, 1.0)

    def _scan_loop(self) -> None:
        interval = self.settings.watch.rescan_interval_s or None
        first = True
        while not self._stop.is_set():
            if not first:
                self._scan_request.wait(interval)
            if self._stop.is_set():
                return
            classifier = self._classifier
            if classifier is None:  # the fingerprint decides what is done: wait for the model
                self._stop.wait(0.2)
                continue
            self._scan_request.clear()
            for w in self.watches:
                if self._stop.is_set():
                    return
                if w.root.is_dir():
                    self._scan(w.root, classifier.info.fingerprint, cleanup=first)
            first = False

    def _scan(self, root: Path, fingerprint: str, *, cleanup: bool) -> None:
        started, queued = time.monotonic(), 0
        if cleanup:  # only at start: no other writer exists then (we hold the instance lock)
            out = self.settings.output
            for folder in {root, out.folder or root}:
                for tmp in stale_temp_files(folder, self.settings.watch.recursive):
                    with contextlib.suppress(OSError):
                        tmp.unlink()
                        log.info("removed stale temp file %s", tmp)
        for path in self.filter.walk(root, self.settings.watch.recursive):
            if self._stop.is_set():
                return
            if self.settler.is_pending(path):
                continue  # being written: its events decide when it is complete
            if self._looks_done(path, self._sidecar_for(path, root), fingerprint):
                continue
            if self._recently_modified(path):
                self.settler.touch(path, wait_close=False)  # maybe still being written
            else:
                queued += self.queue.put(path, fresh=False)
        log.info("scanned %s in %.1f s: %d to do", root, time.monotonic() - started, queued)

    def _supervise(self) -> None:
        while not self._stop.wait(SUPERVISE_EVERY_S):
            for w in self.watches:
                try:
                    w.check()
                except Exception:
                    log.exception("health check of %s failed", w.root)

    # --- doing work ------------------------------------------------------------------------

    def _load_model(self) -> Classifier | None:
        try:
            classifier = self._factory(self.settings)
        except Exception as exc:
            self._model_error = f"no model could be loaded: {exc}"
            log.error("%s", self._model_error)
            self.activity.error(None, self._model_error)
            return None
        if classifier.info.is_fallback:
            self.activity.error(
                None,
                f"using fallback model {classifier.info.name}: {classifier.info.fallback_reason}",
            )
        log.info("model %s ready (%s)", classifier.info.name, classifier.info.runtime)
        return classifier

    def _work(self) -> None:
        classifier = self._load_model()
        if classifier is None:
            return
        self._classifier = classifier
        batch_size = self.settings.model.batch_size
        in_flight: deque[Future[_Item]] = deque()
        while not self._stop.is_set():
            if not self._resumed.is_set():  # paused: decoded items wait, nothing new is taken
                self._resumed.wait(IDLE_POLL_S)
                continue
            # Keep up to two batches decoding while the current one is classified.
            room = 2 * batch_size - len(in_flight)
            if room > 0:
                for path in self.queue.take(room, 0 if in_flight else IDLE_POLL_S):
                    in_flight.append(self._pool.submit(self._prepare, path, classifier))
            if not self._resumed.is_set():
                continue
            if not in_flight:
                self.activity.idle()
                continue
            batch = [in_flight.popleft().result()]
            deadline = time.monotonic() + BATCH_WAIT_S
            while in_flight and len(batch) < batch_size:
                nxt = in_flight[0]
                if not nxt.done():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    with contextlib.suppress(TimeoutError):
                        nxt.result(left)
                    if not nxt.done():
                        break
                batch.append(in_flight.popleft().result())
            self._finish(classifier, batch)
        for fut in in_flight:  # stopping: hand taken paths back (found again at next start)
            fut.cancel()

    def _prepare(self, path: Path, classifier: Classifier) -> _Item:
        """Runs in the decode pool: skip what is current, else decode (errors kept)."""
        item = _Item(path)
        try:
            root = item.root = self._root_for(path)
            if root is None or not path.is_file():
                return item  # not ours, or gone since the event
            item.sidecar = self._sidecar_for(path, root)
            try:
                data, facts = read_file(path)
            except ImageError as exc:
                item.outcome = Outcome(path, error=exc)
                return item
            if sidecar.is_current(
                sidecar.read(item.sidecar), facts.sha256, classifier.info.fingerprint
            ):
                self.activity.skipped_current()
                return item
            self.activity.started(path)
            try:
                prepared = prepare_bytes(
                    data, facts, classifier.info.input_size, self.settings.model.resize
                )
                item.outcome = Outcome(path, prepared=prepared, facts=facts)
            except ImageError as exc:
                item.outcome = Outcome(path, error=exc, facts=facts)
            return item
        except Exception as exc:  # never lose the path: record an error for it
            log.exception("preparing %s failed", path)
            item.outcome = Outcome(path, error=ImageError("internal", str(exc)))
            return item

    def _finish(self, classifier: Classifier, batch: list[_Item]) -> None:
        """Classify a batch and write its sidecars; every path is marked done."""
        todo = [i for i in batch if i.outcome is not None and i.sidecar is not None]
        try:
            if todo:
                m = self.settings.model
                display = (lambda p: p.name) if self.settings.output.mode == "beside" else str
                outcomes = [i.outcome for i in todo if i.outcome is not None]
                for item, record in zip(
                    todo, records(classifier, outcomes, m.top_k, m.min_score, display), strict=True
                ):
                    self._write(item, record)
        finally:
            for i in batch:
                self.queue.done(i.path)

    def _write(self, item: _Item, record: dict[str, Any]) -> None:
        assert item.sidecar is not None
        root = item.root
        try:
            sidecar.write(item.sidecar, record)
        except OSError as exc:
            msg = f"cannot write {item.sidecar}: {exc.strerror or exc}"
            log.error("%s", msg)
            self.activity.write_failed(item.path, root, msg)
            return
        self.activity.written(item.path, item.sidecar, root, record)
        if record["status"] != "ok":
            log.warning("%s: %s", item.path, record["error"]["message"])


DECODE_NICENESS = 5


def _yield_to_inference() -> None:
    """Lower this decode thread's priority (Linux: per thread) so inference keeps both cores.

    The inference runtime splits each layer across all cores; a decode running on one of
    them stalls the whole layer, so decoding should fill the gaps rather than compete.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), DECODE_NICENESS)


def run_service(settings: Settings) -> int:
    """Run the service in the foreground until SIGTERM/SIGINT or a stop request."""
    log_path = logs.setup(settings.service.log_level)
    if not settings.watch.folders:
        # A fresh install (tray, autostart, systemd unit) must do something useful at once.
        default = paths.default_watch_folder()
        try:
            default.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.error("cannot create the default folder %s: %s", default, exc)
            return 2
        log.info(
            "no folders configured: watching %s (set watch.folders in %s or pass --watch DIR)",
            default,
            settings.source or paths.config_file(),
        )
        settings = settings.with_overrides(watch=[default])
    lock = InstanceLock(paths.state_dir() / "service.lock")
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        log.error("%s", exc)
        return 1
    from dropsight.daemon.control import ControlServer

    service = Service(settings)
    control = ControlServer(service)
    previous = {sig: signal.signal(sig, lambda *_: service.stop()) for sig in _stop_signals()}
    try:
        log.info(
            "Dropsight %s watching %s (log: %s)",
            __version__,
            ", ".join(str(f) for f in settings.watch.folders),
            log_path,
        )
        service.start()
        control.start()
        while not service.wait(0.5):  # a timeout keeps the main thread responsive to signals
            pass
    finally:
        service.stop()
        control.stop()
        service.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        lock.release()
        log.info("stopped")
    return 0


def _stop_signals() -> list[signal.Signals]:
    sigs = [signal.SIGINT, signal.SIGTERM]
    if sys.platform == "win32":
        sigs.append(signal.SIGBREAK)
    return sigs
