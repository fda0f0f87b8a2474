"""Running the user's program for each labelled photo (`[hooks] on_result`), never a shell."""

from __future__ import annotations

import logging
import queue
import subprocess
import threading
from collections.abc import Sequence

from dropsight.config.settings import Settings
from dropsight.daemon.outputs.events import result_event
from dropsight.daemon.outputs.registry import OnError, Written

log = logging.getLogger(__name__)

HOOK_BACKLOG = 1000  # results waiting for a slow hook before new ones are skipped


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
    """Runs `[hooks] on_result` per result on a thread of its own, with a timeout.

    A failing hook is logged; a slow one makes results queue, then be skipped (logged), and
    labelling never waits for it.
    """

    name = "hooks"

    def __init__(self, on_error: OnError) -> None:
        self._on_error = on_error
        self._template: tuple[str, ...] = ()
        self._timeout_s = 30.0
        self._queue: queue.Queue[list[str] | None] = queue.Queue(maxsize=HOOK_BACKLOG)
        self._thread: threading.Thread | None = None
        self.skipped = 0

    def configure(self, settings: Settings) -> None:
        """Follow `[hooks]` (applies at once)."""
        self._template = settings.hooks.on_result
        self._timeout_s = settings.hooks.timeout_s
        if self._template and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="hooks", daemon=True)
            self._thread.start()

    def accept(self, batch: Sequence[Written]) -> None:
        """Queue one run per result."""
        if not self._template:
            return
        for w in batch:
            try:
                self._queue.put_nowait(command_for(self._template, w))
            except queue.Full:
                self.skipped += 1
                if self.skipped == 1 or self.skipped % 100 == 0:
                    log.warning("the on_result hook is too slow: %d results skipped", self.skipped)

    def close(self) -> None:
        """Let queued runs finish (each within its timeout), then stop."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()

    def _run(self) -> None:
        while True:
            command = self._queue.get()
            if command is None:
                return
            try:
                done = subprocess.run(
                    command,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=self._timeout_s,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                self._failed(command, f"took longer than {self._timeout_s:g} s; stopped")
                continue
            except OSError as exc:
                self._failed(command, str(exc))
                continue
            if done.returncode != 0:
                tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
                self._failed(command, f"exit {done.returncode} {tail[0]}".strip())

    def _failed(self, command: list[str], why: str) -> None:
        log.warning("on_result hook %s failed: %s", command[0], why)
        self._on_error(None, f"on_result hook failed: {why}")
