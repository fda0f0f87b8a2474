"""The command as the user runs it, for hints they can paste: `dropsight pause`, or
`.venv/bin/dropsight pause` where `make run` installed it into a virtual environment."""

from __future__ import annotations

import os
import shutil
import sys
from functools import cache
from pathlib import Path

NAME = "dropsight"


@cache
def command_name() -> str:
    """`dropsight` when that name runs this program, else the path it was started by."""
    argv0 = sys.argv[0] if sys.argv else ""
    if Path(argv0).name.removesuffix(".exe") != NAME:
        return NAME  # python -m dropsight.daemon, a test runner, the tray's own binary
    if os.sep not in argv0 and (os.altsep is None or os.altsep not in argv0):
        return NAME  # found on PATH by that name
    found = shutil.which(NAME)
    if found and Path(found).resolve() == Path(argv0).resolve():
        return NAME
    return argv0
