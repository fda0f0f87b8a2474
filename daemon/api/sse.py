"""Server-Sent Events for the control API: result events to one client until either side ends."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from io import BufferedIOBase

from dropsight.daemon.outputs.events import Listener

EVENT_WAIT_S = 0.5  # how often an event stream checks for the server stopping
HEARTBEAT_S = 15.0  # a comment line this often on an idle event stream


def stream_events(
    out: BufferedIOBase, connection: socket.socket, listener: Listener, stopping: threading.Event
) -> None:
    """Write `listener`'s events to `out` (after the response head) until it ends.

    Raises OSError when the client goes away mid-write.
    """
    out.write(b": connected\n\n")
    out.flush()
    beat = time.monotonic()
    while not stopping.is_set() and not listener.closed:
        if client_gone(connection):
            break
        event = listener.get(EVENT_WAIT_S)
        if event is not None:
            data = json.dumps(event, ensure_ascii=True)
            out.write(f"event: {event['type']}\ndata: {data}\n\n".encode("ascii"))
        elif time.monotonic() - beat >= HEARTBEAT_S:
            out.write(b": keep-alive\n\n")  # finds clients that went away
        else:
            continue
        out.flush()
        beat = time.monotonic()


def client_gone(connection: socket.socket) -> bool:
    """Whether the client closed its end (readable with nothing to read)."""
    ready, _, _ = select.select([connection], [], [], 0)
    if not ready:
        return False
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
