"""What an output is: the protocol every output follows, and what the registry gives it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from dropsight.config.settings import Settings
from dropsight.daemon.contracts import SidecarRecord


@dataclass(frozen=True)
class Written:
    """One photo whose sidecar the writer stage has just written."""

    photo: Path  # the photo's path on disk (may hold surrogate-escaped bytes on POSIX)
    root: Path  # the watched (or given) folder it was found under
    sidecar: Path  # where its JSON sidecar now is
    record: SidecarRecord  # the sidecar record exactly as written (public contract)


OnError = Callable[[Path | None, str], None]  # an output's failure (and its photo), for status
Found = tuple[Path, Path, Path]  # a photo a scan walked past: (photo, root, its sidecar path)


def _no_walk() -> None:
    """Nothing walks the folders here (a backfill)."""


def _unbounded() -> float:
    return float("inf")


@dataclass(frozen=True)
class Context:
    """What the registry hands an output when it makes it."""

    on_error: OnError  # report a failure (the service's status; a backfill's log)
    request_walk: Callable[[], None] = _no_walk  # ask the scanner for a walk of every folder
    # Set once closing began: work a later walk redoes anyway (a catch-up) may end early.
    closing: threading.Event = field(default_factory=threading.Event)
    # Seconds left before the close deadline (infinite until closing began): a run that may
    # take long (a hook) takes at most this.
    time_left: Callable[[], float] = _unbounded


class Output(Protocol):
    """Something that keeps a record of labelled photos beside the sidecars.

    The registry (outputs/registry.py) makes each output with a Context and drives its whole
    lifecycle. `configure` runs on the caller's thread and must be quick. The others run on a
    thread of the output's own, in order, behind a bounded backlog (unless the registry line
    says the output is cheap enough for the caller's thread): they may block (SQLite, exiv2,
    a subprocess). An exception is logged and never stops the service or other outputs.
    """

    name: str

    def configure(self, settings: Settings) -> None:
        """Apply the settings: at start, and again whenever the config changes."""
        ...

    def accept(self, batch: Sequence[Written]) -> None:
        """Act on sidecars just written (ok and error records alike)."""
        ...

    def forget(self, photo: Path, root: Path) -> None:
        """`photo` (found under `root`) is gone, deleted or moved away: drop what is ours."""
        ...

    def close(self) -> None:
        """Release resources; called once, last, within the registry's close deadline."""
        ...


@runtime_checkable
class WalkObserver(Protocol):
    """An output that also follows the scanner's walks of the watched folders.

    One walk (the catch-up at start, periodic and requested rescans) then serves the job
    queue, the library index's repair and the XMP catch-up alike, instead of one walk each.
    Like `accept`, these run on the output's own thread.
    """

    def walk_started(self, root: Path) -> None:
        """A walk of `root` begins."""
        ...

    def walked(self, found: Sequence[Found]) -> None:
        """Photos the walk has passed (every photo, labelled or not)."""
        ...

    def walk_finished(self, root: Path, complete: bool) -> None:
        """The walk of `root` ended; `complete` is False when it was cut short (a stop, or
        part of it was skipped because the output was too far behind)."""
        ...
