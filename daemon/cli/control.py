"""`dropsight status|pause|resume|rescan|stop` and `dropsight events`: the running service."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from dropsight.daemon.api.client import (
    ServiceBusy,
    ServiceClient,
    ServiceError,
    ServiceNotRunning,
    not_running_message,
)
from dropsight.daemon.cli.common import ExitCode
from dropsight.daemon.contracts import NOT_RUNNING_STATE, RecentResult, ResultEvent, Status
from dropsight.daemon.core import surrogates
from dropsight.daemon.core.invocation import command_name
from dropsight.daemon.service import startfail

log = logging.getLogger(__name__)

COMMANDS = ("status", "pause", "resume", "rescan", "stop")
_HELP = {
    "status": "show what the running service is doing",
    "pause": "pause classification",
    "resume": "resume classification",
    "rescan": "rescan the watched folders now",
    "stop": "stop the running service",
}
_DONE_MESSAGES = {
    "pause": "Paused: new photos are queued but not classified until `{me} resume`.",
    "resume": "Resumed.",
    "rescan": "Rescan started.",
    "stop": "Stopping the service.",
}


def add_arguments(sub: Any, _with_config: Callable[[Any], None]) -> None:
    """The control commands: status, pause, resume, rescan, stop."""
    for name in COMMANDS:
        p = sub.add_parser(name, help=_HELP[name])
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func=cmd_control)


def add_event_arguments(sub: Any, _with_config: Callable[[Any], None]) -> None:
    """The `events` sub-command."""
    ev = sub.add_parser(
        "events",
        help="print each result as the running service labels it",
        description="One line per labelled photo, as it happens, until the service stops or "
        "Ctrl+C. --json: one JSON object per line (photo, sidecar, status, name, class_index, "
        "score, categories, model, processed_at, error), e.g. for `| jq`.",
    )
    ev.add_argument("--json", action="store_true", help="one JSON object per line")
    ev.set_defaults(func=cmd_events)


def cmd_control(args: argparse.Namespace) -> int:
    """`dropsight status|pause|resume|rescan|stop`."""
    return run_command(args.command, args.json)


def run_command(name: str, as_json: bool) -> int:
    """Run `dropsight status|pause|resume|rescan|stop [--json]`; returns the exit code."""
    out, err = sys.stdout, sys.stderr
    if name not in COMMANDS:
        _write(err, f"dropsight: unknown command {name!r} (one of: {', '.join(COMMANDS)})")
        return ExitCode.USAGE
    try:
        client = ServiceClient.connect()
        if name == "status":
            status = client.status()
            _write(out, json.dumps(status, indent=2) if as_json else format_status(status))
            return ExitCode.OK
        _actions(client)[name]()
    except ServiceBusy as exc:
        _write(err, busy_message(exc))
        return ExitCode.SERVICE_BUSY
    except ServiceNotRunning as exc:
        log.debug("%s", exc)
        failure = startfail.read() if name == "status" else None
        if name == "status" and as_json:  # scripts get JSON on stdout either way
            answer: dict[str, object] = {"state": NOT_RUNNING_STATE}
            if failure is not None:
                answer["start_failure"] = {"time": _iso(failure.time), "message": failure.message}
            _write(out, json.dumps(answer))
        _write(err, not_running_message())
        if failure is not None:  # the tray or login started it: its stderr went nowhere
            _write(err, f"The last start failed ({_iso(failure.time)}): {failure.message}")
        return ExitCode.NOT_RUNNING
    except ServiceError as exc:
        _write(err, f"dropsight: {exc}")
        return ExitCode.FAILED
    if as_json:
        _write(out, json.dumps({"ok": True, "command": name}))
    else:
        _write(out, _DONE_MESSAGES[name].format(me=command_name()))
    return ExitCode.OK


def busy_message(exc: ServiceError) -> str:
    """What a control command says when the service has no slot free for it."""
    return f"Dropsight is running but busy ({exc}); try again in a moment"


def _actions(client: ServiceClient) -> dict[str, Callable[[], None]]:
    return {
        "pause": client.pause,
        "resume": client.resume,
        "rescan": client.rescan,
        "stop": client.stop,
    }


def format_status(status: Status) -> str:
    """A human summary of a status snapshot, a few lines long."""
    odd = status.get("odd_files", 0)
    lines = [
        f"Dropsight {status['version']} (pid {status['pid']}): {status['state']}",
        f"  Processed: {status['done']} done, {status['queued']} queued, {status['failed']} failed"
        + (f", {odd} odd files (a .json that is not our sidecar: photo skipped)" if odd else ""),
    ]
    if status["current"]:
        lines.append(f"  Current:   {status['current']}")
    model = status["model"]
    # "vgg16 on OpenVINO (fp32), 9 img/s"; older services only say the runtime.
    running = model.get("runtime_summary") or f"{model['name']} ({model['runtime']})"
    text = f"  Model:     {running}"
    if model["fallback"]:  # a calm state (README): the stand-in labels until the weights come
        text += f", standing in for {model['requested']}"
        if model.get("missing"):
            text += (
                f" until its weights are here (`{command_name()} models get {model['requested']}`)"
            )
        else:
            text += f" ({model['requested']} could not be loaded: see the log)"
    lines.append(text)
    output = status.get("output")
    if output and output["xmp"] == "beside":
        lines.append(f"  XMP:       keywords beside each photo ({output['xmp_name']})")
    for folder in status["folders"]:
        health = "ok" if folder["healthy"] else f"ERROR: {folder['error'] or 'unhealthy'}"
        lines.append(f"  Watching:  {folder['path']} ({health})")
    if status["errors"]:
        lines.append("  Last errors:")
        for error in status["errors"][:5]:  # newest first
            where = f" {error['path']}:" if error["path"] else ""
            message = error["message"].replace("\n", "\n      ")
            lines.append(f"    {error['time']}{where} {message}")
    if status["recent"]:
        lines.append("  Recent:")
        for item in status["recent"][:5]:
            lines.append(f"    {Path(item['image']).name}: {_result_text(item)}")
    if status["config_path"]:
        lines.append(f"  Config:    {status['config_path']}")
    if status["log_path"]:
        lines.append(f"  Log:       {status['log_path']}")
    return "\n".join(lines)


def _iso(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch_s))


def _result_text(item: RecentResult) -> str:
    if item["status"] != "ok":
        return "error"
    score = item["score"]
    percent = f" {score * 100:.1f}%" if score is not None else ""
    return f"{item['label'] or '?'}{percent}"


def cmd_events(args: argparse.Namespace) -> int:
    """`dropsight events [--json]`: results as they happen."""
    try:
        client = ServiceClient.connect()
        for event in client.events():
            print(event_line(event, args.json), flush=True)
    except ServiceBusy as exc:
        print(busy_message(exc), file=sys.stderr)
        return ExitCode.SERVICE_BUSY
    except ServiceNotRunning:
        print(not_running_message(), file=sys.stderr)
        return ExitCode.NOT_RUNNING
    return ExitCode.OK


def event_line(event: ResultEvent, as_json: bool) -> str:
    """One result event as `dropsight events` prints it."""
    if as_json:
        return surrogates.escape(json.dumps(event, ensure_ascii=False))
    if event["status"] == "ok":
        score = event["score"]
        percent = f" {score * 100:.0f}%" if score is not None else ""
        return f"{event['photo']}: {event['name'] or 'no label'}{percent}"
    return f"{event['photo']}: error: {event['error']}"


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
