"""What every command shares: the `--config` option, settings loading, the exit codes."""

from __future__ import annotations

import argparse
from pathlib import Path

from dropsight.config.settings import ConfigError, Settings
from dropsight.config.settings import load as load_settings
from dropsight.daemon.contracts import ExitCode
from dropsight.daemon.core import paths

__all__ = ["ExitCode", "settings_for", "with_config"]


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
