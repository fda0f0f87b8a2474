"""Read a photo file (hashed, size-capped) and decode it into the model's input: EXIF-rotated,
RGB, resized, float32, in memory bounded by the configured limits."""

from __future__ import annotations

import errno
import hashlib
import io
import math
import os
import stat
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dropsight.config.settings import RESIZE_POLICIES, Settings
from dropsight.daemon.photos import raw as raw_photos

try:  # HEIC/HEIF is what iPhones write by default.
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_SUPPORTED = True
except ImportError:  # pragma: no cover - optional at run time
    HEIF_SUPPORTED = False

CROP_SHORT_SIDE = 256  # shorter side before the centre crop, as in the ImageNet evaluation
CHUNK = 1 << 20  # bytes hashed at a time when a file's bytes are not kept
HEADER_BYTES = 1 << 20  # what a file above the size limit may show to be taken for an image
# A decoded image is box-reduced (in its own mode, before any copy) to at least this many
# times the size the model needs; the final bicubic resize then looks like one from the
# full image (Pillow's reducing_gap) at a fraction of the memory.
REDUCE_GAP = 2
STRIP_PIXELS = 4_000_000  # pixels of the full image converted and reduced at a time
# Modes Image.reduce cannot average: converted first (palette indices are not values).
REDUCE_AS = {"1": "L", "P": "RGBA", "PA": "RGBA", "I;16": "I", "I;16L": "I", "I;16B": "I"}


class ImageError(Exception):
    """A file could not be turned into a model input; `kind` is a stable machine-readable type."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    def detached(self) -> ImageError:
        """This error without its traceback and context, to be kept after it was caught.

        Those hold the frames it passed through, and with them the photo's bytes: a kept
        error would keep a 1 GiB file in memory for as long as its result lives.
        """
        self.__traceback__ = None
        self.__context__ = None
        self.__cause__ = None
        return self


@dataclass(frozen=True)
class PhotoLimits:
    """How much of one photo is read into memory and decoded at most ([service] settings)."""

    max_file_bytes: int = 256 << 20
    max_decode_pixels: int = 100_000_000

    @classmethod
    def of(cls, settings: Settings) -> PhotoLimits:
        """The limits the settings ask for."""
        s = settings.service
        return cls(s.max_file_mb << 20, round(s.max_decode_megapixels * 1_000_000))


DEFAULT_LIMITS = PhotoLimits()


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


@dataclass(frozen=True)
class FileRead:
    """A photo file read once: its bytes, or (`refused`) why they were not kept, and its facts."""

    data: bytes
    facts: FileFacts
    refused: ImageError | None = None
    raw: bool = False  # a camera RAW file (photos/raw.py decodes it)


# The process is short of something, not the file broken: read it again later.
_BUSY = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM})


def read_file(path: Path, limits: PhotoLimits = DEFAULT_LIMITS) -> FileRead:
    """Read and hash a file; raises ImageError when it cannot be read.

    A file that is empty, not an image by its header, or above `limits.max_file_bytes` is
    refused: hashed as a stream (its sidecar records the hash of the whole file) but never
    held in memory.
    """
    try:
        # Non-blocking: opening a FIFO named like a photo must not hang a decoder.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ImageError("not_a_file", f"not a regular file (a pipe or device): {path}")
            return _read_open(f, limits, raw_photos.is_raw(path))
    except FileNotFoundError:
        raise ImageError("not_found", f"no such file: {path}") from None
    except IsADirectoryError:
        raise ImageError("not_a_file", f"is a folder, not an image: {path}") from None
    except OSError as exc:
        if exc.errno in _BUSY:
            raise ImageError("busy", f"cannot read {path} now: {exc.strerror}") from None
        raise ImageError("unreadable", f"cannot read {path}: {exc.strerror or exc}") from None


def _read_open(f: BinaryIO, limits: PhotoLimits, raw: bool) -> FileRead:
    st = os.fstat(f.fileno())
    refused = _refusal(f, st.st_size, limits, raw)
    f.seek(0)
    h = hashlib.sha256()
    data = b""
    if refused is None:
        # One read of the exact size: the bytes hashed are the bytes decoded.
        data = f.read(limits.max_file_bytes + 1)
        h.update(data)
        if len(data) > limits.max_file_bytes:  # it grew after the size was checked
            refused, data = _too_big(len(data), limits), b""  # the rest: hashed as a stream
    size = f.tell()
    while chunk := f.read(CHUNK):
        h.update(chunk)
        size += len(chunk)
    facts = FileFacts(
        sha256=h.hexdigest(),
        size_bytes=size,
        mtime_ns=st.st_mtime_ns,
        ctime_ns=st.st_ctime_ns,
        inode=st.st_ino,
    )
    return FileRead(data, facts, refused, raw)


def _refusal(f: BinaryIO, size: int, limits: PhotoLimits, raw: bool) -> ImageError | None:
    """Why the file at the start of `f` is not worth reading whole, from its size and header."""
    if size == 0:
        return ImageError("empty_file", "the file is empty (0 bytes)")
    if raw:  # LibRaw reads the header from the whole file; decoding says what is wrong
        return _too_big(size, limits) if size > limits.max_file_bytes else None
    # Above the size limit, only a bounded prefix is looked at (some openers, HEIF's,
    # read the whole stream): enough for every header short of a JPEG with megabytes
    # of metadata before its frame, which is refused either way.
    head: BinaryIO = f if size <= limits.max_file_bytes else io.BytesIO(f.read(HEADER_BYTES))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(head):  # parses the header only; the decoder reports the rest
                pass
    except Image.DecompressionBombError as exc:
        return ImageError("too_large", f"image too large to decode safely: {exc}")
    except UnidentifiedImageError:
        return ImageError("not_an_image", "not an image file Dropsight can read")
    except (OSError, SyntaxError, ValueError, EOFError):
        pass  # a damaged image: decoding it says how (truncated, corrupt)
    return _too_big(size, limits) if size > limits.max_file_bytes else None


def _too_big(size: int, limits: PhotoLimits) -> ImageError:
    return ImageError(
        "too_large",
        f"the file is {size / (1 << 20):.1f} MB, more than the {limits.max_file_bytes >> 20} MB "
        "Dropsight reads per photo (service.max_file_mb in the config)",
    )


def load(
    path: Path,
    size: tuple[int, int] = (224, 224),
    resize: str = "crop",
    limits: PhotoLimits = DEFAULT_LIMITS,
) -> PreparedImage:
    """Read, hash and decode `path` into a (H, W, 3) float32 RGB array; raises ImageError."""
    read = read_file(path, limits)
    if read.refused is not None:
        raise read.refused
    return prepare_bytes(read.data, read.facts, size, resize, limits, raw=read.raw)


def prepare_bytes(
    data: bytes,
    facts: FileFacts,
    size: tuple[int, int] = (224, 224),
    resize: str = "crop",
    limits: PhotoLimits = DEFAULT_LIMITS,
    *,
    raw: bool = False,
) -> PreparedImage:
    """Decode already-read bytes (of a camera RAW file, with `raw`); raises ImageError with
    a clear message on any failure."""
    if resize not in RESIZE_POLICIES:
        raise ValueError(f"resize must be one of {RESIZE_POLICIES}, not {resize!r}")
    if not data:
        raise ImageError("empty_file", "the file is empty (0 bytes)")
    if raw:
        try:
            image, shown = raw_photos.decode(data, _need(size, resize), limits.max_decode_pixels)
        except raw_photos.RawError as exc:
            raise ImageError(exc.kind, str(exc)) from None
        rgb = _fit(_reduce(image, _need(size, resize)), size, resize)
        pixels = np.asarray(rgb, dtype=np.float32)
        return PreparedImage(pixels, replace(facts, width=shown[0], height=shown[1]))
    try:
        with warnings.catch_warnings():
            # Big-but-legal photos (90-180 MP) only warn; above that Pillow raises, below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                rgb, (width, height) = _decode(img, size, resize, limits.max_decode_pixels)
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


def _oriented_size(img: Image.Image, w: int, h: int) -> tuple[int, int]:
    """Width and height (of the file, not a draft) as displayed, i.e. after EXIF orientation."""
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block must not fail the whole image
        orientation = 1
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _decode(
    img: Image.Image, size: tuple[int, int], resize: str, max_pixels: int
) -> tuple[Image.Image, tuple[int, int]]:
    """The first frame as RGB at the model's size, and the image's width and height as shown."""
    w, h = img.size
    if w < 1 or h < 1:
        raise ImageError("corrupt", f"image has no pixels ({w}x{h})")
    need = _need(size, resize)
    if img.format == "JPEG":
        # Let libjpeg scale down by 1/2..1/8 while decoding: 10x faster on 12 MP photos.
        scale = need / min(w, h)
        img.draft("RGB", (math.ceil(w * scale), math.ceil(h * scale)))
    img.seek(0)  # animated images: the first frame
    _check_pixels(img, max_pixels)
    shown = _oriented_size(img, w, h)  # after the check: a PNG's EXIF may follow its pixels
    img.load()
    img = _reduce(img, need)
    img = ImageOps.exif_transpose(img)
    return _fit(_to_rgb(img), size, resize), shown


def _need(size: tuple[int, int], resize: str) -> float:
    """The short side the model's input needs: 256 before a 224 crop, or the whole input."""
    out_w, out_h = size
    return CROP_SHORT_SIDE * out_w / 224 if resize == "crop" else max(out_w, out_h)


def _fit(rgb: Image.Image, size: tuple[int, int], resize: str) -> Image.Image:
    """An upright RGB image resized (and centre-cropped) to the model's input."""
    out_w, out_h = size
    w, h = rgb.size
    if resize == "squash":
        return rgb.resize((out_w, out_h), Image.Resampling.BICUBIC)
    # Shorter side to 256 then centre crop 224 == resize only the source box that maps onto
    # the crop, which avoids building the full 256-pixel image first.
    scale = CROP_SHORT_SIDE * out_w / 224 / min(w, h)
    box_w, box_h = out_w / scale, out_h / scale
    left, top = (w - box_w) / 2, (h - box_h) / 2
    box = (left, top, left + box_w, top + box_h)
    return rgb.resize((out_w, out_h), Image.Resampling.BICUBIC, box=box)


def _check_pixels(img: Image.Image, max_pixels: int) -> None:
    """Refuse, before allocating, an image that would decode to more than `max_pixels`.

    `img.size` is what the decoder will allocate: a JPEG's after draft (reduced while
    decoding), any other format's full size (PNG, TIFF, WebP, HEIC decode whole).
    """
    w, h = img.size
    if w * h > max_pixels:
        raise ImageError(
            "too_large",
            f"image too large to decode: {img.format or 'the'} image decodes to {w}x{h} "
            f"({w * h / 1e6:.1f} MP), more than the {max_pixels / 1e6:g} MP Dropsight decodes "
            "at once (service.max_decode_megapixels in the config)",
        )


def _reduce(img: Image.Image, need: float) -> Image.Image:
    """Box-reduce a decoded image much bigger than needed, strip by strip.

    Converting or reducing the whole image at once would make full-size copies (Pillow's
    reduce premultiplies RGBA into one); strips cost a few MB and give the same pixels.
    """
    factor = int(min(img.size) / need / REDUCE_GAP)
    if factor < 2:
        return img
    try:  # kept for exif_transpose, which reads the orientation from the reduced copy
        exif = img.getexif().tobytes()
    except Exception:  # a broken EXIF block must not fail the whole image
        exif = b""
    mode = img.mode
    work_mode = "RGB" if mode == "P" and "transparency" not in img.info else REDUCE_AS.get(mode)
    w, h = img.size
    rows = max(1, STRIP_PIXELS // (w * factor)) * factor
    out: Image.Image | None = None
    for top in range(0, h, rows):
        strip = img.crop((0, top, w, min(h, top + rows)))
        if work_mode is not None:
            strip = strip.convert(work_mode)
        small = strip.reduce(factor)
        if out is None:
            out = Image.new(small.mode, (-(-w // factor), -(-h // factor)))
        out.paste(small, (0, top // factor))
    assert out is not None
    if mode.startswith("I;16"):
        out = out.convert("I;16")  # _to_rgb scales 16-bit data by its full range
    if exif:
        out.info["exif"] = exif
    return out


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
