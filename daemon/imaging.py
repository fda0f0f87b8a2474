"""Decode a photo file into the model's input: EXIF-rotated, RGB, resized, float32."""

from __future__ import annotations

import hashlib
import io
import math
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dropsight.config.settings import RESIZE_POLICIES

try:  # HEIC/HEIF is what iPhones write by default.
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_SUPPORTED = True
except ImportError:  # pragma: no cover - optional at run time
    HEIF_SUPPORTED = False

CROP_SHORT_SIDE = 256  # shorter side before the centre crop, as in the ImageNet evaluation


class ImageError(Exception):
    """A file could not be turned into a model input; `kind` is a stable machine-readable type."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class FileFacts:
    """What a sidecar records about the image file itself."""

    sha256: str
    size_bytes: int
    width: int | None = None
    height: int | None = None
    # The file's identity when it was read (os.fstat): the cheap freshness check compares
    # all three, since a `cp -p` or backup restore keeps size and mtime but not these.
    mtime_ns: int = 0
    ctime_ns: int = 0
    inode: int = 0


@dataclass(frozen=True)
class PreparedImage:
    """A decoded image ready for the model, with the file facts for its sidecar."""

    pixels: np.ndarray  # float32, (H, W, 3), RGB 0..255
    facts: FileFacts


def read_file(path: Path) -> tuple[bytes, FileFacts]:
    """Read a file once and hash it; raises ImageError when it cannot be read."""
    try:
        with path.open("rb") as f:
            st = os.fstat(f.fileno())
            data = f.read()
    except FileNotFoundError:
        raise ImageError("not_found", f"no such file: {path}") from None
    except IsADirectoryError:
        raise ImageError("not_a_file", f"is a folder, not an image: {path}") from None
    except OSError as exc:
        raise ImageError("unreadable", f"cannot read {path}: {exc.strerror or exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    return data, FileFacts(
        sha256=digest,
        size_bytes=len(data),
        mtime_ns=st.st_mtime_ns,
        ctime_ns=st.st_ctime_ns,
        inode=st.st_ino,
    )


def load(path: Path, size: tuple[int, int] = (224, 224), resize: str = "crop") -> PreparedImage:
    """Read, hash and decode `path` into a (H, W, 3) float32 RGB array; raises ImageError."""
    data, facts = read_file(path)
    return prepare_bytes(data, facts, size, resize)


def prepare_bytes(
    data: bytes, facts: FileFacts, size: tuple[int, int] = (224, 224), resize: str = "crop"
) -> PreparedImage:
    """Decode already-read bytes; raises ImageError with a clear message on any failure."""
    if resize not in RESIZE_POLICIES:
        raise ValueError(f"resize must be one of {RESIZE_POLICIES}, not {resize!r}")
    if not data:
        raise ImageError("empty_file", "the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Big-but-legal photos (90-180 MP) only warn; above that Pillow raises, below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = _oriented_size(img)
                rgb = _decode(img, size, resize)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError("too_large", f"image too large to decode safely: {exc}") from None
    except UnidentifiedImageError:
        raise ImageError("not_an_image", "not an image file Dropsight can read") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports truncated and corrupt data as OSError/SyntaxError.
        kind = "truncated" if "truncated" in str(exc).lower() else "corrupt"
        raise ImageError(kind, f"cannot decode image: {exc}") from None
    pixels = np.asarray(rgb, dtype=np.float32)
    return PreparedImage(pixels=pixels, facts=replace(facts, width=width, height=height))


def _oriented_size(img: Image.Image) -> tuple[int, int]:
    """Width and height as displayed, i.e. after EXIF orientation."""
    w, h = img.size
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block must not fail the whole image
        orientation = 1
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _decode(img: Image.Image, size: tuple[int, int], resize: str) -> Image.Image:
    """Decode the first frame to RGB at about the needed resolution, then resize."""
    out_w, out_h = size
    w, h = img.size
    if w < 1 or h < 1:
        raise ImageError("corrupt", f"image has no pixels ({w}x{h})")
    if img.format == "JPEG":
        # Let libjpeg scale down by 1/2..1/8 while decoding: 10x faster on 12 MP photos.
        if resize == "crop":
            scale = CROP_SHORT_SIDE * out_w / 224 / min(w, h)
            need = (math.ceil(w * scale), math.ceil(h * scale))
        else:
            need = (out_w, out_h)
        img.draft("RGB", need)
    img.seek(0)  # animated images: the first frame
    img.load()
    img = ImageOps.exif_transpose(img)
    rgb = _to_rgb(img)
    w, h = rgb.size
    if resize == "squash":
        return rgb.resize((out_w, out_h), Image.Resampling.BICUBIC)
    # Shorter side to 256 then centre crop 224 == resize only the source box that maps onto
    # the crop, which avoids building the full 256-pixel image first.
    scale = CROP_SHORT_SIDE * out_w / 224 / min(w, h)
    box_w, box_h = out_w / scale, out_h / scale
    left, top = (w - box_w) / 2, (h - box_h) / 2
    return rgb.resize(
        (out_w, out_h), Image.Resampling.BICUBIC, box=(left, top, left + box_w, top + box_h)
    )


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB: alpha over white, 16-bit scaled, CMYK converted."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        if mode == "F":
            top = max(float(arr.max(initial=0)), 1.0)
        gray = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "RGB":
        return img
    return img.convert("RGB")
