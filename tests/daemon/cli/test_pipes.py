"""Output into a pipe whose reader is gone (`dropsight search dog | head -1`): a quiet exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dropsight.daemon.contracts import ExitCode
from tests.daemon.helpers import dropsight
from tests.daemon.outputs.test_library import labelled_photo


def into_closed_pipe(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run dropsight with stdout a pipe nobody reads any more (as after `head` exits)."""
    read, write = os.pipe()
    os.close(read)  # before the command starts: its first write finds the reader gone
    try:
        return subprocess.run(
            [sys.executable, "-m", "dropsight.daemon", *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
            timeout=300,
        )
    finally:
        os.close(write)


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "library"
    for i in range(3):
        labelled_photo(root, f"dog{i}.jpg", {207: 0.9})
    return root


@pytest.mark.parametrize(
    "command",
    [
        ("search", "dog"),
        ("search", "dog", "--paths", "-0"),
        ("export",),
        ("models", "--json"),
    ],
)
def test_a_reader_gone_ends_the_command_quietly(library: Path, command: tuple[str, ...]) -> None:
    args = [*command, library] if command == ("export",) else list(command)
    if command[0] == "search":
        assert dropsight("index", "rebuild", library).returncode == 0
    done = into_closed_pipe(*args)
    assert done.returncode == ExitCode.READER_GONE == 141
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


def test_classify_json_into_a_closed_pipe(photos: dict[str, Path]) -> None:
    done = into_closed_pipe("classify", "--json", "--model", "efficientnet-lite0", photos["coffee"])
    assert done.returncode == ExitCode.READER_GONE, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
