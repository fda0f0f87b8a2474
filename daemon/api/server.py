"""Loopback HTTP control API: status, pause, resume, rescan, classify one file, stop."""

from __future__ import annotations

import contextlib
import hmac
import http.server
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from dropsight.daemon import __version__
from dropsight.daemon.api import connlimit
from dropsight.daemon.api.connlimit import Gate, Limits
from dropsight.daemon.api.sse import stream_events
from dropsight.daemon.contracts import (
    API_PREFIX,
    ROUTES,
    ApiErrorBody,
    ControlInfo,
    ErrorCode,
    OkAnswer,
    PingAnswer,
    Route,
    SidecarRecord,
    Status,
)
from dropsight.daemon.core import paths
from dropsight.daemon.core.atomic import write_private_json
from dropsight.daemon.outputs.events import Listener

log = logging.getLogger(__name__)

CONTROL_FILE_NAME = "control.json"
MAX_BODY_BYTES = 64 * 1024
# Each socket operation of an answering thread (the whole request's arrival has its own
# deadline: connlimit.Limits.request_timeout_s).
REQUEST_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_STREAMED = object()  # a handler that wrote its own response


class Controller(Protocol):
    """What the control API needs from the service."""

    def status(self) -> Status: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def rescan(self) -> None: ...
    def classify(self, path: Path) -> SidecarRecord: ...  # raises for bad paths
    def stop(self) -> None: ...  # asks the service to shut down (returns at once)
    def relabel(self) -> None: ...
    def reload(self) -> None: ...
    def reload_model(self) -> None: ...
    def get_model(self, name: str) -> None: ...  # KeyError/ValueError: nothing to get
    def listen(self) -> Listener: ...  # live result events (daemon/outputs/events.py)


def control_file() -> Path:
    """Where the running service publishes its port and token."""
    return paths.state_dir() / CONTROL_FILE_NAME


class _ApiError(Exception):
    """A request refused with an HTTP status and a machine-readable code."""

    def __init__(self, status: int, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class _Server(http.server.ThreadingHTTPServer):
    """ThreadingHTTPServer fed by a connlimit.Gate; tracks its threads so stop() can join them."""

    daemon_threads = True
    # We join our own threads (with a timeout) instead of the stdlib's unbounded join.
    block_on_close = False
    # Bursts of clients (tray, viewer, scripts) must not overflow the default backlog of 5.
    request_queue_size = 128

    def __init__(self, controller: Controller, token: str, limits: Limits) -> None:
        self.controller = controller
        self.token = token
        # Each live request thread and its socket, so stop() can cut stalled clients off.
        self.handler_threads: dict[threading.Thread, socket.socket] = {}
        self.threads_lock = threading.Lock()
        self.stopping = threading.Event()  # ends event streams
        # The bytes the gate read of each handed-on request, and its deadline.
        self.admitted: dict[socket.socket, tuple[bytes, float]] = {}
        super().__init__(("127.0.0.1", 0), _Handler)
        # The gate, not serve_forever(), accepts: it bounds connections and threads.
        self.gate = Gate(self.socket, self.hand_off, self.bears_token, limits)

    def bears_token(self, head: bytes) -> bool:
        """Whether a raw request head carries our bearer token (it may use the reserve)."""
        for line in head.split(b"\n")[1:]:
            if not line.strip():
                break  # the end of the head; what follows is body
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "authorization":
                return _token_matches(value, self.token)
        return False

    def hand_off(self, request: socket.socket, address: Any, head: bytes, deadline: float) -> None:
        """Answer one admitted connection in a tracked daemon thread."""
        thread = threading.Thread(
            target=self._serve_tracked,
            args=(request, address),
            name="dropsight-control-request",
            daemon=True,
        )
        with self.threads_lock:
            self.admitted[request] = (head, deadline)
            self.handler_threads[thread] = request
        try:
            thread.start()
        except BaseException:
            with self.threads_lock:
                self.admitted.pop(request, None)
                self.handler_threads.pop(thread, None)
            raise

    def _serve_tracked(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self.threads_lock:
                self.handler_threads.pop(threading.current_thread(), None)
                self.admitted.pop(request, None)
            self.gate.release(request)


class _Handler(http.server.BaseHTTPRequestHandler):
    """One request: check Host and token, route, answer JSON."""

    server: _Server
    # HTTP/1.0: one request per connection keeps refusals simple (no body to drain).
    protocol_version = "HTTP/1.0"
    server_version = f"dropsight/{__version__}"
    sys_version = ""
    timeout = REQUEST_TIMEOUT_S
    deadline = 0.0  # time.monotonic() by which the whole request must have arrived

    def setup(self) -> None:
        """Read the request from the bytes the gate already has, then from the socket."""
        super().setup()
        with self.server.threads_lock:
            head, self.deadline = self.server.admitted.pop(self.request, (b"", 0.0))
        self.rfile.close()
        self.rfile = connlimit.request_reader(head, self.connection)

    # --- routing -------------------------------------------------------------------------

    def do_GET(self) -> None:
        """GET requests."""
        self._dispatch()

    def do_POST(self) -> None:
        """POST requests."""
        self._dispatch()

    # Every other common method gets a JSON 405 rather than the stdlib's HTML 501.
    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _handler(self, route: Route) -> Callable[[], object]:
        """What answers a route (its method is in contracts.ROUTES)."""
        controller = self.server.controller
        handlers: dict[Route, Callable[[], object]] = {
            "ping": self._ping,
            "status": controller.status,
            "pause": lambda: self._action(controller.pause),
            "resume": lambda: self._action(controller.resume),
            "rescan": lambda: self._action(controller.rescan),
            "stop": lambda: self._action(controller.stop),
            "classify": self._classify,
            "relabel": lambda: self._action(controller.relabel),
            "reload": lambda: self._action(controller.reload),
            "models/reload": lambda: self._action(controller.reload_model),
            "models/get": self._get_model,
            "events": self._events,
        }
        return handlers[route]

    def _dispatch(self) -> None:
        try:
            self._check_host()
            self._check_token()
            route = self._route()
            if route is None:
                raise _ApiError(404, "not_found", f"no such endpoint: {self.path}")
            method = ROUTES[route]
            if self.command != method:
                raise _ApiError(405, "method_not_allowed", f"use {method} for {self.path}")
            answer = self._handler(route)()
            if answer is not _STREAMED:
                self._send_json(200, answer)
        except _ApiError as exc:
            self._send_error_json(exc.status, exc.code, exc.message)
        except Exception:
            log.exception("control API: %s %s failed", self.command, self.path)
            self._send_error_json(500, "internal_error", "internal error; see the service log")

    def _route(self) -> Route | None:
        path = self.path.split("?", 1)[0]
        name = path[len(API_PREFIX) :] if path.startswith(API_PREFIX) else ""
        return next((route for route in ROUTES if route == name), None)

    # --- checks --------------------------------------------------------------------------

    def _check_host(self) -> None:
        # A web page can make the browser send requests to 127.0.0.1 under a DNS name it
        # controls (DNS rebinding); such requests carry that name in Host, so refuse them.
        host = (self.headers.get("Host") or "").strip().lower()
        port = self.server.server_address[1]
        if host not in {f"{name}:{port}" for name in _LOOPBACK_HOSTS}:
            raise _ApiError(403, "forbidden_host", "Host must be a loopback address with port")

    def _check_token(self) -> None:
        header = self.headers.get("Authorization")
        if not header:
            raise _ApiError(401, "unauthorized", "missing bearer token")
        if not _token_matches(header, self.server.token):
            raise _ApiError(403, "forbidden", "wrong token")

    def _read_json_body(self) -> Any:
        """The request body parsed as JSON, or None when it is empty."""
        if self.headers.get("Transfer-Encoding"):
            raise _ApiError(411, "length_required", "send a Content-Length, not chunks")
        raw_length = self.headers.get("Content-Length") or "0"
        try:
            length = int(raw_length)
        except ValueError:
            raise _ApiError(400, "bad_request", "Content-Length is not a number") from None
        if length < 0:
            raise _ApiError(400, "bad_request", "Content-Length is negative")
        if length > MAX_BODY_BYTES:
            raise _ApiError(413, "too_large", f"body larger than {MAX_BODY_BYTES} bytes")
        if length == 0:
            return None
        data = self._read_body(length)
        if len(data) != length:
            raise _ApiError(400, "bad_request", "body shorter than Content-Length")
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _ApiError(400, "bad_json", "body is not valid UTF-8 JSON") from None

    def _read_body(self, length: int) -> bytes:
        """Up to `length` bytes, all by the request's deadline (a byte at a time won't do)."""
        late = _ApiError(408, "request_timeout", "request body not received in time")
        data = bytearray()
        try:
            while len(data) < length:
                left_s = self.deadline - time.monotonic()
                if left_s <= 0:
                    raise late
                self.connection.settimeout(left_s)
                try:
                    chunk = self.rfile.read1(length - len(data))
                except TimeoutError:
                    raise late from None
                if not chunk:
                    break
                data += chunk
        finally:
            self.connection.settimeout(self.timeout)  # the answer gets the usual time
        return bytes(data)

    # --- handlers ------------------------------------------------------------------------

    def _ping(self) -> PingAnswer:
        """Proof of life that asks the controller nothing, so nothing in it can fail."""
        return {"ok": True, "pid": os.getpid(), "version": __version__}

    def _action(self, action: Callable[[], None]) -> OkAnswer:
        body = self._read_json_body()
        if body is not None and body != {}:
            raise _ApiError(400, "bad_request", "expected an empty body or {}")
        action()
        return {"ok": True}

    def _events(self) -> object:
        """Server-Sent Events: one `result` event per labelled photo, until either side ends."""
        listener = self.server.controller.listen()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            stream_events(self.wfile, self.connection, listener, self.server.stopping)
        except OSError:
            pass  # the client disconnected
        finally:
            listener.close()
        return _STREAMED

    def _get_model(self) -> OkAnswer:
        body = self._read_json_body()
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name:
            raise _ApiError(400, "bad_request", 'send {"name": "vgg16"}')
        try:
            self.server.controller.get_model(name)
        except (KeyError, ValueError) as exc:
            raise _ApiError(400, "bad_request", str(exc).strip("'\"")) from None
        return {"ok": True}

    def _classify(self) -> SidecarRecord:
        body = self._read_json_body()
        if not isinstance(body, dict) or set(body) != {"path"}:
            raise _ApiError(400, "bad_request", 'expected {"path": "/absolute/path"}')
        raw = body["path"]
        if not isinstance(raw, str) or not raw or "\x00" in raw:
            raise _ApiError(400, "bad_request", "path must be a non-empty string")
        path = Path(raw)
        # The service's working directory means nothing to the caller.
        if not path.is_absolute():
            raise _ApiError(400, "bad_path", "path must be absolute")
        try:
            return self.server.controller.classify(path)
        except FileNotFoundError as exc:
            raise _ApiError(404, "file_not_found", str(exc) or f"no such file: {raw}") from None
        except ValueError as exc:
            raise _ApiError(400, "bad_path", str(exc) or f"cannot classify: {raw}") from None
        except RuntimeError as exc:
            # Not the request's fault: e.g. the model is still loading or failed to load.
            raise _ApiError(503, "unavailable", str(exc) or "cannot classify now") from None

    # --- responses -----------------------------------------------------------------------

    def _send_json(
        self, status: int, payload: object, headers: dict[str, str] | None = None
    ) -> None:
        # ASCII escapes: a non-UTF-8 file name (a lone surrogate) cannot break an answer.
        body = json.dumps(payload, default=str, ensure_ascii=True).encode("ascii")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            with contextlib.suppress(OSError):
                self.wfile.write(body)

    def _send_error_json(self, status: int, code: ErrorCode, message: str) -> None:
        headers = {}
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="dropsight"'
        if status == 405:
            route = self._route()
            if route is not None:
                headers["Allow"] = ROUTES[route]
        body: ApiErrorBody = {"error": {"code": code, "message": message}}
        self._send_json(status, body, headers)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors from the stdlib parser, answered as JSON too."""
        self.close_connection = True
        # The stdlib calls this before a request line is parsed (command None or unset).
        if not isinstance(getattr(self, "command", None), str):
            self.command = ""
        # Unparsable lines count as HTTP/0.9, which has no status line; nobody speaks that.
        self.request_version = self.protocol_version
        text = message or self.responses.get(code, ("error",))[0]
        body: ApiErrorBody = {"error": {"code": "http_error", "message": text}}
        with contextlib.suppress(OSError):
            self._send_json(code, body)

    def log_message(self, format: str, *args: Any) -> None:
        """Request lines go to the debug log, never to stderr."""
        log.debug("control API %s: " + format, self.address_string(), *args)


class ControlServer:
    """Serves the control API for one Controller and publishes control.json while running."""

    def __init__(self, controller: Controller, limits: Limits | None = None) -> None:
        self._controller = controller
        self._limits = limits or Limits()
        self._token = secrets.token_urlsafe(32)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        """The bound port (only valid while running)."""
        if self._server is None:
            raise RuntimeError("control server is not running")
        return int(self._server.server_address[1])

    @property
    def token(self) -> str:
        """The bearer token clients must send."""
        return self._token

    def start(self) -> None:
        """Bind 127.0.0.1 on a free port, serve in a thread, write control.json."""
        with self._lock:
            if self._server is not None:
                return
            server = _Server(self._controller, self._token, self._limits)
            thread = threading.Thread(
                target=server.gate.run,
                name="dropsight-control",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
            try:
                write_private_json(control_file(), self._endpoint_info())
            except BaseException:
                self._shutdown_locked(STOP_TIMEOUT_S)
                raise
            log.info("control API listening on 127.0.0.1:%d", self.port)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Remove control.json (if still ours), stop serving, join threads within a timeout."""
        with self._lock:
            if self._server is None:
                return
            self._remove_control_file()
            self._shutdown_locked(timeout_s)

    def _shutdown_locked(self, timeout_s: float) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        deadline = time.monotonic() + timeout_s
        server.stopping.set()
        server.gate.stop()
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
        server.server_close()
        with server.threads_lock:
            pending = list(server.handler_threads)
            sockets = list(server.handler_threads.values())
        # A request whose body is still coming would hold its thread until its deadline.
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RD)
        if thread is not None:
            pending.append(thread)  # joined above; warned about below if still alive
        for t in pending:
            # stop() may be called from a request handler (the API's own stop endpoint).
            if t is threading.current_thread():
                continue
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                log.warning("control API thread %s did not stop within %.1fs", t.name, timeout_s)

    def _endpoint_info(self) -> ControlInfo:
        return {"port": self.port, "token": self._token, "pid": os.getpid(), "version": __version__}

    def _remove_control_file(self) -> None:
        path = control_file()
        try:
            current = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        # Another instance may have replaced the file since; leave theirs alone.
        if (
            isinstance(current, dict)
            and current.get("token") == self._token
            and current.get("pid") == os.getpid()
        ):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def __enter__(self) -> ControlServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _token_matches(header: str, token: str) -> bool:
    """Whether an Authorization header value is `Bearer <token>` (constant-time compare)."""
    scheme, _, given = header.strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8", "replace"), token.encode()
    )
