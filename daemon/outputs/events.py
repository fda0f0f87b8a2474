"""Live results for other programs: an event per labelled photo, to every listener.

Listeners are the control API's `GET /v1/events` streams (Server-Sent Events) and
`dropsight events`. A listener that falls behind loses its oldest events, never slows
labelling down.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Sequence
from pathlib import Path

from dropsight.daemon.contracts import ResultEvent
from dropsight.daemon.labels.names import display_name
from dropsight.daemon.outputs.protocol import Written

LISTENER_BACKLOG = 1000  # events a slow listener may lag behind before losing the oldest


def result_event(w: Written) -> ResultEvent:
    """The event for one written sidecar (a small, stable subset of the record)."""
    record = w.record
    top = record["predictions"][0] if record["predictions"] else None
    error = record["error"]
    return {
        "type": "result",
        "photo": os.fsdecode(os.fsencode(w.photo)),
        "sidecar": os.fsdecode(os.fsencode(w.sidecar)),
        "status": record["status"],
        "name": display_name(top) if top else None,
        "class_index": top["class_index"] if top else None,
        "score": top["score"] if top else None,
        "categories": record.get("categories") or [],
        "model": record["model"]["name"],
        "processed_at": record["processed_at"],
        "error": error["message"] if error else None,
    }


class Listener:
    """One listener's queue of events."""

    def __init__(self, hub: EventHub) -> None:
        self._hub = hub
        self._queue: queue.Queue[ResultEvent] = queue.Queue(maxsize=LISTENER_BACKLOG)
        self.dropped = 0

    def put(self, event: ResultEvent) -> None:
        """Queue an event, dropping the oldest when the listener is behind."""
        while True:
            try:
                self._queue.put_nowait(event)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def get(self, timeout_s: float) -> ResultEvent | None:
        """The next event, or None after `timeout_s` (or once the hub is closed)."""
        if self._hub.closed:
            return None
        try:
            return self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None

    @property
    def closed(self) -> bool:
        """Whether the hub has shut down (the stream should end)."""
        return self._hub.closed

    def close(self) -> None:
        """Stop listening."""
        self._hub.remove(self)


class EventHub:
    """Fans events out to listeners; also an output (results reach it on the writer's thread)."""

    name = "events"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self.closed = False

    def listen(self) -> Listener:
        """A new listener, receiving events from now on."""
        listener = Listener(self)
        with self._lock:
            self._listeners.append(listener)
        return listener

    def remove(self, listener: Listener) -> None:
        """Forget a listener."""
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def listeners(self) -> int:
        """How many listen now."""
        with self._lock:
            return len(self._listeners)

    def publish(self, event: ResultEvent) -> None:
        """Send an event to every listener."""
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener.put(event)

    # --- Output (outputs/protocol.py) ---------------------------------------------------

    def configure(self, settings: object) -> None:
        """Nothing to configure: events always flow (only listeners receive them)."""

    def accept(self, batch: Sequence[Written]) -> None:
        """Publish a result event per written sidecar."""
        if self.listeners():
            for w in batch:
                self.publish(result_event(w))

    def forget(self, photo: Path, root: Path) -> None:
        """Events are about results only."""

    def close(self) -> None:
        """End every listener's stream."""
        self.closed = True
