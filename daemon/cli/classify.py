"""`dropsight classify PATH...`: label files or folders here and now, and print the results."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from dropsight.config.settings import MODEL_NAMES, RESIZE_POLICIES, Settings
from dropsight.daemon.cli.common import ExitCode, settings_for
from dropsight.daemon.contracts import SidecarRecord
from dropsight.daemon.labels.names import display_name


def add_arguments(sub: Any, with_config: Callable[[Any], None]) -> None:
    """The `classify` sub-command."""
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
    c.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    """`dropsight classify`: label files or folders and print the results."""
    from dataclasses import replace

    from dropsight.daemon.pipeline.stages import Options, classify_paths
    from dropsight.daemon.runtime.classifier import open_classifier

    if args.top is not None and not 1 <= args.top <= 1000:
        print("dropsight classify: error: --top must be from 1 to 1000", file=sys.stderr)
        return ExitCode.USAGE
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
    classifier = open_classifier(settings)
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
    return ExitCode.FAILED if failed else ExitCode.OK


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
        print(f"  {p['rank']}. {display_name(p):<28} {p['score'] * 100:6.2f}%")
    if record.get("categories"):
        print(f"  categories: {', '.join(record['categories'])}")
