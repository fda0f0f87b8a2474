"""Running one hook program: its own process group, bounded output, and a deadline it keeps.

A hook may write gigabytes, start children, or background one and exit: stdout is discarded,
only the last TAIL_BYTES of stderr are kept, and when the hook ends (or its time is up) its
whole process group is stopped, so nothing it started outlives it. Its pipes are never waited
on: a child that keeps stderr open does not hold up a hook that exited.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

TAIL_BYTES = 4096  # of stderr, for the log: the reason a hook failed is at its end
CHUNK = 65536
POLL_S = 0.2  # a running hook re-checks its deadline this often


@dataclass(frozen=True)
class Ran:
    """How a hook run ended: its exit code, or `stopped` ("timeout" or "stopping")."""

    returncode: int | None
    stderr_tail: str
    stopped: str | None = None

    def last_line(self) -> str:
        """The last line the hook wrote to stderr."""
        lines = self.stderr_tail.strip().splitlines()
        return lines[-1] if lines else ""


class _Tail:
    """The last TAIL_BYTES written to a pipe."""

    def __init__(self) -> None:
        self.data = bytearray()

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > TAIL_BYTES:
            del self.data[: len(self.data) - TAIL_BYTES]

    def text(self) -> str:
        return bytes(self.data).decode("utf-8", "replace")


def run(command: Sequence[str], timeout_s: float, time_left: Callable[[], float]) -> Ran:
    """Run `command` (no shell) to its end, for at most `timeout_s` or `time_left()` seconds.

    Raises OSError when it cannot start.
    """
    kwargs: dict[str, Any] = {}
    if sys.platform == "win32":
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
    else:
        kwargs["start_new_session"] = True  # its own process group, to stop as one
    process = subprocess.Popen(
        list(command),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        close_fds=True,
        **kwargs,
    )
    assert process.stderr is not None
    tail = _Tail()
    reader = _Reader(process.stderr, tail)
    ends = time.monotonic() + timeout_s
    stopped: str | None = None
    try:
        while process.poll() is None:
            left = min(ends - time.monotonic(), time_left())
            if left <= 0:
                stopped = "stopping" if time_left() <= 0 else "timeout"
                break
            reader.wait(min(left, POLL_S))
    finally:
        _stop_group(process)  # what it started goes with it, whether it exited or not
        process.wait()
        reader.close()
    return Ran(None if stopped else process.returncode, tail.text(), stopped)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the hook's process group (on Windows, the hook itself)."""
    if sys.platform == "win32":
        with contextlib.suppress(OSError):
            process.kill()
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


class _Reader:
    """Reads a pipe into a tail without ever blocking on it (POSIX: a selector; Windows: a
    thread, as pipes cannot be selected there)."""

    def __init__(self, pipe: IO[bytes], tail: _Tail) -> None:
        self._pipe, self._tail = pipe, tail
        self._thread: threading.Thread | None = None
        self._selector: selectors.BaseSelector | None = None
        if sys.platform == "win32":
            self._thread = threading.Thread(target=self._drain, name="hook-stderr", daemon=True)
            self._thread.start()
        else:
            os.set_blocking(pipe.fileno(), False)
            self._selector = selectors.DefaultSelector()
            self._selector.register(pipe, selectors.EVENT_READ)

    def wait(self, timeout_s: float) -> None:
        """Take what the pipe has within `timeout_s` (or just sleep, on Windows)."""
        if self._selector is None:
            time.sleep(timeout_s)
            return
        if self._selector.select(timeout_s):
            self._read_available()

    def close(self) -> None:
        """Take what is left and close the pipe (the group is stopped by now)."""
        if self._selector is not None:
            self._read_available()
            self._selector.close()
        elif self._thread is not None:
            self._thread.join(1.0)
        with contextlib.suppress(OSError):
            self._pipe.close()

    def _read_available(self) -> None:
        fd = self._pipe.fileno()
        while True:
            try:
                chunk = os.read(fd, CHUNK)
            except BlockingIOError:
                return
            except OSError:
                return
            if not chunk:
                if self._selector is not None:
                    with contextlib.suppress(KeyError, ValueError):
                        self._selector.unregister(self._pipe)
                return
            self._tail.add(chunk)

    def _drain(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := os.read(self._pipe.fileno(), CHUNK):
                self._tail.add(chunk)
