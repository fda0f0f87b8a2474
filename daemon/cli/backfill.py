"""`dropsight backfill FOLDER...`: the command line of the batch job (daemon/backfill/local.py)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from dropsight.config.settings import MODEL_NAMES, Settings
from dropsight.daemon.backfill.local import Summary, run_local
from dropsight.daemon.cli.common import ExitCode, settings_for
from dropsight.daemon.core import paths
from dropsight.daemon.core.invocation import command_name
from dropsight.daemon.core.lock import Claimed, FolderClaims

log = logging.getLogger(__name__)


def add_arguments(sub: Any, with_config: Any) -> None:
    """The `backfill` sub-command."""
    b = sub.add_parser(
        "backfill",
        help="label every photo of an existing library (this machine or a Ray cluster)",
        description="Label every photo under the folders that has no current sidecar, with "
        "the service's rules (same skip rule, error sidecars, atomic writes; the library "
        "index and XMP files when enabled). Interrupted or killed, run it again: it does only "
        "what is left. It refuses (exit 4) while a running service labels the same folders "
        "(pause it with `dropsight pause`, or stop it); --dry-run always works.",
    )
    b.add_argument("folders", nargs="+", type=Path, metavar="FOLDER")
    b.add_argument("--model", choices=MODEL_NAMES, help="model to use (default: from config)")
    b.add_argument("--workers", type=int, default=0, metavar="N", help="cores to use (0: all)")
    b.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run on a Ray cluster (host:port), or `auto` for a local Ray "
        "(needs pip install 'dropsight[ray]')",
    )
    b.add_argument(
        "--ray-files",
        choices=("shared", "driver"),
        help="with --ray: `shared` (default), every node reads the photos and writes the "
        "sidecars at the same paths (a share mounted everywhere); `driver`, only this "
        "machine touches them: photos go to the nodes as bytes, results come back",
    )
    b.add_argument("--dry-run", action="store_true", help="only count what there is to do")
    b.add_argument("--json", action="store_true", help="print the summary as JSON")
    with_config(b)
    b.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    """Entry point of `dropsight backfill`."""
    roots = [f.expanduser().absolute() for f in args.folders]
    missing = [r for r in roots if not r.is_dir()]
    if missing:
        print(f"dropsight backfill: not a folder: {', '.join(map(str, missing))}", file=sys.stderr)
        return ExitCode.USAGE
    if args.ray_files and not args.ray:
        print("dropsight backfill: --ray-files needs --ray", file=sys.stderr)
        return ExitCode.USAGE
    if args.workers < 0:
        print("dropsight backfill: --workers must be 0 (all cores) or more", file=sys.stderr)
        return ExitCode.USAGE
    settings = settings_for(args).with_overrides(model=args.model)
    settings = replace(settings, service=replace(settings.service, cores=args.workers))
    busy = None if args.dry_run else service_labelling(roots)  # a dry run only counts
    if busy:
        print(f"dropsight backfill: {busy}", file=sys.stderr)
        return ExitCode.BUSY
    claims = FolderClaims(paths.state_dir() / "claims")
    try:
        if not args.dry_run:  # a dry run only counts
            claims.claim(roots)
    except Claimed as exc:
        print(f"dropsight backfill: {exc}", file=sys.stderr)
        return ExitCode.BUSY
    with claims:
        summary = _run(args, settings, roots)
    if isinstance(summary, int):
        return summary
    if args.json:
        print(json.dumps(summary.as_json()))
    elif args.dry_run:
        left = summary.found - summary.skipped
        print(f"{left} photos to label, {summary.skipped} already current (of {summary.found})")
    else:
        print(summary.text())
    if summary.unreachable:
        print(
            f"dropsight backfill: {summary.unreachable} photos are here but a Ray node could "
            "not read them: mount the library at the same path on every node, or run again "
            "with --ray-files driver",
            file=sys.stderr,
        )
    return ExitCode.FAILED if summary.failed or summary.unreachable else ExitCode.OK


def _run(args: argparse.Namespace, settings: Settings, roots: list[Path]) -> Summary | int:
    """Label what is left, locally or on Ray: the summary, or an exit code."""
    if args.ray:
        try:
            from dropsight.daemon.backfill.on_ray import RayUnavailable, run_ray
        except ImportError:  # the installed desktop app leaves the cluster backfill out
            print(
                "dropsight backfill: --ray is not part of the installed app; with Python, "
                "pip install 'dropsight[ray]' and run that dropsight",
                file=sys.stderr,
            )
            return ExitCode.USAGE
        try:
            return run_ray(
                settings, roots, args.ray, dry_run=args.dry_run, files=args.ray_files or "shared"
            )
        except RayUnavailable as exc:
            print(f"dropsight backfill: {exc}", file=sys.stderr)
            return ExitCode.USAGE
    return _local(settings, roots, dry_run=args.dry_run)


def _local(settings: Settings, roots: list[Path], *, dry_run: bool) -> Summary:
    from dropsight.daemon.runtime.classifier import open_classifier

    classifier = open_classifier(settings)  # says once when a stand-in labels
    return run_local(settings, roots, classifier, dry_run=dry_run)


def service_labelling(roots: list[Path]) -> str | None:
    """Why not to run now: a running, unpaused service watching any of these folders."""
    from dropsight.daemon.api.client import ServiceBusy, ServiceClient, ServiceError

    try:
        status = ServiceClient.connect().status()
    except ServiceBusy:
        return "a running service is too busy to say which folders it labels; try again"
    except ServiceError:
        return None
    if status.get("state") == "paused":
        return None
    watched = [Path(str(f.get("path"))) for f in status.get("folders") or []]
    overlap = [w for w in watched for r in roots if w == r or w in r.parents or r in w.parents]
    if not overlap:
        return None
    me = command_name()
    return (
        f"the running service (pid {status.get('pid')}) is labelling {overlap[0]}; "
        f"pause it first (`{me} pause`, then `{me} resume` after), or stop it "
        "(--dry-run counts what there is to do meanwhile)"
    )
