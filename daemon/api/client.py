"""Client of the control API, and the `dropsight status|pause|resume|rescan|stop` commands."""

from __future__ import annotations

import http.client
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from dropsight.daemon.api.server import control_file
from dropsight.daemon.contracts import NOT_RUNNING_STATE
from dropsight.daemon.core import surrogates

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 1.0
REQUEST_TIMEOUT_S = 5.0
# Classifying may first have to load (or convert) a model in the service.
CLASSIFY_TIMEOUT_S = 300.0
EVENTS_TIMEOUT_S = 60.0  # an event stream with no heartbeat for this long is dead
NOT_RUNNING_MESSAGE = (
    "Dropsight is not running (start it with `dropsight service` or `dropsight tray`)"
)
EXIT_NOT_RUNNING = 3
COMMANDS = ("status", "pause", "resume", "rescan", "stop")


class ServiceError(Exception):
    """The service answered with an error, or the answer made no sense."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ServiceNotRunning(ServiceError):
    """No service answers: control.json is missing, unreadable or stale."""


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
            raise ServiceNotRunning(f"{NOT_RUNNING_MESSAGE}: no {path}") from None
        except (OSError, ValueError) as exc:
            raise ServiceNotRunning(f"{NOT_RUNNING_MESSAGE}: unreadable {path}: {exc}") from None
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
            if exc.code == "timeout":  # alive but busy: not stale
                raise
            raise ServiceNotRunning(
                f"{NOT_RUNNING_MESSAGE}: stale {path} (port {port}: {exc})"
            ) from None
        return client

    # --- API -----------------------------------------------------------------------------

    def ping(self) -> None:
        """Check that the service answers with our token; raises ServiceError if not."""
        try:
            _expect_dict(self._request("GET", "ping"))
        except ServiceError as exc:
            # A service from before 0.3 has no ping; its 404 still came after the token check,
            # but an unrelated server may say 404 too: its status is the proof, as it was.
            if exc.code != "not_found":
                raise
            self.status()

    def status(self) -> dict[str, Any]:
        """The service's status snapshot."""
        return _expect_dict(self._request("GET", "status"))

    def pause(self) -> None:
        """Stop taking new jobs until resumed."""
        self._request("POST", "pause", {})

    def resume(self) -> None:
        """Continue after pause."""
        self._request("POST", "resume", {})

    def rescan(self) -> None:
        """Scan the watched folders now."""
        self._request("POST", "rescan", {})

    def stop(self) -> None:
        """Ask the service to shut down (returns at once)."""
        self._request("POST", "stop", {})

    def relabel(self) -> None:
        """Label photos labelled by another model again, with the current one."""
        self._request("POST", "relabel", {})

    def reload(self) -> None:
        """Make the service read its config file again."""
        self._request("POST", "reload", {})

    def reload_model(self) -> None:
        """Make the service look for the configured model again (its weights just arrived)."""
        self._request("POST", "models/reload", {})

    def get_model(self, name: str) -> None:
        """Ask the service to download a model's weights and switch to it."""
        self._request("POST", "models/get", {"name": name})

    def classify(self, path: Path | str) -> dict[str, Any]:
        """Classify one file through the service; returns a sidecar-shaped dict."""
        absolute = str(Path(path).expanduser().absolute())
        try:
            answer = self._request(
                "POST", "classify", {"path": absolute}, timeout_s=CLASSIFY_TIMEOUT_S
            )
        except ServiceError as exc:
            # Mirror the Controller protocol: bad paths raise what the service raised.
            if exc.code == "file_not_found":
                raise FileNotFoundError(str(exc)) from None
            if exc.code == "bad_path":
                raise ValueError(str(exc)) from None
            raise
        return _expect_dict(answer)

    def events(self) -> Iterator[dict[str, Any]]:
        """Live result events as they happen (ends when the service stops)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=CONNECT_TIMEOUT_S)
        try:
            try:
                conn.connect()
            except OSError as exc:
                raise ServiceNotRunning(f"{NOT_RUNNING_MESSAGE} ({exc})") from None
            if conn.sock is not None:
                conn.sock.settimeout(EVENTS_TIMEOUT_S)  # heartbeats come every 15 s
            headers = {"Authorization": f"Bearer {self._token}", "Accept": "text/event-stream"}
            conn.request("GET", "/v1/events", headers=headers)
            response = conn.getresponse()
            if response.status != 200:
                raise ServiceError(f"events: HTTP {response.status}", response.status)
            for raw in response:
                line = raw.decode("utf-8").rstrip("\r\n")
                if line.startswith("data: "):
                    yield _expect_dict(json.loads(line[len("data: ") :]))
        except (OSError, http.client.HTTPException):
            return  # the service went away: the stream ends
        finally:
            conn.close()

    # --- transport -----------------------------------------------------------------------

    def _request(
        self,
        method: str,
        endpoint: str,
        payload: dict[str, Any] | None = None,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> Any:
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
                    f"{NOT_RUNNING_MESSAGE}: nothing answers on port {self.port} ({exc})"
                ) from None
            if conn.sock is not None:
                conn.sock.settimeout(timeout_s)
            try:
                conn.request(method, f"/v1/{endpoint}", body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except TimeoutError:
                raise ServiceError(
                    f"{endpoint}: no answer within {timeout_s:g}s", code="timeout"
                ) from None
            except (OSError, http.client.HTTPException) as exc:
                raise ServiceNotRunning(f"{NOT_RUNNING_MESSAGE}: connection lost ({exc})") from None
        finally:
            conn.close()
        try:
            decoded = json.loads(data.decode("utf-8")) if data else None
        except (UnicodeDecodeError, ValueError):
            raise ServiceError(
                f"{endpoint}: answer is not JSON (HTTP {response.status})", response.status
            ) from None
        if response.status != 200:
            error = decoded.get("error") if isinstance(decoded, dict) else None
            code = error.get("code") if isinstance(error, dict) else None
            message = error.get("message") if isinstance(error, dict) else None
            raise ServiceError(
                f"{endpoint}: HTTP {response.status}: {message or response.reason}",
                response.status,
                code if isinstance(code, str) else None,
            )
        return decoded


def _parse_control_info(info: Any, path: Path) -> tuple[int, str, int | None]:
    if not isinstance(info, dict):
        raise ServiceNotRunning(f"{NOT_RUNNING_MESSAGE}: malformed {path}")
    port, token, pid = info.get("port"), info.get("token"), info.get("pid")
    if not isinstance(port, int) or not 0 < port < 65536 or not isinstance(token, str):
        raise ServiceNotRunning(f"{NOT_RUNNING_MESSAGE}: malformed {path}")
    return port, token, pid if isinstance(pid, int) else None


def _expect_dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ServiceError("answer is not a JSON object")
    return value


# --- CLI ---------------------------------------------------------------------------------


def run_command(name: str, as_json: bool) -> int:
    """Run `dropsight status|pause|resume|rescan|stop [--json]`; returns the exit code."""
    out, err = sys.stdout, sys.stderr
    if name not in COMMANDS:
        _write(err, f"dropsight: unknown command {name!r} (one of: {', '.join(COMMANDS)})")
        return 2
    try:
        client = ServiceClient.connect()
        if name == "status":
            status = client.status()
            _write(out, json.dumps(status, indent=2) if as_json else format_status(status))
            return 0
        getattr(client, name)()
    except ServiceNotRunning as exc:
        log.debug("%s", exc)
        if name == "status" and as_json:  # scripts get JSON on stdout either way
            _write(out, json.dumps({"state": NOT_RUNNING_STATE}))
        _write(err, NOT_RUNNING_MESSAGE)
        return EXIT_NOT_RUNNING
    except ServiceError as exc:
        _write(err, f"dropsight: {exc}")
        return 1
    if as_json:
        _write(out, json.dumps({"ok": True, "command": name}))
    else:
        _write(out, _DONE_MESSAGES[name])
    return 0


_DONE_MESSAGES = {
    "pause": "Paused: new photos are queued but not classified until `dropsight resume`.",
    "resume": "Resumed.",
    "rescan": "Rescan started.",
    "stop": "Stopping the service.",
}


def format_status(status: dict[str, Any]) -> str:
    """A human summary of a status snapshot, a few lines long."""
    lines = [
        f"Dropsight {status.get('version', '?')} (pid {status.get('pid', '?')}): "
        f"{status.get('state', 'unknown')}",
        f"  Processed: {status.get('done', 0)} done, {status.get('queued', 0)} queued, "
        f"{status.get('failed', 0)} failed",
    ]
    if status.get("current"):
        lines.append(f"  Current:   {status['current']}")
    model = status.get("model") or {}
    if model:
        text = f"  Model:     {model.get('name', '?')} ({model.get('runtime', '?')})"
        if model.get("fallback"):
            text += f"  WARNING: fallback, {model.get('requested', '?')} could not be loaded"
        lines.append(text)
    output = status.get("output") or {}
    if output.get("xmp") == "beside":
        lines.append(f"  XMP:       keywords beside each photo ({output.get('xmp_name')})")
    for folder in status.get("folders") or []:
        health = "ok" if folder.get("healthy") else f"ERROR: {folder.get('error') or 'unhealthy'}"
        lines.append(f"  Watching:  {folder.get('path', '?')} ({health})")
    errors = status.get("errors") or []
    if errors:
        lines.append("  Last errors:")
        for error in errors[:5]:  # newest first
            where = f" {error['path']}:" if error.get("path") else ""
            message = str(error.get("message", "")).replace("\n", "\n      ")
            lines.append(f"    {error.get('time', '')}{where} {message}")
    recent = status.get("recent") or []
    if recent:
        lines.append("  Recent:")
        for item in recent[:5]:
            lines.append(f"    {Path(str(item.get('image', '?'))).name}: {_result_text(item)}")
    if status.get("config_path"):
        lines.append(f"  Config:    {status['config_path']}")
    if status.get("log_path"):
        lines.append(f"  Log:       {status['log_path']}")
    return "\n".join(lines)


def _result_text(item: dict[str, Any]) -> str:
    if item.get("status") != "ok":
        return "error"
    score = item.get("score")
    percent = f" {score * 100:.1f}%" if isinstance(score, int | float) else ""
    return f"{item.get('label') or '?'}{percent}"


def _write(stream: TextIO | None, text: str) -> None:
    # Frozen windowed builds have no stdout/stderr at all.
    if stream is None:
        return
    # Folder and photo names that are not UTF-8 print as \udcXX escapes, as in `status
    # --json`, the sidecars and the log: never raw bytes that break text readers, never a
    # crash on a stream that takes no surrogates; characters the stream's encoding lacks
    # become escapes too.
    line = surrogates.escape(text) + "\n"
    encoding = getattr(stream, "encoding", None) or "utf-8"
    stream.write(line.encode(encoding, "backslashreplace").decode(encoding, "replace"))
