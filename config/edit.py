"""Changing the config file from the tray and the command line, keeping the user's comments."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions
from tomlkit.toml_document import TOMLDocument

from dropsight.config.settings import ConfigError, Settings, expand, parse

HEADER = (
    "# Dropsight configuration: every key is optional (see `dropsight config show --defaults`).\n"
    "# The running service applies changes to this file on its own.\n"
)


def read_document(path: Path) -> TOMLDocument:
    """The config as an editable document (empty when the file does not exist yet)."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return tomlkit.parse(HEADER)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def update(path: Path, change: Callable[[TOMLDocument], None]) -> Settings:
    """Apply `change` to the file's document, check the result, write it atomically.

    Nothing is written when the result would not load (ConfigError names file and key).
    """
    from dropsight.daemon.core.atomic import write_text_atomic

    doc = read_document(path)
    change(doc)
    settings = parse(doc.unwrap(), str(path))
    write_text_atomic(path, tomlkit.dumps(doc))
    return settings


def set_value(path: Path, section: str, key: str, value: Any) -> Settings:
    """Set `[section] key = value`, keeping every other line and comment as it was."""

    def change(doc: TOMLDocument) -> None:
        if section not in doc:
            doc.add(section, tomlkit.table())
        table: Any = doc[section]
        table[key] = value

    return update(path, change)


def init(path: Path) -> bool:
    """Create the config from the documented defaults; False when it exists already."""
    from dropsight.daemon.core.atomic import write_text_atomic

    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, default_text())
    return True


def default_text() -> str:
    """The documented default config (config/default.toml)."""
    return resources.files("dropsight.config").joinpath("default.toml").read_text("utf-8")


def default_folder() -> Path:
    """The folder the service watches while none is listed (Pictures/Dropsight)."""
    from dropsight.daemon.core import paths

    return paths.default_watch_folder()


def add_folders(path: Path, folders: Sequence[Path]) -> list[Path]:
    """Add folders to `watch.folders` (creating the file if needed); returns those added.

    While none is listed the service watches the default folder; changing the list makes it
    a real entry first (when it exists), so adding a folder never stops watching it.
    """
    init(path)
    added: list[Path] = []

    def change(doc: TOMLDocument) -> None:
        entries = _folders_array(doc)
        present = {expand(str(e)) for e in entries}
        default = default_folder()
        if not entries and default.is_dir() and default not in folders:
            entries.append(str(default))
            present.add(default)
            added.append(default)
        for folder in folders:
            if folder not in present:
                entries.append(str(folder))
                present.add(folder)
                added.append(folder)

    update(path, change)
    return added


def remove_folders(path: Path, folders: Sequence[Path]) -> list[Path]:
    """Take folders out of `watch.folders`; returns those that were there.

    Raises ConfigError for the default folder while it is the one watched because none is
    listed: there is nothing to take it out of (add another folder first).
    """
    removed: list[Path] = []

    def change(doc: TOMLDocument) -> None:
        from dropsight.daemon.core.invocation import command_name

        entries = _folders_array(doc)
        default = default_folder()
        if not entries and default in folders:
            raise ConfigError(
                f"{default} is the default folder, watched while no other is listed; "
                f"add the folder to watch instead first (`{command_name()} watch add DIR`)"
            )
        for i in reversed(range(len(entries))):
            if expand(str(entries[i])) in folders:
                removed.append(expand(str(entries[i])))
                del entries[i]

    if path.exists():
        update(path, change)
    elif default_folder() in folders:
        change(tomlkit.document())  # raises
    return removed


def _folders_array(doc: TOMLDocument) -> Any:
    if "watch" not in doc:
        doc.add("watch", tomlkit.table())
    watch: Any = doc["watch"]
    if "folders" not in watch:
        watch["folders"] = tomlkit.array()
    entries = watch["folders"]
    if not isinstance(entries, list):
        raise ConfigError("watch.folders must be a list of folder paths")
    return entries
