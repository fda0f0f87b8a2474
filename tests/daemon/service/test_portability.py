"""A Windows-only break shows here: commands run with POSIX-only modules unimportable.

Windows has no `resource`, `fcntl`, `termios`, `pwd` or `grp`. Nothing here runs Windows,
so each command runs in a child Python whose `import` refuses those modules to Dropsight's
own code (third-party libraries pick their platform modules themselves). A module-level
import of one of them in anything a command loads fails the command.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BLOCKED = ("resource", "fcntl", "termios", "pwd", "grp")

PRELUDE = f"""
import builtins, sys
BLOCKED = {BLOCKED!r}
_real = builtins.__import__

def _guarded(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {{}}).get("__name__", "")
    if level == 0 and name.split(".")[0] in BLOCKED and importer.startswith("dropsight"):
        raise ModuleNotFoundError(
            f"No module named {{name!r}} (POSIX-only, imported by {{importer}})", name=name
        )
    return _real(name, globals, locals, fromlist, level)

builtins.__import__ = _guarded
"""


def run_guarded(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PRELUDE + code],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def cli(*args: str) -> str:
    return f"from dropsight.daemon.cli.main import main\nsys.exit(main({list(args)!r}))\n"


def test_the_guard_itself_catches_a_posix_only_import(tmp_path: Path) -> None:
    proc = run_guarded(
        "import types\nm = types.ModuleType('dropsight.fake')\nexec('import fcntl', m.__dict__)\n",
        tmp_path,
    )
    assert proc.returncode != 0
    assert "POSIX-only, imported by dropsight.fake" in proc.stderr


@pytest.mark.parametrize("args", [("--version",), ("--help",), ("service", "--help")])
def test_cli_starts_without_posix_only_modules(args: tuple[str, ...], tmp_path: Path) -> None:
    proc = run_guarded(cli(*args), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "dropsight" in proc.stdout


def test_classify_runs_without_posix_only_modules(photos: dict[str, Path], tmp_path: Path) -> None:
    code = cli("classify", "--json", "--model", "efficientnet-lite0", str(photos["chelsea"]))
    proc = run_guarded(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert '"status": "ok"' in proc.stdout


def test_tray_and_viewer_import_without_posix_only_modules(tmp_path: Path) -> None:
    proc = run_guarded(
        "import dropsight.tray.app, dropsight.tray.menu, dropsight.tray.autostart\n"
        "import dropsight.daemon.bench.main, dropsight.daemon.bench.e2e\n"
        "print('imported')\n",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "imported" in proc.stdout
