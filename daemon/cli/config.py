"""`dropsight config init|show|path` and `dropsight watch add|remove|list`, no editor needed."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import tomlkit

from dropsight.config import edit
from dropsight.config.settings import ConfigError, Settings, expand, load
from dropsight.daemon.cli.common import ExitCode
from dropsight.daemon.core import paths
from dropsight.daemon.core.invocation import command_name

APPLIED = "a running service applies this on its own"


def add_arguments(sub: Any, with_config: Any) -> None:
    """The `config` and `watch` sub-commands."""
    c = sub.add_parser(
        "config",
        help="create or show the config file",
        description="init: write the documented defaults to the config file (if it does not "
        "exist yet). show: print the settings in effect and where they come from; "
        "--defaults prints the documented default file.",
    )
    c.add_argument("action", choices=("init", "show", "path"))
    c.add_argument("--defaults", action="store_true", help="show: the documented defaults")
    with_config(c)
    c.set_defaults(func=config_command)

    w = sub.add_parser(
        "watch",
        help="add, remove or list watched folders (edits the config, comments kept)",
        description="Change watch.folders in the config file; a running service starts or "
        "stops watching at once.",
    )
    w.add_argument("action", choices=("add", "remove", "list"))
    w.add_argument("folders", nargs="*", type=Path, metavar="DIR")
    w.add_argument(
        "--force",
        action="store_true",
        help="add: watch a system folder (/, /usr, C:\\ ...) all the same",
    )
    with_config(w)
    w.set_defaults(func=watch_command)


def _config_path(args: argparse.Namespace) -> Path:
    return Path(args.config) if args.config is not None else paths.config_file()


def config_command(args: argparse.Namespace) -> int:
    """`dropsight config init|show|path`."""
    path = _config_path(args)
    if args.action == "path":
        print(path)
    elif args.action == "init":
        if not edit.init(path):
            print(f"{path} exists already; left as it is", file=sys.stderr)
            return ExitCode.FAILED
        print(f"wrote {path} (every key documented; edit it, or `{command_name()} watch add DIR`)")
    elif args.defaults:
        sys.stdout.write(edit.default_text())
    else:
        settings = load(path)  # a bad value stops here, before anything is printed
        where = path if path.exists() else f"{path} (not created yet: built-in defaults)"
        print(f"# settings in effect, from {where}")
        sys.stdout.write(as_toml(settings))
    return ExitCode.OK


def as_toml(settings: Settings) -> str:
    """The effective settings as TOML (what the service would run with)."""
    doc = tomlkit.document()
    for section in fields(settings):
        if section.name == "source":
            continue
        table = tomlkit.table()
        for key, value in asdict(getattr(settings, section.name)).items():
            table[key] = _plain(value)
        doc[section.name] = table
    return tomlkit.dumps(doc)


def _plain(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def watch_command(args: argparse.Namespace) -> int:
    """`dropsight watch add|remove|list [DIR...]`."""
    path = _config_path(args)
    folders = [expand(f) for f in args.folders]
    if args.action == "list":
        configured = load(path).watch.folders
        for folder in configured:
            print(f"{folder}{'' if folder.is_dir() else '  (missing)'}")
        if not configured:
            print(f"{edit.default_folder()}  (the default: watched while none is configured)")
        return ExitCode.OK
    if not folders:
        print(f"dropsight watch {args.action}: name at least one folder", file=sys.stderr)
        return ExitCode.USAGE
    if args.action == "add":
        system = [f for f in folders if is_system_folder(f)]
        if system and not args.force:
            print(
                f"dropsight watch add: {system[0]} is a system folder: a service would write a"
                " sidecar beside every image in it (and below). Name the folder your photos"
                " are in, or add --force",
                file=sys.stderr,
            )
            return ExitCode.USAGE
        return _add(path, folders)
    try:
        removed = edit.remove_folders(path, folders)
    except ConfigError as exc:
        print(f"dropsight watch remove: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    for folder in folders:
        print(f"{'no longer watched' if folder in removed else 'was not watched'}: {folder}")
    if removed:
        if not load(path).watch.folders:
            print(f"(none left in the config: the service watches {edit.default_folder()})")
        print(f"({path}; {APPLIED})")
    return ExitCode.OK if removed else ExitCode.FAILED


# Folders of the system or of all users, below which labelling would write across the
# machine (the root of every drive counts too). One's own home is allowed.
_SYSTEM_FOLDERS = [
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib64",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/var",
    "/Applications",
    "/Library",
    "/System",
    "/Users",
    "/Volumes",
    "/private",
]
_WINDOWS_FOLDERS = ("Windows", "Program Files", "Program Files (x86)", "ProgramData", "Users")


def is_system_folder(folder: Path) -> bool:
    """Is `folder` a file-system root, or a folder of the system or of all users?"""
    folder = Path(os.path.normpath(folder.absolute()))
    if folder == Path.home():
        return False  # one's own home is one's own (root's is /root)
    if folder == Path(folder.anchor) or folder.parent == folder:
        return True
    if sys.platform == "win32":
        return folder.parent == Path(folder.anchor) and folder.name in _WINDOWS_FOLDERS
    return str(folder) in _SYSTEM_FOLDERS


def _add(path: Path, folders: list[Path]) -> int:
    missing = [f for f in folders if not f.is_dir()]
    if missing:
        print(f"not a folder: {', '.join(map(str, missing))}", file=sys.stderr)
        return ExitCode.FAILED
    added = edit.add_folders(path, folders)
    for folder in added:
        if folder not in folders:  # the default folder, now a real entry
            print(f"still watching: {folder} (the default folder, now listed)")
    for folder in folders:
        print(f"{'watching' if folder in added else 'already watched'}: {folder}")
    print(f"({path}; {APPLIED})")
    return ExitCode.OK
