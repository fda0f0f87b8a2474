"""A real service (process, offline model) writing XMP keywords beside hostile files and
RAW photos: every photo labelled, every file that is not ours left byte-for-byte."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import rawpy
from PIL import Image

from dropsight.daemon.outputs.xmp import packet
from tests.daemon.helpers import dropsight, load_valid, sidecars, temp_files, wait_for
from tests.daemon.photos.dng import make_dng
from tests.daemon.service.test_service_process import ServiceProcess, _start

CORPUS = Path(__file__).parents[1] / "xmp_samples" / "corpus"
LIGHTROOM = (CORPUS / "lightroom.xmp").read_bytes()
BILLION = 200 << 20


def fingerprint(path: Path) -> tuple[object, ...]:
    """What a file at `path` is, without following or opening a symlink or FIFO."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return ("link", str(path.readlink()))
    if not stat.S_ISREG(st.st_mode):
        return ("special", stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode))
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return ("file", h.hexdigest(), st.st_size, stat.S_IMODE(st.st_mode), st.st_mtime_ns)


def hostile(folder: Path, private: Path, names: list[str]) -> dict[str, Path]:
    """Issue 19's seven hostile XMP files, beside the first seven photos."""
    paths = {kind: folder / f"{name}.xmp" for kind, name in zip(KINDS, names, strict=False)}
    paths["bad-tag"].write_bytes(LIGHTROOM.replace(b"</dc:title>", b"</dc:titel>"))
    paths["truncated"].write_bytes(LIGHTROOM[: len(LIGHTROOM) * 2 // 3])
    paths["not-utf8"].write_bytes(LIGHTROOM.replace(b"MyTrip", b"My\xe9Trip"))
    secret = private / "secret.xmp"
    secret.write_bytes(LIGHTROOM.replace(b"MyTrip", b"MySecret"))
    secret.chmod(0o600)
    paths["symlink"].symlink_to(secret)
    with paths["200 MB"].open("wb") as f:  # sparse: 200 MB that cost no disk
        f.write(LIGHTROOM)
        f.truncate(BILLION)
    os.mkfifo(paths["fifo"])
    paths["read-only"].write_bytes(LIGHTROOM)
    paths["read-only"].chmod(0o444)
    return paths


@pytest.fixture
def services() -> Iterator[list[ServiceProcess]]:
    started: list[ServiceProcess] = []
    yield started
    for s in started:
        s.finish(signal.SIGKILL)


KINDS = ("bad-tag", "truncated", "not-utf8", "symlink", "200 MB", "fifo", "read-only")


def status_errors() -> list[dict[str, str]]:
    out = dropsight("status", "--json")
    assert out.returncode == 0, out.stderr
    errors: list[dict[str, str]] = json.loads(out.stdout)["errors"]
    return errors


def test_hostile_xmp_files_beside_100_photos_are_left_and_reported(
    tmp_path: Path, services: list[ServiceProcess], hundred_photos: list[Path]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    photos = hundred_photos
    assert len(photos) == 100
    for p in photos:
        shutil.copy(p, folder / p.name)
    bad = hostile(folder, private, [p.name for p in photos[: len(KINDS)]])
    before = {kind: fingerprint(path) for kind, path in bad.items()}
    secret_before = fingerprint(private / "secret.xmp")
    config = tmp_path / "config.toml"
    config.write_text('[output]\nxmp = "beside"\nxmp_min_score = 0.0\n', "utf-8")

    svc = _start(services, folder, tmp_path, extra=["--config", str(config)])
    svc.wait_ready()
    wait_for(lambda: len(sidecars(folder)) == 100, 300, "100 sidecars")
    good = [folder / f"{p.name}.xmp" for p in photos[len(KINDS) :]]
    wait_for(lambda: all(x.is_file() for x in good), 120, "93 XMP files")
    reported = {str(path.with_suffix("")) for path in bad.values()}
    wait_for(
        lambda: reported <= {e["path"] for e in status_errors()},
        120,
        "every hostile file in the status errors",
    )
    peak_kb = _peak_rss_kb(svc.proc.pid)
    assert svc.finish(signal.SIGTERM) == 0

    for p in photos:
        record = load_valid(folder / f"{p.name}.json")
        assert record["status"] == "ok", p.name
    for x in good:
        assert packet.read_keywords(x)[packet.ADDED], x.name
    assert {kind: fingerprint(path) for kind, path in bad.items()} == before
    assert fingerprint(private / "secret.xmp") == secret_before
    log = svc.output()
    messages = {e["path"]: e["message"] for e in status_errors_from_log(log, bad)}
    for kind, path in bad.items():
        assert str(path) in log, kind  # the warning in the log names the file
        assert "left as it was" in messages[str(path)], (kind, messages[str(path)])
    assert peak_kb < 1 << 20, f"peak RSS {peak_kb} kB: the 200 MB file was read"
    assert not temp_files(folder)
    print(f"\n100 photos labelled, 93 XMP written, 7 hostile files left; peak RSS {peak_kb} kB")


def status_errors_from_log(log: str, bad: dict[str, Path]) -> list[dict[str, str]]:
    """The service's warnings about each hostile file, as (path, message)."""
    found = []
    for path in bad.values():
        lines = [line for line in log.splitlines() if str(path) in line and "XMP" in line]
        assert lines, path
        found.append({"path": str(path), "message": lines[-1]})
    return found


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="needs exiftool")
def test_raw_photos_are_labelled_upright_and_get_the_xmp_names_photo_managers_expect(
    tmp_path: Path, services: list[ServiceProcess], photos: dict[str, Path]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    cat = Image.open(photos["chelsea"])
    with_preview = make_dng(cat, folder / "IMG_1.dng")
    without = make_dng(cat, folder / "IMG_2.DNG", preview=None)
    raw_bytes = {p: p.read_bytes() for p in (with_preview, without)}
    config = tmp_path / "config.toml"
    config.write_text('[output]\nxmp = "beside"\n', "utf-8")

    svc = _start(services, folder, tmp_path, extra=["--config", str(config)])
    svc.wait_ready()
    wait_for(lambda: len(sidecars(folder)) == 2, 120, "2 sidecars")
    wait_for(lambda: (folder / "IMG_2.DNG.xmp").is_file(), 60, "IMG_2.DNG.xmp")
    wait_for(lambda: (folder / "IMG_1.dng.xmp").is_file(), 60, "IMG_1.dng.xmp")
    assert svc.finish(signal.SIGTERM) == 0
    for p in (with_preview, without):
        record = load_valid(p.with_name(p.name + ".json"))
        assert record["status"] == "ok"
        assert (record["image"]["width"], record["image"]["height"]) == (400, 600)
        assert 281 <= record["predictions"][0]["class_index"] <= 285, p.name  # a cat, upright
        assert p.read_bytes() == raw_bytes[p]  # never written into the RAW file
        with rawpy.imread(str(p)) as r:
            assert r.sizes.flip == 6
        xmp = p.with_name(p.name + ".xmp")
        out = subprocess.run(
            ["exiftool", "-j", "-Subject", "-HierarchicalSubject", str(xmp)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        tags = json.loads(out)[0]
        assert "cat" in tags["Subject"], tags
    assert not list(folder.glob("IMG_?.xmp"))  # Lightroom naming only when asked for
