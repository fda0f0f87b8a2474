"""The `dropsight` command line: classify, service, tray, control commands, bench."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from dropsight.config.settings import MODEL_NAMES, RESIZE_POLICIES, ConfigError, Settings
from dropsight.config.settings import load as load_settings
from dropsight.daemon import __version__
from dropsight.daemon.contracts import SidecarRecord
from dropsight.daemon.core import paths

log = logging.getLogger("dropsight")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def settings_for(args: argparse.Namespace) -> Settings:
    """The settings `--config` (or the default config file) gives."""
    path = args.config if args.config is not None else paths.config_file()
    if args.config is not None and not args.config.is_file():
        raise ConfigError(f"{args.config}: config file not found")
    return load_settings(path)


def _expand_inputs(inputs: Sequence[Path], settings: Settings) -> Iterator[Path]:
    """Files as given, folders walked recursively for photos; missing paths passed through."""
    from dropsight.daemon.photos.filter import PhotoFilter

    photo_filter = PhotoFilter.from_settings(settings.watch)
    for p in inputs:
        if p.is_dir():
            yield from photo_filter.walk(p, recursive=True)
        else:
            yield p  # a missing or non-image file becomes an error record, not a crash


def _print_human(record: SidecarRecord) -> None:
    path = record["image"]["path"]
    if record["error"] is not None:
        print(f"{path}: error: {record['error']['message']}", file=sys.stderr)
        return
    print(f"{path}  ({record['model']['name']})")
    for p in record["predictions"]:
        print(f"  {p['rank']}. {p.get('name', p['label']):<28} {p['score'] * 100:6.2f}%")
    if record.get("categories"):
        print(f"  categories: {', '.join(record['categories'])}")


def cmd_classify(args: argparse.Namespace) -> int:
    """`dropsight classify`: label files or folders and print the results."""
    from dataclasses import replace

    from dropsight.daemon.pipeline.stages import Options, classify_paths
    from dropsight.daemon.runtime.classifier import load_classifier

    settings = settings_for(args)
    model = replace(
        settings.model,
        name=args.model or settings.model.name,
        top_k=args.top or settings.model.top_k,
        resize=args.resize or settings.model.resize,
        allow_download=settings.model.allow_download or args.download,
        # An explicit --model means exactly that model: no silent fallback.
        fallback="" if args.model else settings.model.fallback,
    )
    settings = replace(settings, model=model)
    classifier = load_classifier(settings)
    info = classifier.info
    if info.is_fallback and args.verbose:
        print(
            f"dropsight: why {info.requested} is not used: {info.fallback_reason}", file=sys.stderr
        )
    failed = 0
    options = Options.of(settings)
    for record in classify_paths(classifier, _expand_inputs(args.paths, settings), options):
        failed += record["status"] != "ok"
        if args.json:
            print(json.dumps(record, ensure_ascii=True), flush=True)
        else:
            _print_human(record)
    return EXIT_FAILED if failed else EXIT_OK


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


def cmd_control(args: argparse.Namespace) -> int:
    """`dropsight status|pause|resume|rescan|stop`."""
    from dropsight.daemon.api.client import run_command

    return run_command(args.command, args.json)


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


def cmd_events(args: argparse.Namespace) -> int:
    """`dropsight events [--json]`: results as they happen."""
    from dropsight.daemon.api.client import NOT_RUNNING_MESSAGE, ServiceClient, ServiceNotRunning

    try:
        client = ServiceClient.connect()
        for event in client.events():
            if args.json:
                line = json.dumps(event, ensure_ascii=False)
            elif event.get("status") == "ok":
                score = event.get("score")
                percent = f" {score * 100:.0f}%" if isinstance(score, int | float) else ""
                line = f"{event['photo']}: {event.get('name') or 'no label'}{percent}"
            else:
                line = f"{event['photo']}: error: {event.get('error')}"
            print(line, flush=True)
    except ServiceNotRunning:
        print(NOT_RUNNING_MESSAGE, file=sys.stderr)
        return 3
    return EXIT_OK


def cmd_xmp(args: argparse.Namespace) -> int:
    """`dropsight xmp write|remove [FOLDER...]`."""
    from dropsight.daemon.outputs.xmp.sync import xmp_command

    return xmp_command(settings_for(args), args.action, args.folders)


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

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config",
            type=Path,
            help=f"TOML config file (default: {paths.config_file()})",
        )

    c = sub.add_parser("classify", help="label image files or folders and print the top-k")
    c.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files or folders")
    c.add_argument("--model", choices=MODEL_NAMES, help="model to use (default: from config)")
    c.add_argument("--top", type=int, metavar="K", help="how many labels per image")
    c.add_argument("--json", action="store_true", help="print one sidecar-shaped JSON per line")
    c.add_argument("--resize", choices=RESIZE_POLICIES, help="crop (default) or squash")
    c.add_argument(
        "--download", action="store_true", help="allow a one-time download of VGG16 weights"
    )
    c.add_argument(
        "--verbose", action="store_true", help="explain in full why a model is not available"
    )
    with_config(c)
    c.set_defaults(func=cmd_classify)

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

    for name, text in (
        ("status", "show what the running service is doing"),
        ("pause", "pause classification"),
        ("resume", "resume classification"),
        ("rescan", "rescan the watched folders now"),
        ("stop", "stop the running service"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func=cmd_control)

    a = sub.add_parser("autostart", help="start Dropsight at login (enable/disable/status)")
    a.add_argument("action", choices=("enable", "disable", "status"))
    a.set_defaults(func=cmd_autostart)

    # Each capability's commands live beside it.
    for module in ("config", "models", "library", "backfill"):
        importlib.import_module(f"dropsight.daemon.cli.{module}").add_arguments(sub, with_config)
    _add_result_commands(sub, with_config)

    b = sub.add_parser("bench", help="measure throughput and latency (prints numbers)")
    from dropsight.daemon.bench.main import add_arguments

    add_arguments(b)
    with_config(b)
    b.set_defaults(func=cmd_bench)
    return parser


def _add_result_commands(sub: Any, with_config: Callable[[Any], None]) -> None:
    """`events` and `xmp`: results for other programs."""
    ev = sub.add_parser(
        "events",
        help="print each result as the running service labels it",
        description="One line per labelled photo, as it happens, until the service stops or "
        "Ctrl+C. --json: one JSON object per line (photo, sidecar, status, name, class_index, "
        "score, categories, model, processed_at, error), e.g. for `| jq`.",
    )
    ev.add_argument("--json", action="store_true", help="one JSON object per line")
    ev.set_defaults(func=cmd_events)

    x = sub.add_parser(
        "xmp",
        help="write or remove XMP keywords from existing sidecars",
        description="write: put each labelled photo's keywords (friendly names of labels "
        "scoring at least output.xmp_min_score, and their categories) into its XMP sidecar, "
        "keeping everything else in it. remove: take Dropsight's keywords out again "
        "(a file left empty is deleted). Folders default to watch.folders.",
    )
    x.add_argument("action", choices=("write", "remove"))
    x.add_argument("folders", nargs="*", type=Path, metavar="FOLDER", help="folders to walk")
    with_config(x)
    x.set_defaults(func=cmd_xmp)


def _version() -> str:
    """The version line, with the models this build carries."""
    from dropsight.daemon.models.store import bundled_models

    carried = bundled_models()
    return f"dropsight {__version__}" + (f" (models: {', '.join(carried)})" if carried else "")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `dropsight` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["tray"]:
        # The tray parses its own options (argparse.REMAINDER drops leading ones).
        return cmd_tray(argparse.Namespace(tray_args=argv[1:]))
    args = build_parser().parse_args(argv)
    if args.command == "classify" and args.top is not None and not 1 <= args.top <= 1000:
        print("dropsight classify: error: --top must be from 1 to 1000", file=sys.stderr)
        return EXIT_USAGE
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
    except ConfigError as exc:
        print(f"dropsight: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from dropsight.daemon.models.store import ModelUnavailable
        from dropsight.daemon.models.weights import WeightsNotFound

        if isinstance(exc, WeightsNotFound | ModelUnavailable):
            print(f"dropsight: {exc}", file=sys.stderr)
            return EXIT_FAILED
        raise
    return result
