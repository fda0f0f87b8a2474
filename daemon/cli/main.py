"""The `dropsight` command line: the parser, the service and tray commands, error handling.

Each command group lives in a module of its own beside this one (classify, control, xmp,
config, models, library, export, backfill); bench/ brings its own arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from pathlib import Path

from dropsight.config.settings import MODEL_NAMES, ConfigError, Settings
from dropsight.daemon import __version__
from dropsight.daemon.cli import (
    backfill,
    classify,
    config,
    control,
    export,
    library,
    models,
    xmp,
)
from dropsight.daemon.cli.common import ExitCode, settings_for, with_config
from dropsight.daemon.core import paths

log = logging.getLogger("dropsight")


def cmd_service(args: argparse.Namespace) -> int:
    """`dropsight service`: run the folder-watching service in the foreground."""
    from dropsight.daemon.service.startup import not_started, run_service

    def load() -> Settings:
        return settings_for(args).with_overrides(watch=args.watch, model=args.model, xmp=args.xmp)

    try:
        settings = load()
    except ConfigError as exc:
        not_started(f"config error: {exc}")
        raise  # printed by main() like every config error
    return run_service(settings, reload_settings=load)


def cmd_tray(args: argparse.Namespace) -> int:
    """`dropsight tray`: the tray icon (a separate UI package, loaded only here)."""
    # Imported by name: the daemon package never depends on the UI at import time.
    tray_app = importlib.import_module("dropsight.tray.app")
    result: int = tray_app.main(args.tray_args)
    return result


def cmd_autostart(args: argparse.Namespace) -> int:
    """`dropsight autostart enable|disable|status`."""
    autostart = importlib.import_module("dropsight.tray.autostart")
    result: int = autostart.autostart_command(args.action)
    return result


def cmd_bench(args: argparse.Namespace) -> int:
    """`dropsight bench`: print throughput and latency figures."""
    from dropsight.daemon.bench.main import run_bench

    return run_bench(args)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also the source of `--help`)."""
    parser = argparse.ArgumentParser(
        prog="dropsight",
        description="Label photos with an ImageNet classifier; watch folders and write "
        "IMG.jpg.json sidecars next to new photos.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    classify.add_arguments(sub, with_config)

    s = sub.add_parser(
        "service",
        help="watch folders and write sidecars (foreground)",
        description="Watch folders and write a sidecar JSON next to every finished photo. "
        "Runs until SIGTERM/Ctrl+C or `dropsight stop`. With no folder configured or given, "
        f"watches {paths.default_watch_folder()}.",
    )
    s.add_argument(
        "--watch",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="a folder to watch (repeatable; added to watch.folders from the config)",
    )
    s.add_argument("--model", choices=MODEL_NAMES, help="model to use (default: from config)")
    s.add_argument(
        "--xmp",
        action="store_true",
        help="also write keywords to XMP sidecars for photo managers (output.xmp = beside)",
    )
    with_config(s)
    s.set_defaults(func=cmd_service)

    t = sub.add_parser("tray", help="show the tray icon (starts the service if needed)")
    t.add_argument("tray_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    t.set_defaults(func=cmd_tray)

    control.add_arguments(sub, with_config)

    a = sub.add_parser("autostart", help="start Dropsight at login (enable/disable/status)")
    a.add_argument("action", choices=("enable", "disable", "status"))
    a.set_defaults(func=cmd_autostart)

    # Each capability's commands live beside it.
    for module in (config, models, library, export, backfill):
        module.add_arguments(sub, with_config)
    control.add_event_arguments(sub, with_config)
    xmp.add_arguments(sub, with_config)

    b = sub.add_parser("bench", help="measure throughput and latency (prints numbers)")
    from dropsight.daemon.bench.main import add_arguments

    add_arguments(b)
    with_config(b)
    b.set_defaults(func=cmd_bench)
    return parser


def _version() -> str:
    """The version line, with the models this build carries."""
    from dropsight.daemon.models.store import bundled_models

    carried = bundled_models()
    return f"dropsight {__version__}" + (f" (models: {', '.join(carried)})" if carried else "")


def _reader_gone() -> int:
    """Stdout's reader went away (`| head`): stop quietly, as Unix tools do.

    Python's recipe (docs: signal, "Note on SIGPIPE"): point stdout at devnull, so the flush
    at exit cannot fail again and print a traceback.
    """
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return ExitCode.READER_GONE


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `dropsight` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["tray"]:
        # The tray parses its own options (argparse.REMAINDER drops leading ones).
        return cmd_tray(argparse.Namespace(tray_args=argv[1:]))
    args = build_parser().parse_args(argv)
    if sys.stderr is not None:
        verbose = getattr(args, "verbose", False)
        logging.basicConfig(
            level=logging.INFO if verbose else logging.WARNING, format="dropsight: %(message)s"
        )
        # A one-time model conversion takes a while: say what is happening.
        logging.getLogger("dropsight.daemon.models").setLevel(logging.INFO)
    if sys.stdout is not None and hasattr(sys.stdout, "reconfigure"):
        # File names that are not UTF-8 print as their original bytes instead of failing.
        sys.stdout.reconfigure(errors="surrogateescape")
    try:
        result: int = args.func(args)
        if sys.stdout is not None:
            sys.stdout.flush()  # a reader gone shows here, not in Python's flush at exit
    except BrokenPipeError:
        return _reader_gone()
    except ConfigError as exc:
        print(f"dropsight: config error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except Exception as exc:
        from dropsight.daemon.models.store import ModelUnavailable
        from dropsight.daemon.models.weights import WeightsNotFound

        if isinstance(exc, WeightsNotFound | ModelUnavailable):
            print(f"dropsight: {exc}", file=sys.stderr)
            return ExitCode.FAILED
        raise
    return result
