"""Decoding real and hostile image files into model inputs (daemon.imaging)."""

from __future__ import annotations

import hashlib
import io
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from dropsight.config.settings import ModelSettings, Settings
from dropsight.daemon.photos import imaging
from dropsight.daemon.photos.imaging import ImageError, prepare_bytes, read_file
from dropsight.daemon.photos.imaging import load as prepare
from dropsight.daemon.pipeline import decode as stage
from dropsight.daemon.pipeline.labelling import Rules
from dropsight.daemon.pipeline.stages import Options, classify_paths
from dropsight.daemon.runtime.classifier import open_classifier

RED = (255, 0, 0)
BLUE = (0, 0, 255)
WHITE = (255.0, 255.0, 255.0)


def facts(data: bytes) -> imaging.FileFacts:
    return imaging.FileFacts(hashlib.sha256(data).hexdigest(), len(data))


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def decode(data: bytes, resize: str = "squash") -> np.ndarray:
    """Prepared pixels; squash keeps a 224x224 source pixel-exact (Pillow copies same-size)."""
    out = prepare_bytes(data, facts(data), (224, 224), resize)
    assert out.pixels.shape == (224, 224, 3)
    assert out.pixels.dtype == np.float32
    return out.pixels


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int, color_type: int = 2) -> bytes:
    """A valid PNG signature + IHDR claiming `width` x `height`, and no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b"")


def halves(
    mode: str, left: object, right: object, size: tuple[int, int] = (224, 224)
) -> Image.Image:
    """An image whose left half is `left` and right half is `right`."""
    img = Image.new(mode, size, left)  # type: ignore[arg-type]
    img.paste(right, (size[0] // 2, 0, size[0], size[1]))  # type: ignore[arg-type]
    return img


# --- bad inputs --------------------------------------------------------------------------


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError) as err:
        prepare(path)
    assert err.value.kind == "empty_file"
    assert "empty" in str(err.value)


@pytest.mark.parametrize("keep", [0.5, 0.9, 300])
def test_truncated_jpeg(photos: dict[str, Path], tmp_path: Path, keep: float) -> None:
    data = photos["chelsea"].read_bytes()
    cut = data[: int(len(data) * keep)] if keep < 1 else data[: int(keep)]
    path = tmp_path / "cut.jpg"
    path.write_bytes(cut)
    with pytest.raises(ImageError) as err:
        prepare(path)
    assert err.value.kind == "truncated"
    assert "truncated" in str(err.value).lower()


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("shopping list: milk, eggs\n", "utf-8")
    with pytest.raises(ImageError) as err:
        prepare(path)
    assert err.value.kind == "not_an_image"
    assert "not an image" in str(err.value)


def test_garbage_after_a_jpeg_signature(tmp_path: Path) -> None:
    path = tmp_path / "garbage.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8)
    with pytest.raises(ImageError) as err:
        prepare(path)
    assert err.value.kind in {"corrupt", "truncated", "not_an_image"}


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageError) as err:
        read_file(tmp_path / "nope.jpg")
    assert err.value.kind == "not_found"
    assert "nope.jpg" in str(err.value)
    with pytest.raises(ImageError) as err:
        prepare(tmp_path)
    assert err.value.kind == "not_a_file"


def test_huge_dimension_header_is_refused_clearly() -> None:
    assert Image.MAX_IMAGE_PIXELS is not None  # the decompression-bomb guard stays on
    data = png_header_only(100_000, 100_000)
    with pytest.raises(ImageError) as err:
        decode(data)
    assert err.value.kind == "too_large"
    message = str(err.value)
    assert "too large" in message
    assert "10000000000 pixels" in message  # says how big the file claims to be


def test_header_in_the_warning_band_fails_without_leaking_a_warning() -> None:
    # 12000 x 12000 = 144 MP: above Pillow's warning limit, below its error limit. pytest
    # turns warnings into errors, so this also proves the warning does not escape.
    data = png_header_only(12_000, 12_000, color_type=0)
    with pytest.raises(ImageError) as err:
        prepare_bytes(data, facts(data), limits=imaging.PhotoLimits(max_decode_pixels=178_000_000))
    assert err.value.kind in {"truncated", "corrupt"}
    with pytest.raises(ImageError) as err:  # the default limit refuses it before decoding
        decode(data)
    assert err.value.kind == "too_large"


def test_unknown_resize_policy_is_a_programming_error() -> None:
    data = encode(Image.new("RGB", (8, 8)), "PNG")
    with pytest.raises(ValueError, match="resize"):
        prepare_bytes(data, facts(data), resize="stretch")


# --- file facts ----------------------------------------------------------------------------


def test_facts_record_hash_size_and_dimensions(photos: dict[str, Path]) -> None:
    path = photos["coffee"]
    data = path.read_bytes()
    out = prepare(path)
    assert out.facts.sha256 == hashlib.sha256(data).hexdigest()
    assert out.facts.size_bytes == len(data)
    with Image.open(path) as img:
        assert (out.facts.width, out.facts.height) == img.size


# --- memory: reading and decoding stay bounded --------------------------------------------

MB = 1 << 20


def junk_file(path: Path, size: int) -> Path:
    """Not an image: random-looking bytes, `size` of them, none of them a known signature."""
    rng = np.random.default_rng(7)
    with path.open("wb") as f:
        for start in range(0, size, MB):
            f.write(b"\0junk" + rng.bytes(min(MB, size - start) - 5))
    return path


def test_hash_is_streamed_over_the_whole_of_a_refused_file(tmp_path: Path) -> None:
    path = junk_file(tmp_path / "x.jpg", 5 * MB + 3)  # several chunks and a ragged end
    read = read_file(path)
    assert read.refused is not None and read.refused.kind == "not_an_image"
    assert read.data == b""  # nothing kept
    whole = path.read_bytes()
    assert read.facts.sha256 == hashlib.sha256(whole).hexdigest()
    assert read.facts.size_bytes == len(whole)


def test_hash_of_a_kept_file_is_of_the_bytes_kept(photos: dict[str, Path]) -> None:
    read = read_file(photos["coffee"])
    whole = photos["coffee"].read_bytes()
    assert read.refused is None
    assert read.data == whole
    assert read.facts.sha256 == hashlib.sha256(whole).hexdigest()
    assert read.facts.size_bytes == len(whole)


def test_junk_is_refused_by_its_header_without_being_held(tmp_path: Path) -> None:
    path = junk_file(tmp_path / "x.jpg", 64 * MB)
    tracemalloc.start()
    try:
        item = stage.prepare(stage.job_for(path), (224, 224), "crop")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert item.error is not None and item.error.kind == "not_an_image"
    assert item.facts is not None and item.facts.size_bytes == 64 * MB  # hashed, all of it
    assert peak < 8 * MB, f"refusing a 64 MB junk file allocated {peak / MB:.0f} MB"


def test_a_file_above_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (64, 64), RED).save(path)
    size = path.stat().st_size
    read = read_file(path, imaging.PhotoLimits(max_file_bytes=size - 1))
    assert read.refused is not None and read.refused.kind == "too_large"
    assert "service.max_file_mb" in str(read.refused)
    assert read.data == b""
    assert read.facts.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert read_file(path, imaging.PhotoLimits(max_file_bytes=size)).refused is None


def test_junk_above_the_size_limit_is_still_called_not_an_image(tmp_path: Path) -> None:
    path = junk_file(tmp_path / "x.jpg", 3 * MB)
    read = read_file(path, imaging.PhotoLimits(max_file_bytes=MB))
    assert read.refused is not None and read.refused.kind == "not_an_image"


def test_an_empty_file_is_refused_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    read = read_file(path)
    assert read.refused is not None and read.refused.kind == "empty_file"
    assert read.facts.sha256 == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize("content", [b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8, b"text"])
def test_a_kept_error_holds_no_frames(tmp_path: Path, content: bytes) -> None:
    # A traceback holds every frame it passed, and those frames the photo's bytes.
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    item = stage.prepare(stage.job_for(path), (224, 224), "crop")
    assert item.error is not None
    assert item.error.__traceback__ is None
    assert item.error.__context__ is None


def test_pixel_limit_refuses_a_full_size_decode_but_not_a_jpeg_draft() -> None:
    img = halves("RGB", RED, BLUE, (3000, 2000))
    limits = imaging.PhotoLimits(max_decode_pixels=2_000_000)
    png = encode(img, "PNG")
    with pytest.raises(ImageError) as err:
        prepare_bytes(png, facts(png), limits=limits)
    assert err.value.kind == "too_large"
    assert "3000x2000" in str(err.value)
    assert "service.max_decode_megapixels" in str(err.value)
    jpeg = encode(img, "JPEG")  # decoded at 1/4 size (750x500): within the limit
    out = prepare_bytes(jpeg, facts(jpeg), limits=limits)
    assert (out.facts.width, out.facts.height) == (3000, 2000)


def big(mode: str) -> Image.Image:
    """A 1280x1040 image in `mode`, left half one value, right half another."""
    values: dict[str, tuple[object, object]] = {
        "RGB": (RED, BLUE),
        "RGBA": ((255, 0, 0, 255), (0, 0, 255, 0)),
        "LA": ((100, 255), (0, 0)),
        "L": (100, 200),
        "1": (0, 1),
        "CMYK": ((0, 255, 255, 0), (255, 255, 0, 0)),
        "I;16": (0, 65535),
    }
    if mode.startswith("P"):
        img = halves("P", 0, 1, (1280, 1040))
        img.putpalette([255, 0, 0, 0, 0, 255] + [0, 0, 0] * 254)
        if mode == "P+transparency":
            img.info["transparency"] = 1
        return img
    left, right = values[mode]
    return halves(mode, left, right, (1280, 1040))


WANT = {  # left and right as RGB after decoding
    "RGB": (RED, BLUE),
    "RGBA": (RED, WHITE),
    "LA": ((100,) * 3, WHITE),
    "L": ((100,) * 3, (200,) * 3),
    "1": ((0,) * 3, WHITE),
    "CMYK": (RED, BLUE),
    "I;16": ((0,) * 3, WHITE),
    "P": (RED, BLUE),
    "P+transparency": (RED, WHITE),
}


@pytest.mark.parametrize("mode", list(WANT))
def test_big_images_are_reduced_before_conversion_in_every_mode(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    img = big(mode)
    data = encode(img, "TIFF" if mode == "CMYK" else "PNG")
    px = decode(data)
    left, right = WANT[mode]
    np.testing.assert_allclose(px[:, :100], np.broadcast_to(left, (224, 100, 3)), atol=2)
    np.testing.assert_allclose(px[:, 124:], np.broadcast_to(right, (224, 100, 3)), atol=2)
    # Strip by strip gives exactly the pixels of one whole reduce.
    monkeypatch.setattr(imaging, "STRIP_PIXELS", 10**9)
    np.testing.assert_array_equal(decode(data), px)


def test_reduction_keeps_the_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: the stored left goes on top
    data = encode(halves("RGB", RED, BLUE, (1600, 1200)), "PNG", exif=exif)
    out = prepare_bytes(data, facts(data), resize="squash")
    assert (out.facts.width, out.facts.height) == (1200, 1600)
    np.testing.assert_allclose(out.pixels[:90], np.broadcast_to(RED, (90, 224, 3)), atol=2)
    np.testing.assert_allclose(out.pixels[-90:], np.broadcast_to(BLUE, (90, 224, 3)), atol=2)


# --- tiny images -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_one_pixel_image_classifies(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"dot.{fmt.lower()}"
    Image.new("RGB", (1, 1), (30, 120, 200)).save(path, fmt)
    out = prepare(path)
    assert (out.facts.width, out.facts.height) == (1, 1)
    assert out.pixels.shape == (224, 224, 3)
    np.testing.assert_allclose(out.pixels, np.broadcast_to(out.pixels[0, 0], out.pixels.shape))
    np.testing.assert_allclose(out.pixels[0, 0], (30, 120, 200), atol=4)

    settings = Settings(model=ModelSettings(name="efficientnet-lite0", fallback=""))
    classifier = open_classifier(settings)
    (record,) = classify_paths(classifier, [path], Options(Rules(), "crop", 4))
    assert record["status"] == "ok", record["error"]
    assert len(record["predictions"]) == 5
    assert (record["image"]["width"], record["image"]["height"]) == (1, 1)


# --- modes -----------------------------------------------------------------------------------


def test_mode_l_grey() -> None:
    px = decode(encode(Image.new("L", (224, 224), 100), "PNG"))
    np.testing.assert_array_equal(px, np.full((224, 224, 3), 100.0, np.float32))


def test_mode_la_alpha_over_white() -> None:
    img = halves("LA", (100, 255), (0, 0))
    px = decode(encode(img, "PNG"))
    np.testing.assert_array_equal(px[:, :100], 100.0)
    np.testing.assert_array_equal(px[:, 124:], 255.0)  # fully transparent -> white
    half = decode(encode(Image.new("LA", (224, 224), (0, 128)), "PNG"))
    np.testing.assert_allclose(half, 127.0, atol=1.0)  # black at 50 % over white


def palette_image(transparent: bool) -> Image.Image:
    img = halves("P", 0, 1)
    img.putpalette([10, 200, 30, 200, 0, 0] + [0, 0, 0] * 254)
    if transparent:
        img.info["transparency"] = 1
    return img


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
@pytest.mark.parametrize("transparent", [False, True])
def test_mode_p(fmt: str, transparent: bool) -> None:
    img = palette_image(transparent)
    params = {"transparency": 1} if transparent else {}
    data = encode(img, fmt, **params)
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode == "P"
        assert ("transparency" in check.info) == transparent
    px = decode(data)
    np.testing.assert_array_equal(px[:, :100], np.broadcast_to((10, 200, 30), (224, 100, 3)))
    right = WHITE if transparent else (200, 0, 0)
    np.testing.assert_array_equal(px[:, 124:], np.broadcast_to(right, (224, 100, 3)))


def test_mode_rgba_alpha_over_white() -> None:
    img = halves("RGBA", (255, 0, 0, 255), (0, 0, 0, 128))
    px = decode(encode(img, "PNG"))
    np.testing.assert_array_equal(px[:, :100], np.broadcast_to(RED, (224, 100, 3)))
    np.testing.assert_allclose(px[:, 124:], 127.0, atol=1.0)


@pytest.mark.parametrize("hidden", [(0, 0, 0), (255, 0, 0), (12, 34, 56)])
def test_fully_transparent_image_becomes_white(hidden: tuple[int, int, int]) -> None:
    # Whatever colour hides under alpha 0 must not leak into the model's input.
    px = decode(encode(Image.new("RGBA", (224, 224), (*hidden, 0)), "PNG"), resize="crop")
    np.testing.assert_array_equal(px, 255.0)


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_mode_cmyk(fmt: str) -> None:
    img = halves("CMYK", (0, 255, 255, 0), (0, 0, 0, 0))  # red | white
    data = encode(img, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode == "CMYK"
    px = decode(data)
    np.testing.assert_allclose(px[:, :96], np.broadcast_to(RED, (224, 96, 3)), atol=6)
    np.testing.assert_allclose(px[:, 128:], 255.0, atol=6)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_sixteen_bit_grey_is_scaled_not_clipped(fmt: str) -> None:
    levels = [0, 16384, 32768, 65535]
    arr = np.repeat(np.array(levels, np.uint16), 56)[None, :].repeat(224, axis=0)
    img = Image.fromarray(arr)
    assert img.mode == "I;16"
    data = encode(img, fmt)
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode in {"I;16", "I;16B", "I;16L", "I"}
    px = decode(data)
    got = [float(px[100, 56 * i + 28, 0]) for i in range(4)]
    assert got == pytest.approx([0.0, 64.0, 128.0, 255.0], abs=1.0)
    assert np.all(px[..., 0] == px[..., 1])
    assert np.all(px[..., 1] == px[..., 2])


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animated_image_uses_first_frame(fmt: str) -> None:
    frames = [Image.new("RGB", (224, 224), c) for c in (RED, BLUE, (0, 255, 0))]
    params: dict[str, object] = {"save_all": True, "append_images": frames[1:], "duration": 100}
    if fmt == "WEBP":
        params["lossless"] = True
    data = encode(frames[0], fmt, **params)
    with Image.open(io.BytesIO(data)) as check:
        assert getattr(check, "n_frames", 1) == 3
    px = decode(data)
    np.testing.assert_allclose(px, np.broadcast_to(RED, px.shape), atol=2)


# --- EXIF orientation ------------------------------------------------------------------------


def with_orientation(img: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", quality=95, exif=exif)


@pytest.mark.parametrize(
    ("orientation", "size", "red_at"),
    [
        (1, (300, 200), "left"),
        (3, (300, 200), "right"),
        (6, (200, 300), "top"),
        (8, (200, 300), "bottom"),
    ],
)
def test_exif_orientation(orientation: int, size: tuple[int, int], red_at: str) -> None:
    stored = halves("RGB", RED, BLUE, (300, 200))  # red on the stored left
    data = with_orientation(stored, orientation)
    out = prepare_bytes(data, facts(data), resize="squash")
    assert (out.facts.width, out.facts.height) == size  # as displayed, i.e. swapped for 6/8
    px = out.pixels
    regions = {
        "left": px[:, :90],
        "right": px[:, -90:],
        "top": px[:90, :],
        "bottom": px[-90:, :],
    }
    opposite = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}[red_at]
    np.testing.assert_allclose(regions[red_at], np.broadcast_to(RED, regions[red_at].shape), atol=8)
    blue = regions[opposite]
    np.testing.assert_allclose(blue, np.broadcast_to(BLUE, blue.shape), atol=8)


def test_broken_exif_block_does_not_fail_the_image() -> None:
    data = encode(Image.new("RGB", (64, 48), RED), "JPEG", exif=b"Exif\x00\x00garbage-not-tiff")
    out = prepare_bytes(data, facts(data))
    assert (out.facts.width, out.facts.height) == (64, 48)


# --- JPEG draft mode -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_jpeg() -> bytes:
    """A 12 MP phone-sized JPEG made from a real photo."""
    import skimage.data

    img = Image.fromarray(skimage.data.astronaut()).resize((4032, 3024), Image.Resampling.BICUBIC)
    return encode(img, "JPEG", quality=90)


def full_decode(data: bytes, resize: str) -> np.ndarray:
    """The same geometry from a full-resolution decode (no draft): the slow reference."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        rgb = img.convert("RGB")
    if resize == "squash":
        return np.asarray(rgb.resize((224, 224), Image.Resampling.BICUBIC), np.float32)
    w, h = rgb.size
    box = 224 * min(w, h) / 256
    left, top = (w - box) / 2, (h - box) / 2
    resized = rgb.resize(
        (224, 224), Image.Resampling.BICUBIC, box=(left, top, left + box, top + box)
    )
    return np.asarray(resized, np.float32)


@pytest.fixture
def draft_sizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The size each JPEG is set to decode at, recorded on every `draft` call."""
    sizes: list[tuple[int, int]] = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        result = real_draft(self, mode, size)
        sizes.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    return sizes


@pytest.mark.parametrize("resize", ["crop", "squash"])
def test_big_jpeg_uses_draft_and_matches_full_decode(
    big_jpeg: bytes, resize: str, draft_sizes: list[tuple[int, int]]
) -> None:
    out = prepare_bytes(big_jpeg, facts(big_jpeg), resize=resize)
    assert (out.facts.width, out.facts.height) == (4032, 3024)  # the real size, not the draft's
    assert draft_sizes, "JPEG draft mode was not used"
    w, h = draft_sizes[-1]
    assert w <= 4032 // 4  # libjpeg scaled while decoding ...
    need = 256 if resize == "crop" else 224
    assert need <= min(w, h) < 2 * need  # ... never below what is needed, under twice that

    ref = full_decode(big_jpeg, resize)
    diff = np.abs(out.pixels - ref)
    assert diff.mean() < 1.5
    assert diff.max() <= 32


def test_small_jpeg_is_decoded_at_full_size(
    photos: dict[str, Path], draft_sizes: list[tuple[int, int]]
) -> None:
    out = prepare(photos["chelsea"])  # 451x300: already close to 256 on the short side
    assert draft_sizes == [(451, 300)]
    assert (out.facts.width, out.facts.height) == (451, 300)


# --- HEIC ------------------------------------------------------------------------------------


def test_heic(tmp_path: Path) -> None:
    if not imaging.HEIF_SUPPORTED:
        pytest.skip("pillow-heif is not installed")
    img = halves("RGB", RED, BLUE, (320, 240))
    path = tmp_path / "IMG_0001.HEIC"
    try:
        img.save(path, format="HEIF", quality=95)
    except (OSError, KeyError, ValueError) as exc:
        pytest.skip(f"pillow-heif cannot write HEIC here: {exc}")
    out = prepare(path, resize="squash")
    assert (out.facts.width, out.facts.height) == (320, 240)
    px = out.pixels
    np.testing.assert_allclose(px[:, :90], np.broadcast_to(RED, (224, 90, 3)), atol=12)
    np.testing.assert_allclose(px[:, -90:], np.broadcast_to(BLUE, (224, 90, 3)), atol=12)


# --- resize policies -------------------------------------------------------------------------


def three_bands() -> bytes:
    """448x224: red quarter | green half | blue quarter."""
    img = Image.new("RGB", (448, 224), (0, 255, 0))
    img.paste(RED, (0, 0, 112, 224))
    img.paste(BLUE, (336, 0, 448, 224))
    return encode(img, "PNG")


def test_crop_keeps_the_centre() -> None:
    # Shorter side 224 -> 256, centre 224 of that = the central 196x196 source pixels: green.
    px = decode(three_bands(), resize="crop")
    np.testing.assert_allclose(px, np.broadcast_to((0, 255, 0), px.shape), atol=1)


def test_squash_keeps_everything() -> None:
    px = decode(three_bands(), resize="squash")
    np.testing.assert_allclose(px[:, :50], np.broadcast_to(RED, (224, 50, 3)), atol=1)
    np.testing.assert_allclose(px[:, 62:162], np.broadcast_to((0, 255, 0), (224, 100, 3)), atol=1)
    np.testing.assert_allclose(px[:, -50:], np.broadcast_to(BLUE, (224, 50, 3)), atol=1)


def test_crop_matches_resize_then_centre_crop(photos: dict[str, Path]) -> None:
    """The box shortcut equals the textbook shorter-side-256 + centre-crop-224 pipeline."""
    with Image.open(photos["astronaut"]) as img:  # 512x512
        rgb = img.convert("RGB")
    textbook = rgb.resize((256, 256), Image.Resampling.BICUBIC).crop((16, 16, 240, 240))
    px = prepare(photos["astronaut"]).pixels
    diff = np.abs(px - np.asarray(textbook, np.float32))
    assert diff.mean() < 3.0  # resampling differs slightly; a 1-pixel shift gives about 11
