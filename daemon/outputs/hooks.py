"""Running the user's program for each labelled photo (`[hooks] on_result`), never a shell."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from dropsight.config.settings import HOOK_PLACEHOLDERS, Settings
from dropsight.daemon.outputs import hookrun
from dropsight.daemon.outputs.events import result_event
from dropsight.daemon.outputs.protocol import Context, Written

log = logging.getLogger(__name__)

HOOK_BACKLOG = 1000  # results waiting for a slow hook before new ones are skipped
FIELDS = HOOK_PLACEHOLDERS  # validated at load (config/settings.py)


def command_for(template: Sequence[str], w: Written) -> list[str]:
    """The hook's argument list with {photo}, {sidecar}, {status}, {name}, {score}, {model}."""
    event = result_event(w)
    score = event["score"]
    values = {
        "photo": event["photo"],
        "sidecar": event["sidecar"],
        "status": event["status"],
        "name": event["name"] or "",
        "score": "" if score is None else str(score),
        "model": event["model"],
    }
    return [arg.format_map(values) for arg in template]


class HookSink:
    """Runs `[hooks] on_result` per result, with a timeout, on its own thread (the registry's
    line gives it a bounded backlog: a slow hook makes results be skipped, logged, and
    labelling never waits for it). Closing, no run outlasts the registry's deadline.
    """

    name = "hooks"

    def __init__(self, ctx: Context) -> None:
        self._on_error = ctx.on_error
        self._time_left = ctx.time_left
        self._template: tuple[str, ...] = ()
        self._timeout_s = 30.0

    def configure(self, settings: Settings) -> None:
        """Follow `[hooks]` (applies at once)."""
        self._template = settings.hooks.on_result
        self._timeout_s = settings.hooks.timeout_s

    def accept(self, batch: Sequence[Written]) -> None:
        """Run the hook once per result."""
        template = self._template
        for w in batch:
            if template:
                self._run(command_for(template, w))

    def forget(self, photo: Path, root: Path) -> None:
        """Hooks hear of results only."""

    def close(self) -> None:
        """Nothing held open (each run ends within its timeout)."""

    def _run(self, command: list[str]) -> None:
        if self._time_left() <= 0:
            log.warning("on_result hook %s not run: the service is stopping", command[0])
            return
        try:
            ran = hookrun.run(command, self._timeout_s, self._time_left)
        except OSError as exc:
            self._failed(command, str(exc))
            return
        if ran.stopped == "stopping":
            self._failed(command, "still running when the service stopped; stopped")
        elif ran.stopped is not None:
            self._failed(command, f"took longer than {self._timeout_s:g} s; stopped")
        elif ran.returncode != 0:
            self._failed(command, f"exit {ran.returncode} {ran.last_line()}".strip())

    def _failed(self, command: list[str], why: str) -> None:
        log.warning("on_result hook %s failed: %s", command[0], why)
        self._on_error(None, f"on_result hook failed: {why}")
