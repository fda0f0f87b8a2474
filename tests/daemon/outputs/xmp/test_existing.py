"""An XMP file already there is the user's: never lost, widened, followed or read unbounded
(issue 19's hostile files, each once as a photo tool or a person could leave it)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from dropsight.daemon.outputs.xmp import packet
from tests.daemon.outputs.xmp.readers import darktable_tags, digikam_tags, read_xmp
from tests.daemon.outputs.xmp.test_packet import GOLDEN, TABBY, photo_in

CORPUS = Path(__file__).parents[2] / "xmp_samples" / "corpus"
LIGHTROOM = (CORPUS / "lightroom.xmp").read_bytes()
UNSURE = 0.99  # no label scores this: Dropsight has nothing to add


def damaged() -> dict[str, bytes]:
    """A correct header with one bad tag, a truncated file, one byte that is not UTF-8."""
    return {
        "bad-tag": LIGHTROOM.replace(b"</dc:title>", b"</dc:titel>"),
        "truncated": LIGHTROOM[: len(LIGHTROOM) * 2 // 3],
        "not-utf8": LIGHTROOM.replace(b"MyTrip", b"My\xe9Trip"),
    }


@pytest.mark.parametrize("kind", sorted(damaged()))
@pytest.mark.parametrize("min_score", [0.3, UNSURE])
def test_a_file_exiv2_reads_only_in_part_is_left_untouched(
    tmp_path: Path, kind: str, min_score: float
) -> None:
    photo = photo_in(tmp_path / "photos")
    path = packet.xmp_path(photo)
    content = damaged()[kind]
    path.write_bytes(content)
    with pytest.raises(packet.XmpError, match="left as it was"):
        packet.write(photo, GOLDEN, min_score, "IMG.jpg.xmp")  # today: replaced, or deleted
    with pytest.raises(packet.XmpError, match="left as it was"):
        packet.remove(photo, "IMG.jpg.xmp")
    assert path.read_bytes() == content
    assert sorted(photo.parent.iterdir()) == sorted([photo, path])


@pytest.mark.parametrize("mode", [0o600, 0o640])
def test_mode_and_owner_of_an_existing_file_are_kept(tmp_path: Path, mode: int) -> None:
    photo = photo_in(tmp_path / "photos")
    path = packet.xmp_path(photo)
    path.write_bytes(LIGHTROOM)
    path.chmod(mode)
    owner = (path.stat().st_uid, path.stat().st_gid)
    if os.geteuid() == 0:  # as root the test can give it to another user, as a share would
        owner = (4242, 4343)
        os.chown(path, *owner)
    assert packet.write(photo, GOLDEN, 0.3, "IMG.jpg.xmp") == "written"
    st = path.stat()
    assert stat.S_IMODE(st.st_mode) == mode  # today: 0644, readable by everyone
    assert (st.st_uid, st.st_gid) == owner
    assert "golden retriever" in read_xmp(path)["Xmp.dc.subject"]
    assert packet.remove(photo, "IMG.jpg.xmp") == "written"
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_a_read_only_file_is_left_as_it_was(tmp_path: Path) -> None:
    photo = photo_in(tmp_path / "photos")
    path = packet.xmp_path(photo)
    path.write_bytes(LIGHTROOM)
    path.chmod(0o444)
    with pytest.raises(packet.XmpError, match="read-only"):
        packet.write(photo, GOLDEN, 0.3, "IMG.jpg.xmp")  # today: replaced by a 0644 file
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert path.read_bytes() == LIGHTROOM


@pytest.mark.parametrize("target", ["private", "missing"])
def test_a_symlink_is_never_followed(tmp_path: Path, target: str) -> None:
    elsewhere = tmp_path / "private"
    elsewhere.mkdir(mode=0o700)
    secret = elsewhere / "secret.xmp"
    if target == "private":
        secret.write_bytes(LIGHTROOM.replace(b"MyTrip", b"MySecret"))
        secret.chmod(0o600)
    before = secret.read_bytes() if secret.exists() else None
    photo = photo_in(tmp_path / "shared")
    path = packet.xmp_path(photo)
    path.symlink_to(secret)
    for action in (
        lambda: packet.write(photo, GOLDEN, 0.3, "IMG.jpg.xmp"),
        lambda: packet.write(photo, GOLDEN, UNSURE, "IMG.jpg.xmp"),
        lambda: packet.remove(photo, "IMG.jpg.xmp"),
        lambda: packet.read_keywords(path),
    ):
        with pytest.raises(packet.XmpError, match="symbolic link"):
            action()
    assert path.is_symlink() and path.readlink() == secret
    assert (secret.read_bytes() if secret.exists() else None) == before
    assert sorted(p.name for p in photo.parent.iterdir()) == ["IMG.jpg", "IMG.jpg.xmp"]


def test_an_xmp_file_above_4_mb_is_refused_unread(tmp_path: Path) -> None:
    photo = photo_in(tmp_path / "photos")
    path = packet.xmp_path(photo)
    # Valid XMP (exiv2 and exiftool read it), padded with whitespace as packets may be.
    big = LIGHTROOM.replace(b"</x:xmpmeta>", b" " * (5 << 20) + b"</x:xmpmeta>")
    path.write_bytes(big)
    with pytest.raises(packet.XmpError, match=r"5\.0 MB, more than the 4 MB"):
        packet.write(photo, GOLDEN, 0.3, "IMG.jpg.xmp")  # today: read whole, then merged
    assert path.read_bytes() == big


def test_a_fifo_never_blocks_the_writer(tmp_path: Path) -> None:
    photo = photo_in(tmp_path / "photos")
    path = packet.xmp_path(photo)
    os.mkfifo(path)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            packet.write(photo, GOLDEN, 0.3, "IMG.jpg.xmp")
        except BaseException as exc:  # handed to the test
            errors.append(exc)

    writer = threading.Thread(target=run, daemon=True)
    writer.start()
    writer.join(60)  # a deadlock guard, not a timing: it returns at once or never
    if writer.is_alive():  # today: blocked in open(); free it so the test run can go on
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        writer.join(60)
        pytest.fail("writing keywords blocked on a FIFO at the XMP path")
    assert len(errors) == 1 and isinstance(errors[0], packet.XmpError)
    assert "not a regular file" in str(errors[0])
    assert stat.S_ISFIFO(os.lstat(path).st_mode)


@pytest.mark.parametrize("style", ["rename", "inplace"])
def test_another_program_saving_every_millisecond_loses_no_save(tmp_path: Path, style: str) -> None:
    photo = photo_in(tmp_path / "photos")
    path = packet.xmp_path(photo)
    editor_script = Path(__file__).with_name("editor.py")
    path.write_bytes(b"")  # the editor saves over an existing file
    editor = subprocess.Popen(
        [sys.executable, str(editor_script), str(path), "1500", style],
        stdout=subprocess.PIPE,
        text=True,
    )
    tries = merges = 0
    while editor.poll() is None:
        tries += 1
        try:
            packet.write(photo, GOLDEN if tries % 2 else TABBY, 0.3, "IMG.jpg.xmp")
            merges += 1
        except (packet.XmpError, OSError):
            pass  # caught it half-written (in place) or changing throughout: tried later
    out, _ = editor.communicate()
    assert editor.returncode == 0
    assert merges > 0 and tries > 50  # the two really ran side by side
    assert b'xmp:Label="edit-1500"' in path.read_bytes()  # its last save is what stays
    # Today hundreds of the 1500 saves are lost. A program that saves by renaming (exiftool,
    # exiv2) loses none; one that rewrites the file in place (darktable) can still lose the
    # save it is making at the instant of the swap: it writes through a handle it opened on
    # the old file (about 1 in 1500 saves every few runs at this pace).
    allowed = 0 if style == "rename" else 2
    assert int(out) <= allowed, f"{out.strip()} of 1500 saves lost to {merges} of {tries} merges"
    assert not [p for p in photo.parent.iterdir() if "dropsight-tmp" in p.name]


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="needs exiftool")
def test_keywords_merged_into_a_corpus_file_keep_their_readers_views(tmp_path: Path) -> None:
    photo = photo_in(tmp_path / "photos")
    path = packet.xmp_path(photo)
    path.write_bytes(LIGHTROOM)
    packet.write(photo, GOLDEN, 0.3, "IMG.jpg.xmp")
    xmp = read_xmp(path)
    assert "MyTrip" in digikam_tags(xmp) and "MyTrip" in darktable_tags(xmp)
