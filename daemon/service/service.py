"""The background service: lifecycle and the controller the API, tray and tests drive."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from dropsight.config.settings import ConfigError, Settings
from dropsight.daemon.contracts import SidecarRecord, Status
from dropsight.daemon.core import paths
from dropsight.daemon.core.threads import Loop
from dropsight.daemon.outputs.events import EventHub, Listener
from dropsight.daemon.outputs.registry import Outputs
from dropsight.daemon.photos.filter import PhotoFilter
from dropsight.daemon.pipeline.engine import Engine
from dropsight.daemon.pipeline.jobs import Guard
from dropsight.daemon.pipeline.stages import Options, classify_file
from dropsight.daemon.pipeline.wiring import Stages
from dropsight.daemon.runtime.classifier import Classifier, open_classifier
from dropsight.daemon.service.configwatch import ConfigStamp, restart_needed
from dropsight.daemon.service.status import snapshot
from dropsight.daemon.watch.folders import WatchedFolders
from dropsight.daemon.watch.orphans import Orphans
from dropsight.daemon.watch.scanner import Scanner
from dropsight.daemon.watch.settler import Settler
from dropsight.daemon.watch.unreadable import Unreadable

log = logging.getLogger(__name__)

SUPERVISE_EVERY_S = 2.0  # health checks: vanished folders, dead observers and threads
STOP_TIMEOUT_S = 8.0  # shutdown budget for the whole service (the issue allows 10 s)


class Service:
    """Wires the stages together and implements the Controller (see daemon/api/server.py).

    observers -> settler -> queue -> decoders -> inference lanes -> writer -> outputs; scans
    feed the queue too. Every stage runs on `threads.Loop`s that share one stop Event.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        classifier_factory: Callable[[Settings], Classifier] = open_classifier,
        reload_settings: Callable[[], Settings] | None = None,
        guard: Guard | None = None,
    ) -> None:
        self.settings = settings
        self._reload_settings = reload_settings
        self._config_stamp = ConfigStamp(self._config_path())
        self._stop = threading.Event()
        self._resumed = threading.Event()
        self._resumed.set()
        self._relabel_requested = settings.model.relabel == "on-change"
        unreadable = Unreadable()  # photos to label again once a chmod makes them readable
        self.outputs = Outputs("service", self._error, request_walk=self.rescan, extra=[unreadable])
        self.events = self.outputs.get(EventHub)
        self.stages = Stages(settings, self.outputs, guard)
        self.queue, self.activity = self.stages.jobs, self.stages.activity
        w = settings.watch
        self.settler = Settler(self.queue.put, w.settle_time_s, self.outputs.forget)
        self.folders = WatchedFolders(
            recursive=w.recursive,
            mode=w.observer,
            photo_filter=PhotoFilter.from_settings(w),
            settler=self.settler,
            rescan=self.rescan,
            on_error=self.activity.error,
            unreadable=unreadable,
        )
        self.engine = Engine(
            settings,
            factory=classifier_factory,
            stages=self.stages,
            resumed=self._resumed,
            relabel=lambda: self._relabel_requested,
            on_switched=lambda _c: self.rescan(),
            stop=self._stop,
        )
        self.scanner = self._scanner()
        self._supervisor = Loop("supervisor", self._supervise, self._stop)

    def _scanner(self) -> Scanner:
        w = self.settings.watch
        photo_filter = PhotoFilter.from_settings(w)
        return Scanner(
            roots=self.folders.roots,
            photo_filter=photo_filter,
            recursive=w.recursive,
            queue=self.queue,
            settler=self.settler,
            layout=self.stages.layout,
            fingerprint=self._fingerprint,
            relabel=lambda: self._relabel_requested,
            interval_s=w.rescan_interval_s,
            settle_time_s=w.settle_time_s,
            stop=self._stop,
            observers=[self.outputs],
            on_error=self.activity.error,
            orphans=Orphans(lambda: self.settings, photo_filter, self.outputs.forget),
            on_odd=self.activity.odd_found,
        )

    def _error(self, path: Path | None, message: str) -> None:
        """An output's failure, in the status's errors."""
        self.activity.error(path, message)

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start watching and working (the model loads in the background)."""
        self.settler.start()
        self.folders.set(self.settings.watch.folders)
        self.outputs.configure(self.settings)
        self.stages.writer.start()
        for loop in (self.engine.loop, self.scanner.loop, self._supervisor):
            loop.start()

    def stop(self) -> None:
        """Ask the service to stop; the one shutdown path for signals, tray and API."""
        if not self._stop.is_set():
            log.info("stopping")
        self._stop.set()
        self._resumed.set()
        self.queue.close()
        self.scanner.request()  # wakes it to see the stop

    @property
    def stopping(self) -> bool:
        """True once stop() was called."""
        return self._stop.is_set()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until stop() is called (or the timeout passes); True if stopping."""
        return self._stop.wait(timeout_s)

    def join(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Finish shutting down after stop(): observers, stages, outputs."""
        self.stop()
        self.folders.disarm_all()
        self.settler.stop(1.0)
        for loop in (self._supervisor, self.scanner.loop):
            loop.join(1.0)
        self.engine.stop(timeout_s / 2)
        self.stages.close(timeout_s / 2)

    # --- the barrier: tests and tools wait for facts, not time (daemon/watch/scanner.py) ---

    @property
    def scan_generation(self) -> int:
        """Full scans of every watched folder finished so far (the catch-up scan is 1)."""
        return self.scanner.generation

    def wait_idle_after_scan(self, generation: int, timeout_s: float) -> bool:
        """Block until full scan `generation` ran and all its work is done; False on timeout."""
        return self.scanner.wait_idle(generation, timeout_s)

    # ---------------------------------------------------------------------------------------

    def _fingerprint(self) -> str | None:
        classifier = self.engine.classifier
        return classifier.info.fingerprint if classifier else None

    def _supervise(self) -> None:
        if self._stop.wait(SUPERVISE_EVERY_S):
            return
        if self._config_stamp.changed(self._config_path()):
            self.reload()
        self.folders.check()
        self.engine.check()
        writer = self.stages.writer
        for loop in (self.settler.loop, writer.loop, self.scanner.loop, self.engine.loop):
            if not loop.alive and not self._stop.is_set():
                log.warning("thread %s stopped; restarting it", loop.name)
                loop.start()

    # --- controller ----------------------------------------------------------------------

    def pause(self) -> None:
        """Stop taking new work (what is in flight finishes)."""
        log.info("paused")
        self._resumed.clear()

    def resume(self) -> None:
        """Take work again."""
        log.info("resumed")
        self._resumed.set()

    def rescan(self, root: Path | None = None) -> None:
        """Scan a watched folder (every one when None) for photos without a current sidecar."""
        self.scanner.request(root)

    def relabel(self) -> None:
        """Label photos that another model labelled again, in the background."""
        log.info("re-labelling photos labelled by another model")
        self._relabel_requested = True
        self.rescan()

    def reload(self) -> None:
        """Read the config again: folders and the model apply at once, the rest at restart."""
        if self._reload_settings is None:
            return
        try:
            new = self._reload_settings()
        except (ConfigError, OSError) as exc:
            message = f"the changed config was not applied: {exc}"
            log.error("%s", message)
            self.activity.error(None, message)
            return
        old, self.settings = self.settings, new
        log.info("config reloaded from %s", self._config_path())
        added, _removed = self.folders.set(new.watch.folders)
        self.outputs.configure(new)
        if new.model != old.model or Options.of(new) != Options.of(old):
            self._relabel_requested |= new.model.relabel == "on-change"
            self.engine.configure(new)
            self.engine.reload()
        if added:
            self.rescan()
        for section in restart_needed(old, new):
            log.warning("config: changes to [%s] take effect after a restart", section)

    def _config_path(self) -> Path:
        return self.settings.source or paths.config_file()

    def listen(self) -> Listener:
        """Live result events, from now on (the control API's /events)."""
        return self.events.listen()

    def get_model(self, name: str) -> None:
        """Download a model's weights in the background, then switch to it (user's request)."""
        self.engine.fetcher.start(name)

    def reload_model(self) -> None:
        """Load the configured model again (e.g. its weights just arrived); switch if better."""
        self.engine.reload()

    def classify(self, path: Path) -> SidecarRecord:
        """Classify one file now and return its record (nothing is written)."""
        classifier = self.engine.classifier
        if classifier is None:
            raise RuntimeError(self.engine.error or "the model is still loading")
        return classify_file(classifier, Path(path), Options.of(self.settings))

    @property
    def paused(self) -> bool:
        """True while paused by the user (pause(), until resume())."""
        return not self._resumed.is_set()

    @property
    def relabel_requested(self) -> bool:
        """True when photos labelled by another model are being labelled again."""
        return self._relabel_requested

    def status(self) -> Status:
        """A JSON-ready snapshot of what the service is doing."""
        return snapshot(self)
