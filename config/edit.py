"""Changing the config file from the tray and the command line, keeping the user's comments."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions
from tomlkit.toml_document import TOMLDocument

from dropsight.config.settings import ConfigError, Settings, parse

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
    from dropsight.daemon.atomic import write_text_atomic

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
