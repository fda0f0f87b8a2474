"""Admission of control-API connections: few at a time, each request head read by a deadline.

One selector thread accepts connections and reads each request head without blocking. A
slow or idle client therefore costs one socket and no thread, and only `max_pending` of them
are held at once. A complete head is handed to the server, which answers it on a thread of
its own; at most `max_active` (+ `reserve`) such threads run. Beyond that, connections are
closed at once (the oldest unfinished head first) or refused with a small canned answer, so a
local client without the token can exhaust neither the service's file descriptors (labelling
needs them) nor its threads, nor make it spin.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

log = logging.getLogger(__name__)

_HEAD_ENDS = (b"\r\n\r\n", b"\n\n")  # the stdlib parser takes bare newlines too
_RECV_BYTES = 4096
ACCEPT_BATCH = 16  # connections accepted per turn of the loop
ACCEPT_BACKOFF_S = 0.25  # pause accepting this long when the process is out of descriptors
# accept() failing for want of descriptors or memory: the listener stays readable, so
# retrying at once would spin a core (the 1.3 cores the issue measured).
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, 10024}  # WSAEMFILE


@dataclass(frozen=True)
class Limits:
    """How many connections the control API holds, and how long a request may take to arrive.

    The sums stay small beside the usual 1,024-descriptor limit (RLIMIT_NOFILE), so
    labelling always has hundreds of descriptors left whatever clients do.
    """

    # Connections whose request head is still arriving: one socket each, no thread.
    max_pending: int = 64
    # Requests being answered, each on its own thread.
    max_active: int = 32
    # Extra answering slots only for requests that bear the token, so `dropsight stop` and
    # status get through even when token holders (viewers' event streams, long classify
    # calls) fill the rest. Clients without the token never reach this far: their heads are
    # answered in a moment (401) or shed while pending.
    reserve: int = 8
    # Event streams (`GET /v1/events` with the token) have slots of their own: they last for
    # hours, and may never take the answering slots control requests need.
    max_streams: int = 8
    # From accept to the whole head, and (checked by the server) to the whole body: one
    # deadline, not per read, so a byte every few seconds cannot keep a connection.
    request_timeout_s: float = 10.0
    max_head_bytes: int = 16 * 1024


# What the server gets for each complete head: socket, address, the bytes read so far (the
# head and perhaps the start of the body) and the request's deadline (time.monotonic()).
HandOff = Callable[[socket.socket, Any, bytes, float], None]


@dataclass
class _Pending:
    sock: socket.socket
    address: Any
    deadline: float
    head: bytes = b""


class Gate:
    """Accepts on a listening socket and hands complete request heads on, within Limits."""

    def __init__(
        self,
        listener: socket.socket,
        hand_off: HandOff,
        trusted: Callable[[bytes], bool],
        limits: Limits | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self._listener = listener
        self._hand_off = hand_off
        self._trusted = trusted  # whether a head bears the token (gets the reserve)
        self._pending: dict[socket.socket, _Pending] = {}  # insertion order: oldest first
        self._active = 0
        self._streams: set[socket.socket] = set()  # admitted event streams
        self._lock = threading.Lock()  # guards _active (released from answering threads)
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._accept_paused_until: float | None = None

    def release(self, sock: socket.socket | None = None) -> None:
        """A handed-on request (on `sock`) is finished (called from its thread)."""
        with self._lock:
            if sock is not None and sock in self._streams:
                self._streams.discard(sock)
            else:
                self._active -= 1

    def stop(self) -> None:
        """Make run() return soon (from any thread)."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def run(self) -> None:
        """Serve until stop(); closes every connection still pending on the way out."""
        self._listener.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._stopping.is_set():
                self._turn()
        finally:
            for pending in list(self._pending.values()):
                self._drop(pending)
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    # --- the loop ----------------------------------------------------------------------------

    def _turn(self) -> None:
        # Blocks until something happens or the next deadline: no polling, no spinning.
        ready = self._selector.select(self._wait_s())
        accept = False
        for key, _ in ready:
            if key.fileobj is self._wake_r:
                with contextlib.suppress(OSError):
                    self._wake_r.recv(64)
            elif key.fileobj is self._listener:
                accept = True
            elif key.fileobj in self._pending:
                self._read(self._pending[key.fileobj])
        # Heads that have arrived leave the pending set before newcomers may shed the oldest:
        # a real client sends its whole head at once, so it is never the one shed.
        if accept:
            self._accept()
        self._expire()
        self._maybe_resume_accepting()

    def _wait_s(self) -> float | None:
        oldest = next(iter(self._pending.values()), None)  # due first: same timeout for all
        times = [] if oldest is None else [oldest.deadline]
        if self._accept_paused_until is not None:
            times.append(self._accept_paused_until)
        if not times:
            return None
        return max(0.0, min(times) - time.monotonic())

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, address = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self._pause_accepting(exc)
                return
            if len(self._pending) >= self.limits.max_pending:
                # Shed the oldest unfinished head: slow clients, not the newcomer, pay.
                self._drop(next(iter(self._pending.values())))
            sock.setblocking(False)
            deadline = time.monotonic() + self.limits.request_timeout_s
            pending = _Pending(sock, address, deadline)
            self._pending[sock] = pending
            self._selector.register(sock, selectors.EVENT_READ)

    def _pause_accepting(self, exc: OSError) -> None:
        log.warning("control API: cannot accept connections (%s); pausing", exc)
        self._selector.unregister(self._listener)
        self._accept_paused_until = time.monotonic() + ACCEPT_BACKOFF_S
        # Our pending sockets are the descriptors we can give back to the rest of the service.
        if self._pending:
            self._drop(next(iter(self._pending.values())))

    def _maybe_resume_accepting(self) -> None:
        until = self._accept_paused_until
        if until is not None and time.monotonic() >= until:
            self._accept_paused_until = None
            self._selector.register(self._listener, selectors.EVENT_READ)

    def _read(self, pending: _Pending) -> None:
        try:
            data = pending.sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away
            self._drop(pending)
            return
        pending.head += data
        if any(end in pending.head for end in _HEAD_ENDS):
            self._admit(pending)
        elif len(pending.head) > self.limits.max_head_bytes:
            self._refuse(pending, 431, "too_large", "request head too large")

    def _admit(self, pending: _Pending) -> None:
        limit = self.limits.max_active
        trusted = self._trusted(pending.head)
        stream = trusted and is_event_stream(pending.head)
        with self._lock:
            if stream:
                room = len(self._streams) < self.limits.max_streams
                if room:
                    self._streams.add(pending.sock)
            else:
                room = self._active < limit or (
                    self._active < limit + self.limits.reserve and trusted
                )
                if room:
                    self._active += 1
        if not room:
            what = "event streams" if stream else "requests"
            self._refuse(pending, 503, "busy", f"too many {what}; try again")
            return
        self._forget(pending)
        try:
            pending.sock.setblocking(True)
            self._hand_off(pending.sock, pending.address, pending.head, pending.deadline)
        except Exception:
            log.exception("control API: could not hand a request on")
            self.release(pending.sock)
            with contextlib.suppress(OSError):
                pending.sock.close()

    def _expire(self) -> None:
        now = time.monotonic()
        while self._pending:
            oldest = next(iter(self._pending.values()))
            if oldest.deadline > now:
                return
            self._refuse(oldest, 408, "request_timeout", "request not received in time")

    # --- ending connections --------------------------------------------------------------------

    def _refuse(self, pending: _Pending, status: int, code: str, message: str) -> None:
        # Best effort and never blocking: the answer is small enough for the socket buffer.
        with contextlib.suppress(OSError):
            pending.sock.send(refusal(status, code, message))
        self._drop(pending)

    def _forget(self, pending: _Pending) -> None:
        self._pending.pop(pending.sock, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(pending.sock)

    def _drop(self, pending: _Pending) -> None:
        self._forget(pending)
        with contextlib.suppress(OSError):
            pending.sock.close()


def is_event_stream(head: bytes) -> bool:
    """Whether a request head asks for the event stream (`GET /v1/events`)."""
    method, _, rest = head.partition(b" ")
    target = rest.split(b" ", 1)[0].split(b"?", 1)[0]
    return method == b"GET" and target == b"/v1/events"


def refusal(status: int, code: str, message: str) -> bytes:
    """A complete HTTP/1.0 JSON error answer, as the server's own errors look.

    A refusal for want of slots also says `"state": "busy"`: the service runs.
    """
    answer: dict[str, object] = {"error": {"code": code, "message": message}}
    if code == "busy":
        answer["state"] = "busy"
    body = json.dumps(answer).encode("ascii")
    head = (
        f"HTTP/1.0 {status} {HTTPStatus(status).phrase}\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class _Prefixed(io.RawIOBase):
    """The bytes the gate already read, then the rest from the socket."""

    def __init__(self, head: bytes, raw: io.RawIOBase) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._raw = raw

    def readable(self) -> bool:
        """Always (a request stream)."""
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int | None:
        """Serve the head first, then read the socket."""
        if not self._head:
            return self._raw.readinto(buffer)
        out = memoryview(buffer).cast("B")
        n = min(len(out), len(self._head))
        out[:n] = self._head[:n]
        self._head = self._head[n:]
        return n

    def close(self) -> None:
        """Close the socket's file object too."""
        self._raw.close()
        super().close()


def request_reader(head: bytes, sock: socket.socket) -> io.BufferedReader:
    """A buffered reader of the whole request, starting with the bytes the gate read."""
    raw = cast(io.RawIOBase, sock.makefile("rb", buffering=0))  # a socket.SocketIO
    return io.BufferedReader(_Prefixed(head, raw))
