"""What needs attention beyond the service's own status: a config file it could not apply."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from dropsight.config.settings import ConfigError, load
from dropsight.daemon.contracts import ErrorEntry, Status
from dropsight.daemon.core import paths

# "/home/me/.config/dropsight/config.toml: " (or C:\...) in front of a config error's reason.
_PATH_PREFIX = re.compile(r"(?:[A-Za-z]:)?[\\/][^\n]*?\.toml: ")
# Command-line advice in messages the service also prints to a terminal, as a window says it.
_WINDOW_WORDING = (
    ("run the command again once online", "try again once online"),
    ("running the command again resumes", "trying again resumes"),
)


def reason_first(message: str) -> str:
    """A message without the config file's path, so a short space shows key and reason."""
    return _PATH_PREFIX.sub("", message)


def window_wording(message: str) -> str:
    """A service message with its command-line advice said the way a window says it."""
    for cli, window in _WINDOW_WORDING:
        message = message.replace(cli, window)
    return message


def config_path(status: Status | None) -> Path:
    """The config file the service reads (the default one when it does not say)."""
    configured = status.get("config_path") if status else None
    return Path(configured) if configured else paths.config_file()


class ConfigCheck:
    """Loads the config file again when it changes; remembers why it does not load."""

    def __init__(self) -> None:
        self._seen: tuple[Path, tuple[int, int] | None] | None = None
        self._problem: str | None = None

    def problem(self, path: Path) -> str | None:
        """Why `path` cannot be applied (its ConfigError), or None when it loads."""
        try:
            st = path.stat()
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if self._seen != (path, stamp):
            self._seen = (path, stamp)
            try:
                load(path)
                self._problem = None
            except ConfigError as exc:
                self._problem = str(exc)
        return self._problem

    def fixed(self, failure: str, path: Path) -> bool:
        """Whether a failed start's message is about this config file, which now loads."""
        return str(path) in failure and self.problem(path) is None


def with_problem(status: Status, message: str) -> Status:
    """The status as the tray and viewer show it: an error that the service does not list."""
    entry: ErrorEntry = {
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "path": None,
        "message": message,
    }
    shown = status.copy()
    shown["state"] = "error"
    shown["errors"] = [entry, *status.get("errors", [])]
    return shown


def config_not_applied(problem: str) -> str:
    """How the tray and viewer say that the service runs on without the edited config."""
    return f"config not applied: {reason_first(problem)}"
