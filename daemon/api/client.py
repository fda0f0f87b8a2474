"""Client of the control API: typed answers (the contracts' types), checked once as they arrive."""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TypeVar

from dropsight.daemon.api.server import control_file
from dropsight.daemon.api.wire import WireError, narrow
from dropsight.daemon.contracts import (
    API_PREFIX,
    ROUTES,
    ApiErrorBody,
    ErrorCode,
    OkAnswer,
    PingAnswer,
    ResultEvent,
    Route,
    SidecarRecord,
    Status,
)
from dropsight.daemon.core.invocation import command_name

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 1.0
REQUEST_TIMEOUT_S = 5.0
# Classifying may first have to load (or convert) a model in the service.
CLASSIFY_TIMEOUT_S = 300.0
EVENTS_TIMEOUT_S = 60.0  # an event stream with no heartbeat for this long is dead
T = TypeVar("T")


def not_running_message() -> str:
    """What to tell a person when no service answers, with the commands that start one."""
    me = command_name()
    return f"Dropsight is not running (start it with `{me} service` or `{me} tray`)"


class ServiceError(Exception):
    """The service answered with an error, or the answer made no sense."""

    def __init__(
        self, message: str, status: int | None = None, code: ErrorCode | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ServiceNotRunning(ServiceError):
    """No service answers: control.json is missing, unreadable or stale."""


class ServiceBusy(ServiceError):
    """The service runs but has no slot free for this request just now: try again."""


class ServiceClient:
    """Talks to the running service over its loopback control API."""

    def __init__(self, port: int, token: str, pid: int | None = None) -> None:
        self.port = port
        self.pid = pid
        self._token = token

    @classmethod
    def connect(cls, control_path: Path | None = None) -> ServiceClient:
        """Read control.json and check that the service behind it answers."""
        path = control_path or control_file()
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ServiceNotRunning(f"{not_running_message()}: no {path}") from None
        except (OSError, ValueError) as exc:
            raise ServiceNotRunning(f"{not_running_message()}: unreadable {path}: {exc}") from None
        port, token, pid = _parse_control_info(info, path)
        client = cls(port, token, pid)
        # A crash leaves control.json behind: only an authenticated answer proves it is live
        # (the port may be closed, or reused by an unrelated program). Not the status: a
        # snapshot that fails to build must not make `stop` think nothing is running.
        try:
            client.ping()
        except ServiceNotRunning:
            raise
        except ServiceError as exc:
            if exc.code in ("timeout", "busy"):  # alive but busy: not stale
                raise
            raise ServiceNotRunning(
                f"{not_running_message()}: stale {path} (port {port}: {exc})"
            ) from None
        return client

    # --- API -----------------------------------------------------------------------------

    def ping(self) -> PingAnswer:
        """Check that the service answers with our token; raises ServiceError if not."""
        try:
            return self._call("ping", PingAnswer)
        except ServiceError as exc:
            # A service from before 0.3 has no ping; its 404 still came after the token check,
            # but an unrelated server may say 404 too: its status is the proof, as it was.
            if exc.code != "not_found":
                raise
            status = self.status()
            return {"ok": True, "pid": status["pid"], "version": status["version"]}

    def status(self) -> Status:
        """The service's status snapshot."""
        return self._call("status", Status)

    def pause(self) -> None:
        """Stop taking new jobs until resumed."""
        self._call("pause", OkAnswer, {})

    def resume(self) -> None:
        """Continue after pause."""
        self._call("resume", OkAnswer, {})

    def rescan(self) -> None:
        """Scan the watched folders now."""
        self._call("rescan", OkAnswer, {})

    def stop(self) -> None:
        """Ask the service to shut down (returns at once)."""
        self._call("stop", OkAnswer, {})

    def relabel(self) -> None:
        """Label photos labelled by another model again, with the current one."""
        self._call("relabel", OkAnswer, {})

    def reload(self) -> None:
        """Make the service read its config file again."""
        self._call("reload", OkAnswer, {})

    def reload_model(self) -> None:
        """Make the service look for the configured model again (its weights just arrived)."""
        self._call("models/reload", OkAnswer, {})

    def get_model(self, name: str) -> None:
        """Ask the service to download a model's weights and switch to it."""
        self._call("models/get", OkAnswer, {"name": name})

    def classify(self, path: Path | str) -> SidecarRecord:
        """Classify one file through the service; returns its sidecar record."""
        absolute = str(Path(path).expanduser().absolute())
        try:
            return self._call(
                "classify", SidecarRecord, {"path": absolute}, timeout_s=CLASSIFY_TIMEOUT_S
            )
        except ServiceError as exc:
            # Mirror the Controller protocol: bad paths raise what the service raised.
            if exc.code == "file_not_found":
                raise FileNotFoundError(str(exc)) from None
            if exc.code == "bad_path":
                raise ValueError(str(exc)) from None
            raise

    def events(self) -> Iterator[ResultEvent]:
        """Live result events as they happen (ends when the service stops)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=CONNECT_TIMEOUT_S)
        try:
            try:
                conn.connect()
            except OSError as exc:
                raise ServiceNotRunning(f"{not_running_message()} ({exc})") from None
            if conn.sock is not None:
                conn.sock.settimeout(EVENTS_TIMEOUT_S)  # heartbeats come every 15 s
            headers = {"Authorization": f"Bearer {self._token}", "Accept": "text/event-stream"}
            conn.request(ROUTES["events"], API_PREFIX + "events", headers=headers)
            response = conn.getresponse()
            if response.status == 503:
                raise ServiceBusy("events: too many event streams; try again", 503, "busy")
            if response.status != 200:
                raise ServiceError(f"events: HTTP {response.status}", response.status)
            for raw in response:
                line = raw.decode("utf-8").rstrip("\r\n")
                if line.startswith("data: "):
                    yield _narrow(json.loads(line[len("data: ") :]), ResultEvent, "event")
        except (OSError, http.client.HTTPException):
            return  # the service went away: the stream ends
        finally:
            conn.close()

    # --- transport -----------------------------------------------------------------------

    def _call(
        self,
        route: Route,
        answer: type[T],
        payload: Mapping[str, str] | None = None,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> T:
        """Send one request by the route table; its answer checked against `answer`."""
        return _narrow(self._request(route, payload, timeout_s), answer, route)

    def _request(self, route: Route, payload: Mapping[str, str] | None, timeout_s: float) -> object:
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/json",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        # http.client sends Host: 127.0.0.1:PORT, which the service requires.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=CONNECT_TIMEOUT_S)
        try:
            try:
                conn.connect()
            except OSError as exc:
                raise ServiceNotRunning(
                    f"{not_running_message()}: nothing answers on port {self.port} ({exc})"
                ) from None
            if conn.sock is not None:
                conn.sock.settimeout(timeout_s)
            try:
                conn.request(ROUTES[route], API_PREFIX + route, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except TimeoutError:
                raise ServiceError(
                    f"{route}: no answer within {timeout_s:g}s", code="timeout"
                ) from None
            except (OSError, http.client.HTTPException) as exc:
                raise ServiceNotRunning(
                    f"{not_running_message()}: connection lost ({exc})"
                ) from None
        finally:
            conn.close()
        try:
            decoded: object = json.loads(data.decode("utf-8")) if data else None
        except (UnicodeDecodeError, ValueError):
            raise ServiceError(
                f"{route}: answer is not JSON (HTTP {response.status})", response.status
            ) from None
        if response.status != 200:
            try:
                error = narrow(decoded, ApiErrorBody)["error"]
            except WireError:  # not our service's error shape
                code, message = None, None
            else:
                code, message = error["code"], error["message"]
            kind = ServiceBusy if code == "busy" else ServiceError
            raise kind(
                f"{route}: HTTP {response.status}: {message or response.reason}",
                response.status,
                code,
            )
        return decoded


def _narrow(value: object, kind: type[T], what: str) -> T:
    """An answer as its contract type; one that is not is the service's error."""
    try:
        return narrow(value, kind, what)
    except WireError as exc:
        raise ServiceError(str(exc)) from None


def _parse_control_info(info: object, path: Path) -> tuple[int, str, int | None]:
    if not isinstance(info, dict):
        raise ServiceNotRunning(f"{not_running_message()}: malformed {path}")
    port, token, pid = info.get("port"), info.get("token"), info.get("pid")
    if not isinstance(port, int) or not 0 < port < 65536 or not isinstance(token, str):
        raise ServiceNotRunning(f"{not_running_message()}: malformed {path}")
    return port, token, pid if isinstance(pid, int) else None
