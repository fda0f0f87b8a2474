"""README's shell examples run exactly as written, in a temp home with a real library.

Every command of README's ```sh blocks runs with bash (pipes and `~` as a person's shell
has them), in order, against photos with sidecars, an index and XMP files made by Dropsight
itself, unless SKIPPED gives the reason it cannot run here. A `$ command` line followed by
output lines must print that output. The table of everyday words is tools/search_words.py's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.daemon.helpers import make_photo
from tests.daemon.outputs.test_library import labelled_photo

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent

# Commands that cannot run offline in a test, and why. Matched exactly (comment stripped).
SKIPPED = {
    "make run WATCH=~/Pictures/Dropsight": "sets up .venv and runs the service until stopped",
    "make test": "runs the whole suite, this test included",
    "dropsight service --watch ~/Pictures/Inbox": "runs until stopped (tests/daemon/service)",
    "dropsight tray": "needs a desktop session (tests/tray)",
    "dropsight service --xmp": "runs until stopped (tests/daemon/outputs/xmp/)",
    "dropsight bench --model efficientnet-lite0 --json": "minutes of CPU; a benchmark prints "
    "numbers, never assertions (and bench without --images is issue 22 item 6, elsewhere)",
    "dropsight events --json": "follows a running service until Ctrl+C (tests/daemon/outputs)",
    "dropsight backfill /nas/photos --ray HOST:6379": "needs a Ray cluster at HOST",
    "dropsight backfill ~/Pictures --ray HOST:6379 --ray-files driver": "needs a Ray cluster",
    "dropsight models get vgg16": "downloads 528 MB (tests/daemon/models/test_download.py)",
    "dropsight models import FILE.h5": "FILE.h5 stands for a weights file you have",
    "dropsight models convert vgg16": "needs VGG16's weights and 6 GB of memory (-m slow)",
    "dropsight models remove vgg16": "would delete the converted VGG16 this test session "
    "shares (tests/daemon/cli/test_modelscli.py)",
}
# A synopsis shows alternatives (`init|show|path`) or options (`[--json]`): not one command.
SYNOPSIS = re.compile(r"\w\|\w|\[[^\]]*\]")


@dataclass
class Example:
    """One command of a README block and the output it shows, if any."""

    line: int
    command: str
    output: list[str] = field(default_factory=list)


def examples() -> list[Example]:
    """Every command of README's ```sh blocks, in order, with the output a `$ ` line shows."""
    found: list[Example] = []
    in_sh = prompt = False
    for number, raw in enumerate(README.read_text("utf-8").splitlines(), 1):
        if raw.startswith("```"):
            in_sh, prompt = raw.strip() == "```sh", False
        elif not in_sh:
            continue
        elif raw.startswith("$ "):
            found.append(Example(number, raw[2:].strip()))
            prompt = True
        elif prompt:
            if raw.strip():
                found[-1].output.append(raw)
        else:
            command = re.split(r"\s{2,}#|^#", raw, maxsplit=1)[0].strip()
            if command:
                found.append(Example(number, command))
    return found


def reason_to_skip(command: str) -> str | None:
    """Why a command is not run here (None: it runs)."""
    if command in SKIPPED:
        return SKIPPED[command]
    if SYNOPSIS.search(command.replace("||", "")):
        return "a synopsis of alternatives or options, not one command"
    return None


@pytest.fixture
def home(tmp_path: Path, app_home: Path, photos: dict[str, Path]) -> Path:
    """A person's home: photos labelled, indexed, with XMP; ~/Desktop/beach; a work folder
    (where the commands run) with photo.jpg and IMG_0001.jpg."""
    home = tmp_path / "home"
    pictures, work = home / "Pictures", home / "work"
    labelled_photo(pictures / "2024", "golden.jpg", {207: 0.9})
    labelled_photo(pictures / "2024", "beach.jpg", {978: 0.8})  # seashore
    labelled_photo(pictures / "2025", "tabby.jpg", {281: 0.85})
    labelled_photo(work, "IMG_0001.jpg", {207: 0.8312})
    for photo in [*pictures.rglob("*.jpg"), work / "IMG_0001.jpg"]:  # real photos under them
        make_photo(photo, seed=len(photo.name))
    shutil.copy(photos["coffee"], work / "photo.jpg")
    (home / "Desktop" / "beach").mkdir(parents=True)
    for setup in ("dropsight index rebuild ~/Pictures", "dropsight xmp write ~/work"):
        assert sh(home, setup).returncode == 0, setup
    return home


def person(home: Path) -> dict[str, str]:
    """The environment of someone who installed Dropsight (the venv's bin first on PATH)."""
    return {**os.environ, "HOME": str(home), "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin"}


def sh(home: Path, command: str) -> subprocess.CompletedProcess[str]:
    """Run a command line as that person's bash would, in ~/work."""
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        env=person(home),
        cwd=home / "work",
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_readme_examples_run_as_written(home: Path) -> None:
    ran, skipped = [], []
    for example in examples():
        why = reason_to_skip(example.command)
        if why is not None:
            skipped.append((example.command, why))
            continue
        done = sh(home, example.command)
        where = f"README.md:{example.line}: {example.command}"
        assert done.returncode == 0, f"{where}\n{done.stdout}{done.stderr}"
        assert "Traceback" not in done.stderr, f"{where}\n{done.stderr}"
        if example.output:
            assert done.stdout.splitlines() == example.output, where
        ran.append(example.command)
    assert (home / "Desktop" / "beach" / "beach.jpg").is_file()  # search beach | xargs cp
    assert (home / "work" / "labels.csv").read_text("utf-8").startswith("path,status,name1")
    assert len(ran) >= 10 and len(skipped) >= len(SKIPPED)
    print("skipped:", *(f"  {c}: {w}" for c, w in skipped), sep="\n")


def test_search_finds_what_readme_shows(home: Path) -> None:
    pictures = home / "Pictures"
    golden = sh(home, "dropsight search golden retriever --min-score 0.5 --in ~/Pictures/2024")
    assert golden.stdout.startswith(f"{pictures / '2024' / 'golden.jpg'}\t")
    cats = sh(home, "dropsight search cat --json | jq .path")
    assert cats.stdout.strip() == f'"{pictures / "2025" / "tabby.jpg"}"'
    beach = sh(home, "dropsight search beach")
    assert "beach: showing lakeside, seashore, sandbar" in beach.stderr


def test_readme_table_is_what_the_tool_prints() -> None:
    made = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "search_words.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert made.strip() in README.read_text("utf-8")
