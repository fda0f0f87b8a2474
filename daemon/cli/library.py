"""`dropsight index` and `search`: getting at the results of a whole library (the index)."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dropsight.config.settings import Settings
from dropsight.daemon.cli.common import ExitCode, settings_for, watched_folders
from dropsight.daemon.core import surrogates
from dropsight.daemon.core.invocation import command_name

if TYPE_CHECKING:
    from dropsight.daemon.outputs.index.library import Hit, Index

HUMAN_LIMIT = 50  # results shown on screen unless --limit says otherwise


def add_arguments(sub: Any, with_config: Any) -> None:
    """The `index` and `search` sub-commands."""
    i = sub.add_parser(
        "index",
        help="rebuild or inspect the library index that search uses",
        description="rebuild: read every sidecar under the folders (default: the watched "
        "ones) into the index again. status: how many photos it holds. The service keeps "
        "the index up to date by itself; sidecars stay the source of truth.",
    )
    i.add_argument("action", choices=("rebuild", "status"))
    i.add_argument("folders", nargs="*", type=Path, metavar="FOLDER")
    with_config(i)
    i.set_defaults(func=index_command)

    s = sub.add_parser(
        "search",
        help="find labelled photos by what is in them",
        description='Words match friendly names ("golden retriever", quoted or not), synonyms, '
        'categories and WordNet ancestors: "dog" finds every breed, "retriever" the '
        "retrievers. A word that names no class is looked up in a map made from WordNet: "
        '"beach" shows seashore, lakeside and sandbar (said on stderr). Several words must '
        "all match. Best scores first. Works whether or not the service runs.",
    )
    s.add_argument("words", nargs="+", metavar="WORD")
    s.add_argument(
        "--min-score",
        type=float,
        metavar="S",
        help="0-1 (default: output.xmp_min_score, 0.3, the categories' threshold)",
    )
    s.add_argument("--in", dest="under", type=Path, metavar="FOLDER", help="only under FOLDER")
    s.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help=f"at most N (default: {HUMAN_LIMIT} on screen, all with --json or --paths)",
    )
    out = s.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object per line")
    out.add_argument("--paths", action="store_true", help="only the photo paths")
    s.add_argument("-0", dest="null", action="store_true", help="with --paths: NUL-separated")
    with_config(s)
    s.set_defaults(func=search_command)


def _roots(settings: Settings, folders: Sequence[Path]) -> list[Path] | None:
    roots = [Path(f).expanduser().absolute() for f in folders] or watched_folders(settings)
    if not roots:
        print("dropsight: no folders given and none watched (watch.folders)", file=sys.stderr)
        return None
    missing = [r for r in roots if not r.is_dir()]
    if missing:
        print(f"dropsight: not a folder: {', '.join(map(str, missing))}", file=sys.stderr)
        return None
    return roots


# --- index -------------------------------------------------------------------------------------


def index_command(args: argparse.Namespace) -> int:
    """`dropsight index rebuild|status [FOLDER...]`."""
    from dropsight.daemon.outputs.index.library import Index
    from dropsight.daemon.outputs.index.repair import damaged_message

    settings = settings_for(args)
    try:
        if args.action == "status":
            with Index(read_only=True) as index:
                print(f"{index.count()} photos in {index.path}")
            return ExitCode.OK
        roots = _roots(settings, args.folders)
        if roots is None:
            return ExitCode.USAGE
        count, path, changes, aside = rebuild(settings, roots, progress=True)
    except sqlite3.DatabaseError as exc:
        print(f"dropsight index: the library index cannot be used: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    if aside is not None:
        print(f"dropsight index: {damaged_message(aside)}", file=sys.stderr)
    print(f"index rebuilt: {changes}; {count} photos in {path}")
    return ExitCode.OK


def rebuild(
    settings: Settings, roots: Sequence[Path], *, progress: bool = False
) -> tuple[int, Path, str, Path | None]:
    """Rebuild the index from the sidecars under `roots`, a damaged one set aside first (also
    when the damage shows only while rebuilding). (photos, index path, changes, set aside)."""
    from dropsight.daemon.core.progress import track
    from dropsight.daemon.outputs.index.library import is_damage
    from dropsight.daemon.outputs.index.repair import open_repairing, set_aside
    from dropsight.daemon.outputs.index.sync import labelled, sync

    index, aside = open_repairing()
    try:
        try:
            found = track(labelled(settings, roots), desc="index") if progress else None
            changes = sync(index, settings, roots, from_scratch=True, progress=found)
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
            index.close()
            aside = set_aside(index.path)
            index, _ = open_repairing(index.path)
            changes = sync(index, settings, roots, from_scratch=True)
        return index.count(), index.path, changes.summary(), aside
    finally:
        index.close()


# --- search ------------------------------------------------------------------------------------


def search_command(args: argparse.Namespace) -> int:
    """`dropsight search WORDS...`."""
    from dropsight.daemon.labels import query
    from dropsight.daemon.outputs.index.library import Index

    terms = query.parse(args.words)
    for term in terms:
        if not term.ranked:
            print(f"dropsight search: {term.why_none()}", file=sys.stderr)
            return ExitCode.FAILED
    if (args.limit is not None and args.limit < 1) or not 0 <= (args.min_score or 0) <= 1:
        print("dropsight search: --limit must be 1 or more, --min-score 0 to 1", file=sys.stderr)
        return ExitCode.USAGE
    for term in terms:
        if term.explain():
            print(term.explain(), file=sys.stderr)
    human = not (args.json or args.paths)
    min_score = args.min_score
    if min_score is None:
        min_score = settings_for(args).output.xmp_min_score
    limit = args.limit if args.limit is not None or not human else HUMAN_LIMIT
    words = [t.text for t in terms]
    for attempt in (1, 2):
        try:
            with Index(read_only=True) as index:  # search never writes (a read-only index)
                hits = index.search(words, min_score=min_score, under=args.under, limit=limit)
                _print_hits(hits, args)
                if human or not hits:
                    _say_what_else(index, args, words, hits, min_score=min_score, limit=limit)
            break
        except sqlite3.DatabaseError as exc:
            if attempt == 2 or not _repaired(args, exc):
                return ExitCode.FAILED
    return ExitCode.OK if hits else ExitCode.FAILED


def _repaired(args: argparse.Namespace, exc: sqlite3.DatabaseError) -> bool:
    """A damaged index met by `search`: set aside and rebuilt (said in one line), or why not."""
    from dropsight.daemon.outputs.index.library import is_damage
    from dropsight.daemon.outputs.index.repair import damaged_message, set_aside

    me = command_name()
    if not is_damage(exc):
        print(f"dropsight search: the library index cannot be read: {exc}", file=sys.stderr)
        return False
    settings = settings_for(args)
    roots = watched_folders(settings)
    try:
        from dropsight.daemon.outputs.index.library import default_path

        aside = set_aside(default_path())
        if roots:
            rebuild(settings, roots)
    except (OSError, sqlite3.Error) as again:
        print(
            f"dropsight search: the library index is damaged ({exc}) and cannot be rebuilt:"
            f" {again}",
            file=sys.stderr,
        )
        return False
    if not roots:
        print(
            f"dropsight search: the library index was damaged: set aside as {aside.name};"
            f" no folders watched, so rebuild it with `{me} index rebuild FOLDER`",
            file=sys.stderr,
        )
        return True
    print(f"dropsight search: {damaged_message(aside)}", file=sys.stderr)
    return True


def _print_hits(hits: list[Hit], args: argparse.Namespace) -> None:
    out = sys.stdout
    for hit in hits:
        if args.json:
            # Names that are not UTF-8 as \udcXX escapes: the line is valid UTF-8 JSON.
            out.write(surrogates.escape(json.dumps(hit.as_json(), ensure_ascii=False)) + "\n")
        elif args.paths:
            out.write(os.fsdecode(hit.path) + ("\0" if args.null else "\n"))
        else:
            out.write(f"{hit.path}\t{hit.name}\t{hit.score * 100:.1f}%\n")
    out.flush()


def _say_what_else(
    index: Index,
    args: argparse.Namespace,
    words: list[str],
    hits: list[Hit],
    *,
    min_score: float,
    limit: int | None,
) -> None:
    """On stderr: why none, results not shown, photos a lower --min-score would find."""
    if not hits and not (args.json or args.paths):
        where = f" under {args.under}" if args.under else ""
        print(
            f"no photos of {' '.join(words)}{where} yet ({index.count()} photos indexed)",
            file=sys.stderr,
        )
    total = len(hits)
    if limit is not None and total == limit:
        total = index.count_matching(words, min_score=min_score, under=args.under)
        if total > len(hits):
            print(f"{len(hits)} of {total} shown (--limit N for more)", file=sys.stderr)
    if args.min_score is None and min_score > 0:
        more = index.count_matching(words, min_score=0.0, under=args.under) - total
        if more > 0:
            print(f"{more} more below {min_score:.0%} (--min-score 0 shows them)", file=sys.stderr)
