"""Where results go after their sidecar is written: XMP, the library index, events, hooks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


OnError = Callable[[Path | None, str], None]  # a sink's failure (and its photo), for status
Found = tuple[Path, Path, Path]  # a photo a scan walked past: (photo, root, its sidecar path)


def standard_sinks(on_error: OnError, request_walk: Callable[[], None]) -> list[ResultSink]:
    """The service's sinks (XMP, library index, hooks); each follows its own settings.

    `request_walk` asks the scanner for a walk of the watched folders (XMP just turned on).
    """
    # Imported here: they import this module, and XMP loads exiv2.
    from dropsight.daemon.outputs.hooks import HookSink
    from dropsight.daemon.outputs.index.sync import IndexSink
    from dropsight.daemon.outputs.xmp.sync import XmpSink

    return [IndexSink(on_error), XmpSink(on_error, request_walk), HookSink(on_error)]


class ResultSink(Protocol):
    """Something that acts on written sidecars; called from the writer stage, per batch.

    `accept` runs off the inference path but on the writer's thread: a sink that may be slow
    (a subprocess, a network share) must hand work to a thread of its own. A sink's
    exception is logged by the writer and never stops the service or other sinks.
    """

    name: str

    def configure(self, settings: Settings) -> None:
        """Apply the settings: at start, and again whenever the config changes."""
        ...

    def accept(self, batch: Sequence[Written]) -> None:
        """Act on sidecars just written (ok and error records alike)."""
        ...

    def close(self) -> None:
        """Finish pending work and release resources (called once, at shutdown)."""
        ...


@runtime_checkable
class WalkObserver(Protocol):
    """A sink that also follows the scanner's walks of the watched folders.

    One walk (the catch-up at start, periodic and requested rescans) then serves the job
    queue, the library index's repair and the XMP catch-up alike, instead of one walk each.
    Called on the scanner's thread, one root at a time: hand the work to a thread of your own.
    """

    def walk_started(self, root: Path) -> None:
        """A walk of `root` begins."""
        ...

    def walked(self, found: Sequence[Found]) -> None:
        """Photos the walk has passed (every photo, labelled or not)."""
        ...

    def walk_finished(self, root: Path, complete: bool) -> None:
        """The walk of `root` ended; `complete` is False when it was cut short (a stop)."""
        ...
