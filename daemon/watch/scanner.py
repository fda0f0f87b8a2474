"""Scans: the catch-up scan at start, periodic and requested rescans, stale temp clean-up.

Each scan is the one walk of the watched folders: the library index and the XMP writer
follow it (outputs.protocol.WalkObserver) rather than walking the folders again themselves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from dropsight.daemon.core.atomic import remove_stale_temp_files
from dropsight.daemon.core.threads import Loop
from dropsight.daemon.outputs import sidecar
from dropsight.daemon.outputs.protocol import Found, WalkObserver
from dropsight.daemon.outputs.sidecar import NAME_MAX
from dropsight.daemon.photos.filter import PhotoFilter
from dropsight.daemon.pipeline.jobs import JobQueue
from dropsight.daemon.watch.orphans import Orphans
from dropsight.daemon.watch.settler import Settler

log = logging.getLogger(__name__)

WAIT_SLICE_S = 5.0  # how often an idle scanner wakes (a request or stop wakes it at once)
WALK_CHUNK = 500  # photos per hand-over to the walk's observers (index, XMP)
IDLE_POLL_S = 0.02  # wait_idle looks this often (several stages, no one event to wait on)


class Scanner:
    """Finds photos without a current sidecar and queues them as backlog.

    Scans need the model's fingerprint ("current" means labelled by this model), so they
    start once a model is loaded; `roots()` is asked on every scan, so folders added or
    removed at run time are followed.
    """

    def __init__(
        self,
        *,
        roots: Callable[[], list[Path]],
        photo_filter: PhotoFilter,
        recursive: bool,
        queue: JobQueue,
        settler: Settler,
        layout: sidecar.Layout,
        fingerprint: Callable[[], str | None],
        relabel: Callable[[], bool],
        interval_s: float,
        settle_time_s: float,
        stop: threading.Event,
        observers: Sequence[WalkObserver] = (),
        on_error: Callable[[Path, str], None] = lambda _p, _m: None,
        orphans: Orphans | None = None,
        on_odd: Callable[[Path, dict[Path, tuple[Path, str]]], None] = lambda _r, _f: None,
    ) -> None:
        self._roots = roots
        self._filter = photo_filter
        self._recursive = recursive
        self._queue = queue
        self._settler = settler
        self._layout = layout
        self._fingerprint = fingerprint
        self._relabel = relabel
        self.other_model = 0  # photos labelled by another model, found by the last scan
        self._interval_s = interval_s or None
        self._settle_s = max(settle_time_s, 1.0)
        self._stop = stop
        self._observers = observers
        self._request = threading.Event()
        self._request.set()  # the catch-up scan
        self._lock = threading.Lock()
        self._full = True  # every folder (the catch-up, periodic, the user's rescan)
        self._wanted: set[Path] = set()  # just these (a re-armed watch, lost events)
        self._next_periodic = float("inf")
        self._cleaned = False
        self._born_ns = time.time_ns()  # temp files older than this are a dead process's
        self._on_error = on_error
        self._orphans = orphans
        self._on_odd = on_odd
        self._too_long: set[Path] = set()
        # --- the scan barrier: full scans (every folder) begun and finished, counted ---
        self._begun = 0
        self.generation = 0  # full scans finished
        self._finished = threading.Condition()
        # ---
        self.loop = Loop("scanner", self._step, stop)

    def request(self, root: Path | None = None) -> int:
        """Scan `root` (every folder when None) as soon as possible.

        Returns the generation of the full scan whose end covers a request for every folder
        (`wait_for`); one folder's scan is not counted.
        """
        with self._lock:
            if root is None:
                self._full = True
            else:
                self._wanted.add(root)
            covering = self._begun + 1  # a full scan under way began before this request
        self._request.set()
        return covering

    def wait_for(self, generation: int, timeout_s: float) -> bool:
        """Block until full scan `generation` has finished; False on timeout."""
        with self._finished:
            return self._finished.wait_for(lambda: self.generation >= generation, timeout_s)

    def wait_idle(self, generation: int, timeout_s: float) -> bool:
        """Block until full scan `generation` ran and all its work is done; False on timeout.

        Done: nothing settling, queued, in flight or held for a retry (held writes stay in
        flight). Events the observers have not delivered yet are not seen: a test that needs
        them first waits for a later photo of the same folder (a folder's events come in order).
        """
        deadline = time.monotonic() + timeout_s
        if not self.wait_for(generation, timeout_s):
            return False
        # Upstream first: a photo moves settler -> queue -> in flight -> done, so one look in
        # this order cannot miss one moving along meanwhile. (A photo handed back, paused or
        # short of descriptors, goes back in two steps: rare, and then a look may be early.)
        while not (
            self._settler.settled() and self._queue.pending() == 0 and self._queue.in_flight() == 0
        ):
            if time.monotonic() >= deadline:
                return False
            time.sleep(IDLE_POLL_S)
        return True

    def _step(self) -> None:
        if not self._request.wait(WAIT_SLICE_S) and time.monotonic() < self._next_periodic:
            return
        if self._stop.is_set():
            return
        fingerprint = self._fingerprint()
        if fingerprint is None:  # no model yet: what counts as done is not known
            self._stop.wait(0.2)
            return
        self._request.clear()
        with self._lock:
            full = self._full or time.monotonic() >= self._next_periodic
            wanted, self._wanted, self._full = self._wanted, set(), False
            self._begun += full
        roots = [r for r in self._roots() if full or r in wanted]
        other = 0
        for root in roots:
            if self._stop.is_set():
                return
            if root.is_dir():
                other += self.scan(root, fingerprint)[1]
        if not full:
            return  # the counts and the clean-up below are about every folder
        self.other_model = other
        self._cleaned = True
        if self._interval_s:
            self._next_periodic = time.monotonic() + self._interval_s
        if not self._stop.is_set():  # a scan cut short by a stop covers nothing
            with self._finished:
                self.generation += 1
                self._finished.notify_all()

    def scan(self, root: Path, fingerprint: str) -> tuple[int, int]:
        """Queue every photo under `root` whose sidecar is not current.

        Returns (queued, labelled by another model); the latter are queued only when
        re-labelling is wanted.
        """
        started, queued, other = time.monotonic(), 0, 0
        if not self._cleaned:
            self._remove_stale_temp_files(root)
        relabel = self._relabel()
        walk = _Walk(root, self._observers)
        orphans = self._orphans
        on_folder = None
        if orphans is not None and self._layout.out_folder is None:

            def on_folder(folder: Path, names: set[str]) -> None:
                orphans.beside(folder, root, names)

        odd: dict[Path, tuple[Path, str]] = {}
        complete = True
        try:
            for path in self._filter.walk(root, self._recursive, on_folder):
                if self._stop.is_set():
                    break
                try:
                    q, o = self._one(path, root, fingerprint, relabel=relabel, walk=walk, odd=odd)
                except Exception:  # one bad file costs itself, never the scan
                    log.exception("scanning %s failed; skipped", path)
                    self._on_error(path, "scanning it failed; skipped (see the log)")
                    continue
                queued, other = queued + q, other + o
        except Exception as exc:  # the walk itself: what was not seen is not forgotten
            complete = False
            log.exception("scanning %s stopped", root)
            self._on_error(root, f"scanning stopped: {exc}")
        complete = complete and not self._stop.is_set()
        if complete:
            self._on_odd(root, odd)
        walk.finish(complete=complete)
        if orphans is not None and self._layout.out_folder is not None:
            orphans.sweep([root])
        took = time.monotonic() - started
        extra = f" ({other} labelled by another model)" if other else ""
        log.info("scanned %s in %.1f s: %d to do%s", root, took, queued, extra)
        return queued, other

    def _one(
        self,
        path: Path,
        root: Path,
        fingerprint: str,
        *,
        relabel: bool,
        walk: _Walk,
        odd: dict[Path, tuple[Path, str]],
    ) -> tuple[int, int]:
        """Look at one photo; queue it when its sidecar is not current. (queued, other model)."""
        json_path = self._layout.sidecar_for(path, root)
        if not sidecar.name_fits(json_path):
            self._no_room(path)
            return 0, 0
        walk.passed(path, json_path)
        if self._settler.is_pending(path) or self._queue.is_queued(path):
            return 0, 0  # being written, or already on its way
        state = sidecar.scan_state(path, json_path, fingerprint)
        if state == "current":
            return 0, 0
        if state == "odd":  # another program's file: left alone, counted, never queued
            odd[path] = (json_path, sidecar.load(json_path).reason)
            return 0, 0
        other = int(state == "other_model")
        if other and not relabel:
            return 0, 1
        if self._recently_modified(path):
            self._settler.touch(path, root, wait_close=False)  # maybe still being written
            return 0, other
        return int(self._queue.put(path, root, fresh=False)), other

    def _no_room(self, photo: Path) -> None:
        """A photo whose sidecar name would be too long: said once, never labelled in vain."""
        if photo not in self._too_long:
            self._too_long.add(photo)
            message = f"the name is too long for a sidecar beside it ({NAME_MAX} bytes at most)"
            log.warning("%s: %s; skipped", photo, message)
            self._on_error(photo, message)

    def _remove_stale_temp_files(self, root: Path) -> None:
        # The instance lock rules out another service, but our own writer may already be
        # busy (photos arrive while the model loads): only files from before we began go.
        out = self._layout.out_folder
        for folder in {root, out or root}:
            for tmp in remove_stale_temp_files(folder, self._recursive, self._born_ns):
                log.info("removed stale temp file %s", tmp)

    def _recently_modified(self, path: Path) -> bool:
        try:
            age_s = time.time() - path.stat().st_mtime
        except OSError:
            return False
        return age_s < self._settle_s


class _Walk:
    """One root's walk as the observers see it: every photo passed, in chunks."""

    def __init__(self, root: Path, observers: Sequence[WalkObserver]) -> None:
        self._root = root
        self._observers = observers
        self._chunk: list[Found] = []
        for observer in observers:
            observer.walk_started(root)

    def passed(self, photo: Path, json_path: Path) -> None:
        """Note a photo the walk passed."""
        if self._observers:
            self._chunk.append((photo, self._root, json_path))
            if len(self._chunk) >= WALK_CHUNK:
                self._hand_over()

    def finish(self, *, complete: bool) -> None:
        """Hand over the rest and say how the walk ended."""
        self._hand_over()
        for observer in self._observers:
            observer.walk_finished(self._root, complete)

    def _hand_over(self) -> None:
        if self._chunk:
            chunk, self._chunk = self._chunk, []
            for observer in self._observers:
                observer.walked(chunk)
