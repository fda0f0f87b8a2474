"""A toy output, as small as a new one can be: one file, plus one line in the registry."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from dropsight.config.settings import Settings
from dropsight.daemon.outputs.protocol import Context, Written


class ToyOutput:
    """Writes `IMG.jpg.toy` (the top label) beside each labelled photo; a photo gone loses it.

    It also notes each call and the thread it came on, for the test to read.
    """

    name = "toy"

    def __init__(self, ctx: Context) -> None:
        self.settings: list[Settings] = []
        self.calls: list[tuple[str, str]] = []  # (call, thread name)

    def configure(self, settings: Settings) -> None:
        """Note the settings."""
        self.settings.append(settings)
        self._note("configure")

    def accept(self, batch: Sequence[Written]) -> None:
        """Write each photo's top label beside it."""
        for w in batch:
            top = w.record["predictions"][0]["label"] if w.record["predictions"] else ""
            toy_path(w.photo).write_text(top + "\n", encoding="utf-8")
        self._note("accept")

    def forget(self, photo: Path, root: Path) -> None:
        """Remove what was written for a photo that is gone."""
        toy_path(photo).unlink(missing_ok=True)
        self._note("forget")

    def close(self) -> None:
        """Note the close."""
        self._note("close")

    def _note(self, call: str) -> None:
        self.calls.append((call, threading.current_thread().name))


def toy_path(photo: Path) -> Path:
    """Where the toy output writes for `photo`."""
    return photo.with_name(photo.name + ".toy")
