"""The set of watched folders: arm, supervise, change at run time, report health."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from dropsight.daemon.contracts import FolderStatus
from dropsight.daemon.photos.filter import PhotoFilter
from dropsight.daemon.pipeline.activity import Activity
from dropsight.daemon.watch.observer import FolderWatch
from dropsight.daemon.watch.settler import Settler
from dropsight.daemon.watch.unreadable import Unreadable

log = logging.getLogger(__name__)

DISARM_TIMEOUT_S = 1.0


class WatchedFolders:
    """One FolderWatch per folder; thread-safe, so a config reload can add and remove folders.

    `rescan(root)` asks for a scan of one folder (re-armed, or events lost there);
    `on_error(root, message)` puts a watching problem in the status's errors. `unreadable`
    is one of the outputs' listeners: photos to label again once a chmod makes them readable.
    """

    def __init__(
        self,
        *,
        recursive: bool,
        mode: str,
        photo_filter: PhotoFilter,
        settler: Settler,
        rescan: Callable[[Path], None],
        on_error: Callable[[Path | None, str], None],
        unreadable: Unreadable | None = None,
    ) -> None:
        self._recursive = recursive
        self._mode = mode
        self._filter = photo_filter
        self._settler = settler
        self._rescan = rescan
        self._on_error = on_error
        self.unreadable = unreadable or Unreadable()
        self._lock = threading.Lock()
        self._watches: dict[Path, FolderWatch] = {}

    def _make(self, root: Path) -> FolderWatch:
        return FolderWatch(
            root,
            recursive=self._recursive,
            mode=self._mode,
            photo_filter=self._filter,
            settler=self._settler,
            rescan=self._rescan,
            on_error=self._on_error,
            retry=self.unreadable.retry,
        )

    def set(self, roots: Iterable[Path]) -> tuple[list[Path], list[Path]]:
        """Watch exactly `roots`: arm new folders, disarm dropped ones; returns (added, removed)."""
        wanted = list(dict.fromkeys(roots))
        with self._lock:
            removed = [r for r in self._watches if r not in wanted]
            gone = [self._watches.pop(r) for r in removed]
            added = [r for r in wanted if r not in self._watches]
            new = {r: self._make(r) for r in added}
            self._watches.update(new)
        for watch in gone:
            watch.disarm(DISARM_TIMEOUT_S)
            log.info("no longer watching %s", watch.root)
        for watch in new.values():
            watch.arm()
            if watch.health.healthy:
                log.info("watching %s (%s)", watch.root, watch.health.observer_kind)
            else:
                log.warning("cannot watch %s: %s", watch.root, watch.health.error)
        return added, removed

    def roots(self) -> list[Path]:
        """The watched folders, in configured order."""
        with self._lock:
            return list(self._watches)

    def watches(self) -> list[FolderWatch]:
        """The FolderWatch objects (for health checks and tests)."""
        with self._lock:
            return list(self._watches.values())

    def check(self) -> None:
        """Re-arm dead observers and folders that came back; one failure never stops the rest."""
        for watch in self.watches():
            try:
                watch.check()
            except Exception:
                log.exception("health check of %s failed", watch.root)

    def disarm_all(self) -> None:
        """Stop every observer."""
        for watch in self.watches():
            watch.disarm(DISARM_TIMEOUT_S)

    def statuses(self, activity: Activity) -> list[FolderStatus]:
        """Each folder's health for the status (a failing write there counts as unhealthy)."""
        out: list[FolderStatus] = []
        for w in self.watches():
            write_error = activity.write_error(w.root)
            out.append(
                {
                    "path": str(w.root),
                    "healthy": w.health.healthy and write_error is None,
                    "error": w.health.error or write_error,
                    "observer": w.health.observer_kind,
                }
            )
        return out
