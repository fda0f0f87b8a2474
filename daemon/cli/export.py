"""`dropsight export`: every photo's labels as CSV or JSON Lines, read from the sidecars.

The output is for other programs (spreadsheets, scripts): always valid UTF-8 (names that
are not UTF-8 written as the sidecars write them, \\udcXX escapes), no cell a spreadsheet
would run as a formula, and `--output` never replaces what is not a regular file.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import stat
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from dropsight.config.settings import Settings
from dropsight.daemon.cli.common import ExitCode, settings_for, watched_folders
from dropsight.daemon.contracts import SidecarRecord
from dropsight.daemon.core import surrogates
from dropsight.daemon.labels.classes import classes, info

EXPORT_TOP_K = 5
COLUMNS = [
    "path",
    "status",
    *(f"{kind}{i}" for i in range(1, EXPORT_TOP_K + 1) for kind in ("name", "score")),
    "categories",
    "model",
    "processed_at",
    "error",
]
# A spreadsheet runs a cell starting with these as a formula (OWASP's "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# One photo's export row: COLUMNS -> text, a score, or None (a field its sidecar lacks).
Row = dict[str, str | float | None]


def add_arguments(sub: Any, with_config: Any) -> None:
    """The `export` sub-command."""
    e = sub.add_parser(
        "export",
        help="write every photo's labels as CSV or JSON Lines",
        description="One row per photo under the folders (default: the watched ones), read "
        "from the sidecars: path, status, top-5 names and scores, categories, model, "
        "processed_at. Streams: constant memory for any library size.",
    )
    e.add_argument("folders", nargs="*", type=Path, metavar="FOLDER")
    e.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    e.add_argument("--output", type=Path, metavar="FILE", help="default: standard output")
    with_config(e)
    e.set_defaults(func=export_command)


def rows(settings: Settings, roots: Sequence[Path]) -> Iterator[Row]:
    """One row per labelled photo under `roots`, read from the sidecars as they come."""
    from dropsight.daemon.outputs import sidecar
    from dropsight.daemon.outputs.index.sync import labelled

    for photo, json_path, _mtime in labelled(settings, roots):
        record = sidecar.read(json_path)
        if record is not None:
            yield row(photo, record)


def row(photo: Path, record: SidecarRecord) -> Row:
    """A photo's export row; class names from our own index."""
    error = record["error"]
    out: Row = {
        "path": os.fsdecode(os.fsencode(photo)),
        "status": record["status"],
        "categories": " ".join(record.get("categories") or []),
        "model": record["model"]["name"],
        "processed_at": record["processed_at"],
        "error": error["message"] if error else "",
    }
    preds = record["predictions"]
    for i in range(EXPORT_TOP_K):
        p = preds[i] if i < len(preds) else None
        out[f"name{i + 1}"] = _name(p["class_index"]) if p else ""
        out[f"score{i + 1}"] = p["score"] if p else ""
    return out


def _name(class_index: int) -> str:
    """A class's friendly name from our own index, never the file's text (it is input)."""
    return info(class_index).name if 0 <= class_index < len(classes()) else ""


def export_command(args: argparse.Namespace) -> int:
    """`dropsight export [FOLDER...] --format csv|jsonl [--output FILE]`."""
    settings = settings_for(args)
    roots = [Path(f).expanduser().absolute() for f in args.folders] or watched_folders(settings)
    if not roots:
        print(
            "dropsight export: no folders given and none watched (watch.folders)", file=sys.stderr
        )
        return ExitCode.USAGE
    missing = [r for r in roots if not r.is_dir()]
    if missing:
        print(f"dropsight export: not a folder: {', '.join(map(str, missing))}", file=sys.stderr)
        return ExitCode.USAGE
    source = rows(settings, roots)
    if args.output is None:
        _write(sys.stdout, source, args.format)
        return ExitCode.OK
    try:
        count = _to_file(Path(args.output), source, args.format)
    except OSError as exc:
        print(
            f"dropsight export: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr
        )
        return ExitCode.FAILED
    print(f"exported {count} photos to {args.output}", file=sys.stderr)
    return ExitCode.OK


def _to_file(target: Path, source: Iterable[Row], fmt: str) -> int:
    """Write to `target`: a regular file atomically (replaced whole), a device or pipe
    written through (`/dev/null`, `/dev/stdout`); never replacing a link or a device."""
    from dropsight.daemon.core.atomic import temp_path_for
    from dropsight.daemon.core.progress import track

    folder = target.parent
    if not folder.is_dir():
        raise FileNotFoundError(2, f"no folder {folder}")
    try:
        st = target.stat()  # through a symlink: its target is what gets written
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(21, "a folder")
    if target.is_symlink() or (st is not None and not stat.S_ISREG(st.st_mode)):
        # Written through, never replaced: a rename would put a file where the link or
        # device node was (as root, /dev/null itself).
        with open(target, "w", encoding="utf-8", newline="") as f:  # noqa: PTH123
            return _write(f, track(source, desc="export"), fmt)
    # Written beside the target and renamed at the end: a reader never sees half a file.
    tmp = temp_path_for(target)
    try:
        with tmp.open("w", encoding="utf-8", newline="") as f:
            count = _write(f, track(source, desc="export"), fmt)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count


def _write(out: TextIO, source: Iterable[Row], fmt: str) -> int:
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in source:
            writer.writerow({k: _cell(v) for k, v in r.items()})
            count += 1
    else:
        for r in source:
            line = {**r, "categories": str(r["categories"]).split()}
            # Lone surrogates as \udcXX escapes, as in the sidecars: valid UTF-8 JSON.
            out.write(surrogates.escape(json.dumps(line, ensure_ascii=False)) + "\n")
            count += 1
    out.flush()
    return count


def _cell(value: str | float | None) -> str | float | None:
    """A CSV cell a spreadsheet shows as text, never runs (a leading ' neutralises it);
    name bytes that are not UTF-8 as \\udcXX escapes, as in the sidecars."""
    if not isinstance(value, str):
        return value
    value = surrogates.escape(value)
    return "'" + value if value.startswith(FORMULA_STARTS) else value
