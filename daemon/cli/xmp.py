"""`dropsight xmp write|remove [FOLDER...]`: XMP keywords from the existing sidecars."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dropsight.config.settings import Settings
from dropsight.daemon.cli.common import ExitCode, settings_for, watched_folders


def add_arguments(sub: Any, with_config: Callable[[Any], None]) -> None:
    """The `xmp` sub-command."""
    x = sub.add_parser(
        "xmp",
        help="write or remove XMP keywords from existing sidecars",
        description="write: put each labelled photo's keywords (friendly names of labels "
        "scoring at least output.xmp_min_score, and their categories) into its XMP sidecar, "
        "keeping everything else in it. remove: take Dropsight's keywords out again "
        "(a file it created that holds nothing else is deleted). Files it cannot merge safely "
        "(a symlink, a pipe, above 4 MB, read-only, or XMP exiv2 reads only in part) are left "
        "as they were and reported. Folders default to the watched ones.",
    )
    x.add_argument("action", choices=("write", "remove"))
    x.add_argument("folders", nargs="*", type=Path, metavar="FOLDER", help="folders to walk")
    with_config(x)
    x.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    """Entry point of `dropsight xmp`."""
    return xmp_command(settings_for(args), args.action, args.folders)


def xmp_command(settings: Settings, action: str, folders: Sequence[Path]) -> int:
    """`dropsight xmp write|remove`: walk folders (default: the watched ones), print a tally."""
    from dropsight.daemon.core.progress import track
    from dropsight.daemon.outputs.xmp.sync import photos, remove_all, write_from_sidecars

    roots = [Path(f).expanduser().resolve() for f in folders] or watched_folders(settings)
    if not roots:
        print("dropsight xmp: no folders given and none watched (watch.folders)", file=sys.stderr)
        return ExitCode.USAGE
    missing = [r for r in roots if not r.is_dir()]
    if missing:
        print(f"dropsight xmp: not a folder: {', '.join(map(str, missing))}", file=sys.stderr)
        return ExitCode.USAGE
    items = track(photos(settings, roots), desc=f"XMP {action}")
    if action == "write":
        tally = write_from_sidecars(settings, items)
    else:
        tally = remove_all(settings, items)
    for photo, message in tally.failed:
        print(f"{photo}: {message}", file=sys.stderr)
    print(f"XMP ({settings.output.xmp_name}): {tally.summary()}")
    return ExitCode.FAILED if tally.failed else ExitCode.OK
