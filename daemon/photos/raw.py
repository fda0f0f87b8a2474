"""RAW photos (DNG, CR2, CR3, NEF, ARW, RAF, ORF, RW2, PEF, SRW) through LibRaw (rawpy).

A camera stores a full-size JPEG preview in nearly every RAW file: it is what the model
sees (a few ms). Without one big enough, the sensor data is demosaiced at half size (each
2x2 block one pixel; about 0.5 s for 24 MP). LibRaw turns a demosaiced image upright by
itself but hands the preview over as stored: it is turned here by the same orientation.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import rawpy
from PIL import Image

RAW_EXTENSIONS = frozenset({"dng", "cr2", "cr3", "nef", "arw", "raf", "orf", "rw2", "pef", "srw"})
# LibRaw's `flip`: how the stored image is turned to be shown upright.
_TURN = {
    3: Image.Transpose.ROTATE_180,
    5: Image.Transpose.ROTATE_90,  # 90 degrees counter-clockwise
    6: Image.Transpose.ROTATE_270,  # 90 degrees clockwise
}


class RawError(Exception):
    """A RAW file LibRaw could not read; `kind` as in photos.imaging.ImageError."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def is_raw(path: Path) -> bool:
    """Whether the file's extension is one of a camera's RAW formats."""
    return path.suffix.lower().lstrip(".") in RAW_EXTENSIONS


def decode(data: bytes, need: float, max_pixels: int) -> tuple[Image.Image, tuple[int, int]]:
    """An upright RGB image whose short side is at least `need` (or all there is), and the
    width and height of the full image as shown."""
    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            sizes = raw.sizes
            turned = sizes.flip in (5, 6)
            shown = (sizes.height, sizes.width) if turned else (sizes.width, sizes.height)
            if min(shown) < 1:
                raise RawError("corrupt", f"RAW image has no pixels ({sizes.width}x{sizes.height})")
            image = _preview(raw, need, sizes.flip, max_pixels)
            if image is None:
                image = _half_size(raw, max_pixels)
    except rawpy.LibRawFileUnsupportedError:
        raise RawError("not_an_image", "not a RAW file LibRaw can read") from None
    except rawpy.LibRawError as exc:
        kind = "truncated" if isinstance(exc, rawpy.LibRawIOError) else "corrupt"
        raise RawError(kind, f"cannot decode RAW image: {exc}") from None
    return image, shown


def _preview(raw: rawpy.RawPy, need: float, flip: int, max_pixels: int) -> Image.Image | None:
    """The embedded preview, upright, if there is one at least `need` pixels on its short side."""
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    image: Image.Image
    try:
        if thumb.format == rawpy.ThumbFormat.JPEG and isinstance(thumb.data, bytes):
            jpeg = Image.open(io.BytesIO(thumb.data))
            w, h = jpeg.size
            if min(w, h) < need or w * h > max_pixels:
                return None
            # libjpeg scales down while decoding; its own EXIF orientation, if any, is not
            # LibRaw's and is ignored.
            jpeg.draft("RGB", (math.ceil(w * need / min(w, h)), math.ceil(h * need / min(w, h))))
            image = jpeg.convert("RGB")
        elif isinstance(thumb.data, np.ndarray):  # a bitmap preview
            image = Image.fromarray(np.ascontiguousarray(thumb.data, dtype=np.uint8)).convert("RGB")
        else:
            return None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None  # a broken preview: demosaic instead
    if min(image.size) < need:
        return None
    turn = _TURN.get(flip)
    return image.transpose(turn) if turn is not None else image


def _half_size(raw: rawpy.RawPy, max_pixels: int) -> Image.Image:
    """The sensor data demosaiced at half size, upright, in the camera's white balance."""
    w, h = raw.sizes.width // 2, raw.sizes.height // 2
    if w * h > max_pixels:
        raise RawError(
            "too_large",
            f"image too large to decode: RAW image decodes to {w}x{h} ({w * h / 1e6:.1f} MP), "
            f"more than the {max_pixels / 1e6:g} MP Dropsight decodes at once "
            "(service.max_decode_megapixels in the config)",
        )
    rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
    return Image.fromarray(rgb, "RGB")
