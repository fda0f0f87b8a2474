"""What every command shares: the `--config` option, settings loading, the exit codes."""

from __future__ import annotations

import argparse
from pathlib import Path

from dropsight.config.settings import ConfigError, Settings
from dropsight.config.settings import load as load_settings
from dropsight.daemon.contracts import ExitCode
from dropsight.daemon.core import paths

__all__ = ["ExitCode", "settings_for", "watched_folders", "with_config"]


def with_config(parser: argparse.ArgumentParser) -> None:
    """Give a command the `--config FILE` option (read by settings_for)."""
    parser.add_argument(
        "--config", type=Path, help=f"TOML config file (default: {paths.config_file()})"
    )


def settings_for(args: argparse.Namespace) -> Settings:
    """The settings `--config` (or the default config file) gives."""
    path = args.config if args.config is not None else paths.config_file()
    if args.config is not None and not args.config.is_file():
        raise ConfigError(f"{args.config}: config file not found")
    return load_settings(path)


def watched_folders(settings: Settings) -> list[Path]:
    """The folders a command defaults to: those configured, else what the running service
    watches (its --watch folders), else the default folder it watches when none is set."""
    from dropsight.daemon.api.client import ServiceClient, ServiceError

    if settings.watch.folders:
        return list(settings.watch.folders)
    try:
        running = ServiceClient.connect().status().get("folders") or []
    except ServiceError:
        running = []
    if running:
        return [Path(str(f["path"])) for f in running]
    default = paths.default_watch_folder()
    return [default] if default.is_dir() else []
