"""Real DNG files for the tests, written by pidng (an independent DNG writer), with an
optional JPEG preview linked as IFD1 the way cameras and Adobe's converter store one.

pidng (4.0) writes one IFD (the CFA raw data) and chains none, so it cannot embed a preview:
`add_jpeg_preview` appends a standard reduced-resolution IFD (NewSubfileType 1, JPEG, YCbCr,
one strip) and links it from IFD0, where LibRaw and exiftool look for it.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from pidng.core import RAW2DNG, DNGTags, Tag
from pidng.defs import (
    CalibrationIlluminant,
    CFAPattern,
    PhotometricInterpretation,
    PreviewColorSpace,
)
from PIL import Image

BPP = 12
BLACK = 256
# XYZ(D65) -> camera: this "camera" records linear sRGB, so it is the XYZ -> sRGB matrix
# (LibRaw's colours then come out right).
XYZ_TO_SRGB = [3.2406, -1.5372, -0.4986, -0.9689, 1.8758, 0.0415, 0.0557, -0.2040, 1.0570]
ORIENTATION_TURN = {1: None, 3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90}


def make_dng(
    upright: Image.Image,
    out: Path,
    size: tuple[int, int] = (600, 400),
    orientation: int = 6,
    preview: tuple[int, int] | None = (540, 360),
) -> Path:
    """A DNG whose sensor (`size`, landscape) holds `upright` as a camera would, turned so
    that EXIF `orientation` shows it upright again; with a JPEG preview of `preview` size."""
    width, height = size
    shown = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    picture = upright.convert("RGB").resize(shown, Image.Resampling.BICUBIC)
    turn = ORIENTATION_TURN[orientation]
    sensor = picture.transpose(turn) if turn is not None else picture
    _write(_mosaic(sensor), out, orientation)
    if preview is not None:
        add_jpeg_preview(out, sensor.resize(preview, Image.Resampling.LANCZOS))
    return out


def _mosaic(sensor: Image.Image) -> np.ndarray:
    """An RGGB Bayer mosaic (12-bit, linear) of the sensor's picture."""
    rgb = (np.asarray(sensor, dtype=np.float32) / 255.0) ** 2.2  # undo the sRGB-ish gamma
    lin = (BLACK + rgb * ((1 << BPP) - 1 - BLACK)).astype(np.uint16)
    cfa = np.empty(lin.shape[:2], dtype=np.uint16)
    cfa[0::2, 0::2] = lin[0::2, 0::2, 0]
    cfa[0::2, 1::2] = lin[0::2, 1::2, 1]
    cfa[1::2, 0::2] = lin[1::2, 0::2, 1]
    cfa[1::2, 1::2] = lin[1::2, 1::2, 2]
    return cfa


def _write(cfa: np.ndarray, out: Path, orientation: int) -> None:
    """pidng's documented recipe (README, "custom camera"); pidng adds DNGVersion itself."""
    height, width = cfa.shape
    t = DNGTags()
    t.set(Tag.ImageWidth, width)
    t.set(Tag.ImageLength, height)
    t.set(Tag.TileWidth, width)
    t.set(Tag.TileLength, height)
    t.set(Tag.Orientation, orientation)
    t.set(Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array)
    t.set(Tag.SamplesPerPixel, 1)
    t.set(Tag.BitsPerSample, BPP)
    t.set(Tag.CFARepeatPatternDim, [2, 2])
    t.set(Tag.CFAPattern, CFAPattern.RGGB)
    t.set(Tag.BlackLevel, BLACK)
    t.set(Tag.WhiteLevel, (1 << BPP) - 1)
    t.set(Tag.ColorMatrix1, [[round(v * 10000), 10000] for v in XYZ_TO_SRGB])
    t.set(Tag.CalibrationIlluminant1, CalibrationIlluminant.D65)
    t.set(Tag.AsShotNeutral, [[1, 1], [1, 1], [1, 1]])
    t.set(Tag.Make, "Dropsight")
    t.set(Tag.Model, "Test Rig")
    t.set(Tag.UniqueCameraModel, "Dropsight Test Rig")
    t.set(Tag.PreviewColorSpace, PreviewColorSpace.sRGB)
    converter = RAW2DNG()
    converter.options(t, path=str(out.parent), compress=False)
    written = Path(converter.convert(cfa, filename=out.stem))
    if written != out:
        written.replace(out)  # pidng names its file <stem>.dng


def add_jpeg_preview(dng: Path, preview: Image.Image) -> None:
    """Append IFD1 = a JPEG preview (NewSubfileType 1) and link it from IFD0."""
    jpeg = io.BytesIO()
    preview.save(jpeg, "JPEG", quality=90)
    data = bytearray(dng.read_bytes())
    assert data[:4] == b"II*\x00"
    ifd0 = struct.unpack_from("<I", data, 4)[0]
    n = struct.unpack_from("<H", data, ifd0)[0]
    next_ptr = ifd0 + 2 + 12 * n
    assert struct.unpack_from("<I", data, next_ptr)[0] == 0, "IFD0 already has a successor"
    data += b"\0" * (-len(data) % 4)
    jpeg_at = len(data)
    data += jpeg.getvalue()
    data += b"\0" * (-len(data) % 4)
    ifd1 = len(data)
    w, h = preview.size
    entries = [  # (tag, type, count, value), by tag; types: 3 SHORT, 4 LONG
        (254, 4, 1, 1),  # NewSubfileType: reduced-resolution image
        (256, 4, 1, w),  # ImageWidth
        (257, 4, 1, h),  # ImageLength
        (259, 3, 1, 7),  # Compression: JPEG
        (262, 3, 1, 6),  # PhotometricInterpretation: YCbCr
        (273, 4, 1, jpeg_at),  # StripOffsets
        (277, 3, 1, 3),  # SamplesPerPixel
        (278, 4, 1, h),  # RowsPerStrip
        (279, 4, 1, len(jpeg.getvalue())),  # StripByteCounts
    ]
    data += struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        packed = struct.pack("<H", value) + b"\0\0" if typ == 3 else struct.pack("<I", value)
        data += struct.pack("<HHI", tag, typ, count) + packed
    data += struct.pack("<I", 0)
    struct.pack_into("<I", data, next_ptr, ifd1)
    dng.write_bytes(bytes(data))
