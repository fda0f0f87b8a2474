"""The public sidecar contract: where it goes, build, write atomically, read, decide freshness."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from typing import Any, Literal, cast

import msgspec
import numpy as np

from dropsight.config.settings import Settings
from dropsight.daemon import APP_NAME, __version__
from dropsight.daemon.contracts import (
    CONTENT_ERRORS,
    FileStat,
    ImageBlock,
    ModelBlock,
    Prediction,
    SidecarRecord,
)
from dropsight.daemon.core import surrogates
from dropsight.daemon.core.atomic import write_bytes_atomic
from dropsight.daemon.labels.classes import info
from dropsight.daemon.labels.imagenet import imagenet
from dropsight.daemon.photos.imaging import FileFacts
from dropsight.daemon.runtime.classifier import ModelInfo

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SUFFIX = ".json"


def sidecar_path(image: Path, root: Path | None = None, out_folder: Path | None = None) -> Path:
    """`IMG.jpg` -> `IMG.jpg.json` beside it, or at the mirrored place under `out_folder`."""
    if out_folder is not None and root is not None:
        return out_folder / image.relative_to(root).parent / (image.name + SUFFIX)
    return image.with_name(image.name + SUFFIX)


NAME_MAX = 255  # bytes per file name on the common file systems (ext4, APFS, NTFS in UTF-16)


def name_fits(path: Path) -> bool:
    """Can a file of this name exist? A 252-byte photo name has no room for ".json"."""
    return len(os.fsencode(path.name)) <= NAME_MAX


@dataclass(frozen=True)
class Layout:
    """Where sidecars go: beside each photo, or mirrored under one output folder."""

    out_folder: Path | None = None

    @classmethod
    def of(cls, settings: Settings) -> Layout:
        """The layout the settings ask for (`[output] mode` and `folder`)."""
        out = settings.output
        return cls(out.folder if out.mode == "folder" else None)

    def sidecar_for(self, photo: Path, root: Path) -> Path:
        """The sidecar path of `photo`, found under the watched folder `root`."""
        return sidecar_path(photo, root, self.out_folder)

    def display_path(self, photo: Path) -> str:
        """What `image.path` records: the name beside the photo, else the absolute path."""
        return str(photo) if self.out_folder is not None else photo.name


def top_predictions(probs: np.ndarray, k: int, min_score: float = 0.0) -> list[Prediction]:
    """The k best classes, best first, as contract dicts (scores rounded to 6 places)."""
    index = imagenet()
    k = min(k, probs.shape[-1])
    best = np.argsort(-probs, kind="stable")[:k]
    out: list[Prediction] = []
    for i in best:
        score = float(np.clip(probs[i], 0.0, 1.0))
        if score < min_score:
            break
        out.append(
            {
                "rank": len(out) + 1,
                "class_index": int(i),
                "wnid": index.wnids[i],
                "label": index.labels[i],
                "name": info(int(i)).name,
                "score": round(score, 6),
            }
        )
    return out


def _model_block(model: ModelInfo) -> ModelBlock:
    return {
        "name": model.name,
        "fingerprint": model.fingerprint,
        "input_size": list(model.input_size),
        "runtime": model.runtime,
        "fallback_for": model.requested if model.is_fallback else None,
    }


def _image_block(display_path: str, facts: FileFacts | None) -> ImageBlock:
    block: ImageBlock = {
        "path": display_path,
        "sha256": facts.sha256 if facts else None,
        "bytes": facts.size_bytes if facts else None,
        "width": facts.width if facts else None,
        "height": facts.height if facts else None,
    }
    if facts and facts.mtime_ns:
        block["stat"] = file_stat(facts)
    return block


def file_stat(facts: FileFacts) -> FileStat:
    """The identity of the file as it was read, as the sidecar records it."""
    return {"mtime_ns": facts.mtime_ns, "ctime_ns": facts.ctime_ns, "inode": facts.inode}


def _stat_of(st: os.stat_result) -> FileStat:
    return {"mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "inode": st.st_ino}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def build(
    display_path: str,
    facts: FileFacts | None,
    model: ModelInfo,
    predictions: list[Prediction],
    error: tuple[str, str] | None = None,
    *,
    categories: list[str] | None = None,
) -> SidecarRecord:
    """A record: labels for a classified photo, or `error` = (type, message) and no labels."""
    record: SidecarRecord = {
        "schema_version": SCHEMA_VERSION,
        "status": "error" if error else "ok",
        "image": _image_block(display_path, facts),
        "model": _model_block(model),
        "predictions": [] if error else predictions,
        "error": {"type": error[0], "message": error[1]} if error else None,
        "processed_at": _now(),
        "generator": {"name": APP_NAME, "version": __version__},
    }
    if not error:
        record["categories"] = categories or []
    return record


def dumps(record: SidecarRecord | dict[str, Any]) -> str:
    """Serialise a record as stored: stable key order, UTF-8 text, newline at the end.

    Lone surrogates (non-UTF-8 name bytes) become \\udcXX escapes, so the text is valid
    UTF-8 JSON and the original bytes are recoverable.
    """
    text = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
    return surrogates.escape(text)


def write(path: Path, record: SidecarRecord) -> None:
    """Write a sidecar atomically and durably (readers never see a partial file)."""
    write_bytes_atomic(path, dumps(record).encode("utf-8"))


MAX_BYTES = 1 << 20  # real sidecars are ~2 KB; a bigger file is not one of ours


@dataclass(frozen=True)
class Loaded:
    """What is at a sidecar's path: our valid record, nothing, or a file that is not ours.

    "odd": a file we did not write or that breaks the contract (not a regular file, too big,
    not UTF-8 JSON, the wrong shape, another program's). It counts as absent for labelling,
    but it is the user's: never overwritten or removed, and `reason` says why it is odd.
    """

    kind: Literal["ours", "absent", "odd"]
    record: SidecarRecord | None = None
    reason: str = ""


ABSENT = Loaded("absent")
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)  # a FIFO opens at once instead of waiting for a writer
    | getattr(os, "O_NOFOLLOW", 0)  # a symbolic link is the user's, not a sidecar of ours
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def load(path: Path) -> Loaded:
    """The file at a sidecar's path, checked (type, size, shape) before it is trusted.

    Never blocks (a FIFO, a device) and never reads more than MAX_BYTES; never raises.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        return ABSENT
    except OSError as exc:
        if path.is_symlink():
            return Loaded("odd", reason="a symbolic link")
        return Loaded("odd", reason=f"cannot be read: {exc.strerror or exc}")
    try:
        st = os.fstat(fd)
        if S_ISDIR(st.st_mode):
            # Nothing a write could replace (a rename onto a folder fails): the write is
            # tried, fails loudly and is retried until the user clears the way.
            return Loaded("absent", reason="a folder")
        if not S_ISREG(st.st_mode):
            return Loaded("odd", reason="not a regular file")
        if st.st_size > MAX_BYTES:
            return Loaded("odd", reason=f"larger than {MAX_BYTES // (1 << 20)} MB")
        data = _read_at_most(fd, MAX_BYTES + 1)
    except OSError as exc:
        return Loaded("odd", reason=f"cannot be read: {exc.strerror or exc}")
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:  # it grew while we looked
        return Loaded("odd", reason=f"larger than {MAX_BYTES // (1 << 20)} MB")
    return parse(data)


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def parse(data: bytes) -> Loaded:
    """A sidecar's bytes checked against the contract (`SidecarRecord`) and its writer."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return Loaded("odd", reason="not UTF-8 JSON")
    try:
        record = msgspec.convert(value, SidecarRecord)
    except msgspec.ValidationError as exc:
        return Loaded("odd", reason=f"not a Dropsight sidecar ({exc})")
    if record["generator"]["name"] != APP_NAME:
        return Loaded("odd", reason=f"written by {record['generator']['name'][:60]!r}")
    return Loaded("ours", record)


def read(path: Path) -> SidecarRecord | None:
    """Our valid sidecar at `path`, or None (missing, or a file that is not ours: `load`)."""
    return load(path).record


def is_current(
    record: SidecarRecord | None,
    fingerprint: str,
    *,
    sha256: str | None = None,
    stat: os.stat_result | None = None,
    any_model: bool = False,
) -> bool:
    """Does `record` already describe this photo as labelled by this model?

    The one freshness rule, in two modes. Full (`sha256` given, after reading the photo): the
    recorded content hash must match. Cheap (`stat`, for scans): the recorded size, mtime,
    ctime and inode must all match. Size and mtime alone are fooled by a same-size
    replacement that keeps the old mtime (`cp -p`, `rsync -t`, a backup restore); the inode
    or ctime of such a file always differs, and then the photo is hashed again. `any_model`
    accepts labels by another model (re-labelling left for later). Error records count only
    for content errors: a locked or vanished file is tried again.
    """
    if not record or record.get("schema_version") != SCHEMA_VERSION:
        return False
    # Read defensively: the file on disk may not follow the contract.
    raw: dict[str, Any] = dict(record)
    image = raw.get("image") or {}
    model = raw.get("model") or {}
    if model.get("fingerprint") != fingerprint and not any_model:
        return False
    if raw.get("status") != "ok" and (raw.get("error") or {}).get("type") not in CONTENT_ERRORS:
        return False
    if sha256 is not None:
        return image.get("sha256") == sha256
    if stat is None or image.get("sha256") is None or image.get("bytes") != stat.st_size:
        return False
    return image.get("stat") == _stat_of(stat)


ScanState = Literal["current", "other_model", "stale", "odd"]


def scan_state(photo: Path, sidecar: Path, fingerprint: str) -> ScanState:
    """Cheap freshness for scans (no hashing): the photo's size and identity as recorded.

    "other_model": the content is labelled, by a model other than `fingerprint`'s. "odd": the
    sidecar's place holds a file that is not ours (`load`): the photo is left alone.
    """
    try:
        st = photo.stat()
    except OSError:
        return "stale"
    loaded = load(sidecar)
    if loaded.kind == "odd":
        return "odd"
    record = loaded.record
    if is_current(record, fingerprint, stat=st):
        return "current"
    if is_current(record, fingerprint, stat=st, any_model=True):
        return "other_model"
    return "stale"


def restamped(record: SidecarRecord, facts: FileFacts) -> SidecarRecord | None:
    """The record with the photo's identity as read; None when it records that already."""
    if not facts.mtime_ns or record["image"].get("stat") == file_stat(facts):
        return None
    image = {**record["image"], "stat": file_stat(facts)}
    return cast(SidecarRecord, {**record, "image": image})


def mark_verified(path: Path, record: SidecarRecord, facts: FileFacts) -> None:
    """A full check found the sidecar current: record the photo's identity as read.

    Without this, a photo whose identity changed with the same bytes (copied back, touched,
    chmod-ed, or labelled before 0.3) would be read and hashed again at every rescan.
    """
    updated = restamped(record, facts)
    if updated is None:
        return
    try:
        write(path, updated)
    except OSError as exc:  # costs a hash at the next scan, nothing more
        log.warning("cannot update %s: %s", path, exc.strerror or exc)


def ours(json_path: Path, photo: Path) -> bool:
    """Is this sidecar one Dropsight wrote for this very photo? Never delete anyone else's."""
    record = read(json_path)
    if not record or (record.get("generator") or {}).get("name") != APP_NAME:
        return False
    recorded = str((record.get("image") or {}).get("path") or "")
    return recorded in (photo.name, str(photo))


class SidecarFiles:
    """The sidecars as an output: the writer stage writes them; a photo gone loses its own."""

    name = "sidecars"

    def __init__(self, _ctx: object) -> None:
        self._layout = Layout()

    def configure(self, settings: Settings) -> None:
        """Follow the layout (`[output] mode` and `folder`)."""
        self._layout = Layout.of(settings)

    def accept(self, batch: object) -> None:
        """Written already, by the writer stage."""

    def forget(self, photo: Path, root: Path) -> None:
        """Remove the gone photo's sidecar, if it is ours and says so."""
        json_path = self._layout.sidecar_for(photo, root)
        if ours(json_path, photo):
            with contextlib.suppress(FileNotFoundError):
                json_path.unlink()
                log.info("%s is gone; removed its sidecar", photo)

    def close(self) -> None:
        """Nothing held open."""


@cache
def schema() -> dict[str, Any]:
    """The public JSON Schema of sidecars (shipped in config/)."""
    files = resources.files("dropsight.config")
    result: dict[str, Any] = json.loads(files.joinpath("sidecar.schema.json").read_text("utf-8"))
    return result
