"""RAW photos: real DNG files (pidng) read back by exiftool and LibRaw, labelled from their
preview or a half-size demosaic, upright, with the full image's size."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rawpy
from PIL import Image

from dropsight.config.settings import WatchSettings
from dropsight.daemon.photos import imaging, raw
from dropsight.daemon.photos.filter import PhotoFilter
from tests.daemon.photos.dng import make_dng

PREVIEWS = {"preview": (540, 360), "no-preview": None, "tiny-preview": (160, 120)}


@pytest.fixture(scope="module")
def cat() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.chelsea())


def upright_pixels(picture: Image.Image, shown: tuple[int, int], folder: Path) -> np.ndarray:
    """The model input of the picture as an ordinary upright image of the shown size."""
    path = folder / "upright.png"
    picture.convert("RGB").resize(shown, Image.Resampling.BICUBIC).save(path)
    return imaging.load(path).pixels


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="needs exiftool")
def test_the_test_dngs_are_real_dngs_to_exiftool_and_libraw(
    tmp_path: Path, cat: Image.Image
) -> None:
    dng = make_dng(cat, tmp_path / "IMG_1.dng")
    out = subprocess.run(
        ["exiftool", "-j", "-a", "-G1", "-FileType", "-Orientation", "-PreviewImage", str(dng)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    tags = json.loads(out)[0]
    assert tags["File:FileType"] == "DNG"
    assert tags["IFD0:Orientation"] == "Rotate 90 CW"
    assert "IFD1:PreviewImage" in tags
    with rawpy.imread(str(dng)) as r:
        assert (r.sizes.width, r.sizes.height, r.sizes.flip) == (600, 400, 6)
        assert r.extract_thumb().format == rawpy.ThumbFormat.JPEG


@pytest.mark.parametrize("orientation", [1, 3, 6])
@pytest.mark.parametrize("preview", sorted(PREVIEWS))
def test_a_raw_photo_is_read_upright_at_its_full_size(
    tmp_path: Path,
    cat: Image.Image,
    orientation: int,
    preview: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dng = make_dng(cat, tmp_path / "IMG_1.DNG", orientation=orientation, preview=PREVIEWS[preview])
    demosaiced: list[int] = []
    half_size = raw._half_size

    def spied(*args: Any) -> Image.Image:
        demosaiced.append(1)
        return half_size(*args)

    monkeypatch.setattr(raw, "_half_size", spied)

    image = imaging.load(dng)
    shown = (400, 600) if orientation == 6 else (600, 400)
    assert (image.facts.width, image.facts.height) == shown  # the full image, as shown
    assert image.pixels.shape == (224, 224, 3)
    # A preview too small for the model is passed over for the sensor data.
    assert demosaiced == ([] if preview == "preview" else [1])
    right = correlation(image.pixels, upright_pixels(cat, shown, tmp_path))
    turned = cat.transpose(Image.Transpose.ROTATE_180)
    wrong = correlation(image.pixels, upright_pixels(turned, shown, tmp_path))
    assert right > 0.97 and right > wrong + 0.2, (right, wrong)


def test_a_raw_file_is_hashed_whole_and_decoded_from_memory(
    tmp_path: Path, cat: Image.Image
) -> None:
    import hashlib

    dng = make_dng(cat, tmp_path / "IMG_1.dng")
    read = imaging.read_file(dng)
    assert read.raw and read.refused is None
    assert read.facts.sha256 == hashlib.sha256(dng.read_bytes()).hexdigest()
    assert read.facts.size_bytes == dng.stat().st_size


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("IMG_2.NEF", b"II*\x00 not a camera file at all " * 40, "not_an_image"),
        ("IMG_3.cr3", b"", "empty_file"),
    ],
)
def test_a_broken_raw_file_gets_a_clear_error(
    tmp_path: Path, name: str, content: bytes, kind: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(imaging.ImageError) as caught:
        imaging.load(path)
    assert caught.value.kind == kind


def test_a_truncated_dng_gets_an_error_not_a_crash(tmp_path: Path, cat: Image.Image) -> None:
    dng = make_dng(cat, tmp_path / "IMG_1.dng", preview=None)
    dng.write_bytes(dng.read_bytes()[:2000])
    with pytest.raises(imaging.ImageError) as caught:
        imaging.load(dng)
    assert caught.value.kind in ("truncated", "corrupt", "not_an_image")


def test_raw_extensions_are_photos_by_default() -> None:
    accepts = PhotoFilter.from_settings(WatchSettings()).accepts
    for ext in ("dng", "CR2", "cr3", "NEF", "arw", "RAF", "orf", "RW2", "pef", "SRW"):
        assert accepts(Path(f"IMG_0001.{ext}")), ext
    assert WatchSettings().extensions >= raw.RAW_EXTENSIONS
