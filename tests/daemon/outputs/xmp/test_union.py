"""Every photo manager keeps showing the user's keywords: the corpus read as the apps read it
(readers.py) after Dropsight writes, relabels, removes, and after darktable rewrites a file."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dropsight.daemon.outputs.xmp import packet
from tests.daemon.outputs.xmp.readers import (
    darktable_rewrite,
    darktable_tags,
    digikam_tags,
    read_xmp,
    user_values,
)
from tests.daemon.outputs.xmp.test_packet import photo_in, record_for

CORPUS = Path(__file__).parents[2] / "xmp_samples" / "corpus"
SAMPLES = sorted([*CORPUS.glob("*.xmp"), *CORPUS.parent.glob("*.xmp")])
PUG = record_for({254: 0.9})
TABBY = record_for({281: 0.8}, at="2026-02-02T00:00:00Z")
OURS_PUG = {"Dropsight/animal/mammal/dog/pug"}
OURS_TABBY = {"Dropsight/animal/mammal/cat/tabby"}


def bar(tags: set[str]) -> set[str]:
    """digiKam's paths in darktable's spelling."""
    return {t.replace("/", "|") for t in tags}


def views(path: Path) -> tuple[set[str], set[str]]:
    xmp = read_xmp(path)
    return digikam_tags(xmp), darktable_tags(xmp)


@pytest.fixture(params=SAMPLES, ids=lambda p: f"{p.parent.name}-{p.stem}")
def sample(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path]:
    photo = photo_in(tmp_path)
    path = packet.xmp_path(photo)
    shutil.copy(request.param, path)
    return photo, path


def test_each_app_sees_the_users_keywords_and_ours(sample: tuple[Path, Path]) -> None:
    photo, path = sample
    before = read_xmp(path)
    dk, dt = digikam_tags(before), darktable_tags(before)
    assert dk and dt  # every sample has keywords the user sees

    assert packet.write(photo, PUG, 0.3, "IMG.jpg.xmp") == "written"
    after = read_xmp(path)
    assert digikam_tags(after) >= dk | OURS_PUG  # today: digiKam lost MyTrip and more
    assert darktable_tags(after) >= dt | bar(OURS_PUG)
    # Nothing invented: the user's keywords from any field, and ours.
    known = dk | digikam_tags(before, read_all=True) | set(packet.keywords(PUG, 0.3).flat)
    assert digikam_tags(after) <= known | OURS_PUG
    assert user_values(after) == user_values(before)  # ratings, labels, titles, history

    assert packet.write(photo, TABBY, 0.3, "IMG.jpg.xmp") == "written"
    relabelled = read_xmp(path)
    assert digikam_tags(relabelled) >= dk | OURS_TABBY
    assert darktable_tags(relabelled) >= dt | bar(OURS_TABBY)
    assert not any("pug" in t for t in digikam_tags(relabelled) | darktable_tags(relabelled))
    assert user_values(relabelled) == user_values(before)

    assert packet.remove(photo, "IMG.jpg.xmp") == "written"
    assert read_xmp(path) == before  # every value as before Dropsight, mirrored copies gone


def test_darktable_rewriting_our_file_loses_nothing_and_remove_leaves_no_trace(
    sample: tuple[Path, Path],
) -> None:
    photo, path = sample
    before = read_xmp(path)
    dk, dt = digikam_tags(before), darktable_tags(before)
    packet.write(photo, PUG, 0.3, "IMG.jpg.xmp")
    darktable_rewrite(path)  # flattens our path into dc:subject: "Dropsight", "dog", ...
    rewritten = read_xmp(path)
    assert "Dropsight" in rewritten["Xmp.dc.subject"]
    assert darktable_tags(rewritten) >= dt | bar(OURS_PUG)
    assert digikam_tags(rewritten) >= dk | OURS_PUG

    assert packet.write(photo, TABBY, 0.3, "IMG.jpg.xmp") == "written"  # relabelled after it
    relabelled = read_xmp(path)
    assert darktable_tags(relabelled) >= dt | bar(OURS_TABBY)
    assert digikam_tags(relabelled) >= dk | OURS_TABBY
    assert "pug" not in json.dumps(relabelled)

    assert packet.remove(photo, "IMG.jpg.xmp") == "written"
    removed = read_xmp(path)
    assert darktable_tags(removed) >= dt
    assert digikam_tags(removed) >= dk
    everything = json.dumps(removed)
    assert "Dropsight" not in everything and "dropsight" not in everything
    assert "tabby" not in everything
    kept = {k: v for k, v in user_values(removed).items() if k != "Xmp.xmp.Rating"}
    assert kept == {k: v for k, v in user_values(before).items() if k != "Xmp.xmp.Rating"}


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="needs exiftool")
def test_exiftool_reads_the_removed_file_as_before(sample: tuple[Path, Path]) -> None:
    photo, path = sample
    original = _exiftool(path)
    packet.write(photo, PUG, 0.3, "IMG.jpg.xmp")
    packet.remove(photo, "IMG.jpg.xmp")
    assert _exiftool(path) == original


def _exiftool(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["exiftool", "-j", "-G1", "-struct", str(path)], capture_output=True, text=True, check=True
    ).stdout
    tags: dict[str, Any] = json.loads(out)[0]
    # The toolkit names the last writer (exiv2 after Dropsight): not a value of the user's.
    drop = ("System:", "SourceFile", "XMP-x:XMPToolkit", "ExifTool:")
    return {k: v for k, v in tags.items() if not k.startswith(drop)}


def test_a_label_under_two_categories_gets_both_paths() -> None:
    espresso = packet.keywords(record_for({967: 0.9}), 0.3)
    assert espresso.hierarchical == ["Dropsight|food|espresso", "Dropsight|drink|espresso"]
    minivan = packet.keywords(record_for({656: 0.9}), 0.3)
    assert minivan.tags_list == [
        "Dropsight/vehicle/car/minivan",
        "Dropsight/vehicle/truck/minivan",
    ]
    assert set(minivan.flat) == {"minivan", "vehicle", "car", "truck"}
