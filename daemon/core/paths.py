"""Where Dropsight keeps its files: platform directories and the frozen bundle."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

from dropsight.daemon import APP_NAME

# Tests and portable installs point every directory elsewhere with one variable.
_HOME_ENV = "DROPSIGHT_HOME"


def _base(kind: str) -> Path:
    home = os.environ.get(_HOME_ENV)
    if home:
        return Path(home) / kind
    dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
    return Path(
        {
            "config": dirs.user_config_dir,
            "cache": dirs.user_cache_dir,
            "log": dirs.user_log_dir,
            "state": dirs.user_state_dir,
        }[kind]
    )


def config_dir() -> Path:
    """Folder holding `config.toml`."""
    return _base("config")


def config_file() -> Path:
    """The user's config file (may not exist yet)."""
    return config_dir() / "config.toml"


def cache_dir() -> Path:
    """Folder for converted models and other rebuildable files."""
    return _base("cache")


def log_dir() -> Path:
    """Folder for the rotating log file."""
    return _base("log")


def state_dir() -> Path:
    """Folder for the instance lock and the control-API endpoint file."""
    return _base("state")


def make_private(folder: Path) -> Path:
    """Create `folder` readable by its owner only (0700); it holds photo paths and tokens.

    A folder that exists with wider permissions (from an older version) is narrowed.
    """
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name == "posix" and folder.stat().st_mode & 0o077:
        folder.chmod(0o700)
    return folder


def default_watch_folder() -> Path:
    """The folder watched when none is configured: Pictures/Dropsight."""
    home = os.environ.get(_HOME_ENV)
    if home:
        return Path(home) / "Pictures" / "Dropsight"
    return Path(platformdirs.user_pictures_dir()) / "Dropsight"


def frozen_root() -> Path | None:
    """The bundle folder of a PyInstaller build, or None when running from source."""
    if getattr(sys, "frozen", False):
        return Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent))
    return None


def app_dir() -> Path:
    """Folder next to the executable (frozen) or the source tree root."""
    if getattr(sys, "frozen", False):
        return Path(sys.executable).parent
    return Path(__file__).resolve().parents[2]  # daemon/core/paths.py
