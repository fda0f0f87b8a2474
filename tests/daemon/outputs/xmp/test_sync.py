"""The XMP sink: photos sharing one `IMG.xmp` (RAW+JPEG pairs) and photos that go."""

from __future__ import annotations

from pathlib import Path

from dropsight.config.settings import OutputSettings, Settings, WatchSettings
from dropsight.daemon.outputs import sidecar
from dropsight.daemon.outputs.protocol import Context, Written
from dropsight.daemon.outputs.xmp import packet
from dropsight.daemon.outputs.xmp.sync import XmpSink, photos, write_from_sidecars
from tests.daemon.outputs.xmp.test_packet import GOLDEN, TABBY, photo_in


def labelled(photo: Path, record: sidecar.SidecarRecord) -> Written:
    json_path = photo.with_name(photo.name + ".json")
    sidecar.write(json_path, record)
    return Written(photo, photo.parent, json_path, record)


def sink_for(folder: Path, name: packet.XmpName = "IMG.xmp") -> tuple[XmpSink, list[str]]:
    errors: list[str] = []
    sink = XmpSink(Context(on_error=lambda _p, message: errors.append(message)))
    sink.configure(
        Settings(
            watch=WatchSettings(folders=(folder,)),
            output=OutputSettings(xmp="beside", xmp_name=name),
        )
    )
    return sink, errors


def subjects(path: Path) -> set[str]:
    return set(packet.read_keywords(path)[packet.SUBJECT])


def test_photos_sharing_imgxmp_share_their_keywords_and_the_one_left_keeps_its_own(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "photos"
    jpg, png = photo_in(folder, "IMG_1.jpg"), photo_in(folder, "IMG_1.png")
    sink, errors = sink_for(folder)
    shared = folder / "IMG_1.xmp"
    sink.accept([labelled(jpg, GOLDEN)])
    sink.accept([labelled(png, TABBY)])
    # Today: whichever was labelled last.
    assert {"golden retriever", "tabby"} <= subjects(shared)

    png.unlink()
    png.with_name("IMG_1.png.json").unlink()  # the sidecar output forgets it first
    sink.forget(png, folder)
    # Today: still the PNG's tabby, describing a photo that is gone.
    assert "tabby" not in subjects(shared) and "cat" not in subjects(shared)
    assert "golden retriever" in subjects(shared)

    jpg.unlink()
    jpg.with_name("IMG_1.jpg.json").unlink()
    sink.forget(jpg, folder)
    assert not shared.exists()  # only ours was in it
    assert errors == []


def test_a_folder_pass_writes_the_union_for_a_pair(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    raw, jpg = photo_in(folder, "IMG_2.tif"), photo_in(folder, "IMG_2.JPG")
    labelled(raw, TABBY)
    labelled(jpg, GOLDEN)
    settings = Settings(
        watch=WatchSettings(folders=(folder,)), output=OutputSettings(xmp_name="IMG.xmp")
    )
    tally = write_from_sidecars(settings, photos(settings, [folder]))
    assert tally.failed == []
    assert {"golden retriever", "tabby"} <= subjects(folder / "IMG_2.xmp")


def test_with_imgjpgxmp_naming_each_photo_keeps_its_own_file(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    jpg, png = photo_in(folder, "IMG_1.jpg"), photo_in(folder, "IMG_1.png")
    sink, _ = sink_for(folder, "IMG.jpg.xmp")
    sink.accept([labelled(jpg, GOLDEN), labelled(png, TABBY)])
    assert "tabby" not in subjects(folder / "IMG_1.jpg.xmp")
    assert "golden retriever" not in subjects(folder / "IMG_1.png.xmp")
