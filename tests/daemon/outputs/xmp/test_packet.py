"""XMP keywords: what photo tools read back (exiftool, exiv2), merging, re-labelling, removal."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dropsight.config.settings import OutputSettings, Settings, WatchSettings
from dropsight.daemon.cli.xmp import xmp_command
from dropsight.daemon.contracts import SidecarRecord
from dropsight.daemon.outputs import sidecar
from dropsight.daemon.outputs.xmp import packet
from dropsight.daemon.outputs.xmp.sync import photos, remove_all, write_from_sidecars
from tests.daemon.outputs.test_sidecar import FACTS, MODEL, probs_with

SAMPLES = Path(__file__).parents[2] / "xmp_samples"
EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="needs exiftool")
OUR_TAGS = {"Subject", "HierarchicalSubject", "TagsList"}


def record_for(scores: dict[int, float], at: str = "2026-01-01T00:00:00Z") -> SidecarRecord:
    preds = sidecar.top_predictions(probs_with(scores), 5)
    record = sidecar.build("IMG.jpg", FACTS, MODEL, preds, categories=[])
    record["processed_at"] = at
    return record


GOLDEN = record_for({207: 0.6, 208: 0.32, 934: 0.05})  # golden + Labrador retriever, hot dog
TABBY = record_for({281: 0.8}, at="2026-02-02T00:00:00Z")


def exiftool(path: Path) -> dict[str, Any]:
    """Every tag exiftool reads from an XMP file, as group:name -> value."""
    assert EXIFTOOL is not None
    out = subprocess.run(
        [EXIFTOOL, "-j", "-G1", "-struct", "-charset", "filename=utf8", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    tags: dict[str, Any] = json.loads(out)[0]
    return {k: v for k, v in tags.items() if not k.startswith(("System:", "SourceFile"))}


GROUPS = {"Subject": "XMP-dc", "HierarchicalSubject": "XMP-lr", "TagsList": "XMP-digiKam"}


def listed(tags: dict[str, Any], name: str) -> list[str]:
    """A list tag as strings (exiftool gives a lone item as a scalar)."""
    value = tags.get(f"{GROUPS[name]}:{name}", [])
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def photo_in(folder: Path, name: str = "IMG.jpg") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    photo = folder / name
    photo.write_bytes(b"not looked at")
    return photo


def test_keywords_are_confident_friendly_names_and_their_categories() -> None:
    kw = packet.keywords(GOLDEN, 0.3)
    assert kw.flat == ("golden retriever", "Labrador retriever", "animal", "mammal", "dog")
    assert kw.hierarchical == [
        "Dropsight|animal|mammal|dog|golden retriever",
        "Dropsight|animal|mammal|dog|Labrador retriever",
    ]
    assert kw.tags_list[0] == "Dropsight/animal/mammal/dog/golden retriever"
    assert "hotdog" in packet.keywords(GOLDEN, 0.01).flat
    assert packet.keywords(GOLDEN, 0.99).flat == ()
    error = sidecar.build("x.jpg", None, MODEL, [], ("corrupt", "bad"))
    assert packet.keywords(error, 0.0).flat == ()


@needs_exiftool
def test_new_xmp_is_read_by_exiftool_and_exiv2(tmp_path: Path) -> None:
    photo = photo_in(tmp_path / "Été 2024", "Zoë à la plage.jpg")
    assert packet.write(photo, GOLDEN, 0.3, "IMG.jpg.xmp") == "written"
    path = tmp_path / "Été 2024" / "Zoë à la plage.jpg.xmp"
    tags = exiftool(path)
    assert listed(tags, "Subject") == list(packet.keywords(GOLDEN, 0.3).flat)
    assert listed(tags, "HierarchicalSubject") == packet.keywords(GOLDEN, 0.3).hierarchical
    assert listed(tags, "TagsList") == packet.keywords(GOLDEN, 0.3).tags_list
    assert tags["XMP-dropsight:Model"] == MODEL.name
    if shutil.which("exiv2"):
        out = subprocess.run(
            ["exiv2", "-PXkv", str(path)], capture_output=True, text=True, check=True
        ).stdout
        assert "Xmp.dc.subject" in out and "golden retriever" in out
        assert (
            "XmpBag"
            in subprocess.run(
                ["exiv2", "-PXkyv", str(path)], capture_output=True, text=True, check=True
            ).stdout
        )


def test_writing_the_same_labels_again_leaves_the_file_alone(tmp_path: Path) -> None:
    photo = photo_in(tmp_path)
    assert packet.write(photo, GOLDEN, 0.3, "IMG.jpg.xmp") == "written"
    path = packet.xmp_path(photo)
    stamp = path.stat().st_mtime_ns
    assert packet.write(photo, GOLDEN, 0.3, "IMG.jpg.xmp") == "unchanged"
    assert path.stat().st_mtime_ns == stamp


@needs_exiftool
@pytest.mark.parametrize("sample", ["darktable", "digikam"])
def test_merge_keeps_everything_of_other_tools_and_relabel_swaps_only_ours(
    tmp_path: Path, sample: str
) -> None:
    photo = photo_in(tmp_path)
    path = packet.xmp_path(photo)
    shutil.copy(SAMPLES / f"{sample}.xmp", path)
    original = exiftool(path)
    user_subjects = listed(original, "Subject")

    assert packet.write(photo, GOLDEN, 0.3, "IMG.jpg.xmp") == "written"
    merged = exiftool(path)
    for key, value in original.items():  # ratings, titles, darktable history, labels ...
        if key.split(":")[1] not in OUR_TAGS:
            assert merged[key] == value, key
    subjects = listed(merged, "Subject")
    assert subjects[: len(user_subjects)] == user_subjects
    assert "golden retriever" in subjects and "dog" in subjects
    assert subjects.count("dog") == 1  # the digiKam sample has "dog" already: not doubled
    for name in ("HierarchicalSubject", "TagsList"):
        assert set(listed(original, name)) <= set(listed(merged, name))

    # Labelled again (another photo under the same name, or another model): ours swapped.
    assert packet.write(photo, TABBY, 0.3, "IMG.jpg.xmp") == "written"
    relabelled = exiftool(path)
    subjects = listed(relabelled, "Subject")
    assert "golden retriever" not in subjects and "tabby" in subjects and "cat" in subjects
    assert [s for s in subjects if s in user_subjects] == user_subjects
    assert not [h for h in listed(relabelled, "HierarchicalSubject") if "retriever" in h]

    # Removed: the file says what it said before Dropsight touched it.
    assert packet.remove(photo, "IMG.jpg.xmp") == "written"
    assert exiftool(path) == original


def test_an_empty_file_holds_nothing_to_keep(tmp_path: Path) -> None:
    photo = photo_in(tmp_path)
    packet.xmp_path(photo).write_bytes(b"")
    assert packet.write(photo, GOLDEN, 0.3, "IMG.jpg.xmp") == "written"
    assert "dog" in packet.read_keywords(packet.xmp_path(photo))[packet.SUBJECT]


def test_remove_deletes_a_file_holding_only_ours(tmp_path: Path) -> None:
    photo = photo_in(tmp_path)
    packet.write(photo, GOLDEN, 0.3, "IMG.xmp")
    path = tmp_path / "IMG.xmp"
    assert path.is_file()
    assert packet.remove(photo, "IMG.xmp") == "removed"
    assert not path.exists()
    assert packet.remove(photo, "IMG.xmp") == "absent"


def test_no_confident_label_creates_no_file_and_clears_ours(tmp_path: Path) -> None:
    photo = photo_in(tmp_path)
    unsure = record_for({207: 0.2, 208: 0.1})
    assert packet.write(photo, unsure, 0.3, "IMG.jpg.xmp") == "absent"
    assert not packet.xmp_path(photo).exists()
    shutil.copy(SAMPLES / "digikam.xmp", packet.xmp_path(photo))
    packet.write(photo, GOLDEN, 0.3, "IMG.jpg.xmp")
    assert packet.write(photo, unsure, 0.3, "IMG.jpg.xmp") == "written"
    kept = packet.read_keywords(packet.xmp_path(photo))
    assert kept[packet.SUBJECT] == ["Grandma", "Rex", "dog"]
    assert kept[packet.ADDED] == []


@pytest.mark.parametrize(
    "content", [b"<x:xmpmeta garbage", b"not xml at all", b"\xff\xfe\x00binary"]
)
def test_malformed_xmp_is_left_untouched_with_a_clear_error(tmp_path: Path, content: bytes) -> None:
    photo = photo_in(tmp_path / "photos")
    path = packet.xmp_path(photo)
    path.write_bytes(content)
    with pytest.raises(packet.XmpError, match=r"not a valid XMP file.*left as it was"):
        packet.write(photo, GOLDEN, 0.3, "IMG.jpg.xmp")
    assert path.read_bytes() == content
    assert set(photo.parent.iterdir()) == {photo, path}  # no temp file left either


def test_folder_commands_write_from_sidecars_and_remove(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "lib"
    labelled = [photo_in(root / "a", f"{i}.jpg") for i in range(3)]
    for p in labelled:
        sidecar.write(p.with_name(p.name + ".json"), GOLDEN)
    unlabelled = photo_in(root / "b", "new.jpg")
    bad = photo_in(root / "b", "bad.jpg")
    sidecar.write(bad.with_name("bad.jpg.json"), GOLDEN)
    packet.xmp_path(bad).write_bytes(b"garbage")
    settings = Settings(watch=WatchSettings(folders=(root,)))

    tally = write_from_sidecars(settings, photos(settings, [root]))
    assert (tally.written, tally.unlabelled, len(tally.failed)) == (3, 1, 1)
    assert tally.failed[0][0] == bad
    assert all(packet.xmp_path(p).is_file() for p in labelled)
    assert not packet.xmp_path(unlabelled).exists()
    again = write_from_sidecars(settings, photos(settings, [root]), only_stale=True)
    assert (again.written, again.unchanged) == (0, 4)

    assert xmp_command(settings, "remove", []) == 1  # the malformed one is reported
    out = capsys.readouterr()
    assert "bad.jpg.xmp is not a valid XMP file" in out.err
    assert "3 removed" in out.out
    assert not any(packet.xmp_path(p).exists() for p in labelled)
    assert packet.xmp_path(bad).read_bytes() == b"garbage"
    assert remove_all(settings, photos(settings, [root])).removed == 0


def test_imgxmp_naming_follows_the_setting(tmp_path: Path) -> None:
    photo = photo_in(tmp_path, "IMG_1.jpeg")
    sidecar.write(photo.with_name("IMG_1.jpeg.json"), GOLDEN)
    settings = Settings(
        watch=WatchSettings(folders=(tmp_path,)), output=OutputSettings(xmp_name="IMG.xmp")
    )
    assert xmp_command(settings, "write", [tmp_path]) == 0
    assert (tmp_path / "IMG_1.xmp").is_file()
    assert not (tmp_path / "IMG_1.jpeg.xmp").exists()
