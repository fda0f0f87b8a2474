"""The decode stage's one function: read a photo once, hash it, skip it if current, decode it.

Errors are kept detached (no traceback, no context): their frames would hold the bytes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dropsight.daemon.contracts import SidecarRecord
from dropsight.daemon.outputs import sidecar
from dropsight.daemon.photos import imaging
from dropsight.daemon.photos.imaging import DEFAULT_LIMITS, FileFacts, ImageError, PhotoLimits
from dropsight.daemon.photos.raw import is_raw
from dropsight.daemon.pipeline.crashguard import SKIP_AFTER
from dropsight.daemon.pipeline.jobs import Job

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """A job after decoding: pixels for the model, or the error that stopped it.

    `current` means its sidecar already records this content and model: nothing to do but,
    with `restamp`, to record the photo's identity as read (the writer stage writes it).
    """

    job: Job
    facts: FileFacts | None = None
    pixels: np.ndarray | None = None  # float32 (H, W, 3) RGB 0..255
    error: ImageError | None = None
    current: bool = False
    restamp: SidecarRecord | None = None  # the current sidecar, to record the new identity
    odd: str | None = None  # why the sidecar's place holds a file not ours: left alone
    started: float = field(default_factory=time.monotonic)  # for the per-photo time in logs

    @property
    def vanished(self) -> bool:
        """True when the photo was gone by the time it was read: nothing to record."""
        return self.error is not None and self.error.kind == "not_found"


def prepare(
    job: Job,
    input_size: tuple[int, int],
    resize: str,
    fingerprint: str | None = None,
    *,
    any_model: bool = False,
    limits: PhotoLimits = DEFAULT_LIMITS,
) -> Prepared:
    """Read, hash and decode `job.path`; never raises for a problem with the photo.

    With `fingerprint`, a photo whose sidecar already records the same content and model
    (any model, with `any_model`) is returned as `current` without decoding (the service;
    `classify` always labels). A file refused by `limits` or its header is never decoded.
    """
    started = time.monotonic()
    facts: FileFacts | None = None
    try:
        read = imaging.read_file(job.path, limits)
        facts = read.facts
        loaded = sidecar.load(job.sidecar) if fingerprint is not None else sidecar.ABSENT
        if loaded.kind == "odd":  # another program's file: never labelled over
            return Prepared(job, facts, odd=loaded.reason, started=started)
        record = loaded.record
        if record is not None and sidecar.is_current(
            record, fingerprint or "", sha256=facts.sha256, any_model=any_model
        ):
            # Without a restamp, a photo whose identity changed with the same bytes (copied
            # back, touched, labelled before 0.3) would be hashed again at every rescan.
            restamp = record if sidecar.restamped(record, facts) is not None else None
            return Prepared(job, facts, current=True, restamp=restamp, started=started)
        if job.deaths >= SKIP_AFTER:  # decoding it is what killed us: record, never retry
            return Prepared(job, facts, error=_crashed(job.deaths), started=started)
    except ImageError as exc:
        return Prepared(job, facts, error=exc.detached(), started=started)
    except Exception as exc:  # a bug must cost one photo, never the stage
        log.exception("preparing %s failed", job.path)
        return Prepared(job, facts, error=_internal(exc), started=started)
    if read.refused is not None:
        return Prepared(job, facts, error=read.refused, started=started)
    data = read.data
    del read  # the bytes: held by this frame only while decoding
    return decode_read(job, data, facts, input_size, resize, started=started, limits=limits)


def decode_read(
    job: Job,
    data: bytes,
    facts: FileFacts,
    input_size: tuple[int, int],
    resize: str,
    *,
    started: float | None = None,
    limits: PhotoLimits = DEFAULT_LIMITS,
) -> Prepared:
    """Decode a photo's bytes, read already (here or on another machine); never raises."""
    started = time.monotonic() if started is None else started
    try:
        raw = is_raw(job.path)
        image = imaging.prepare_bytes(data, facts, input_size, resize, limits, raw=raw)
        return Prepared(job, image.facts, image.pixels, started=started)
    except ImageError as exc:
        # A file that was read but not decoded still records its hash and size.
        return Prepared(job, facts, error=exc.detached(), started=started)
    except Exception as exc:  # a bug must cost one photo, never the stage
        log.exception("decoding %s failed", job.path)
        return Prepared(job, facts, error=_internal(exc), started=started)


def _internal(exc: Exception) -> ImageError:
    """A bug's error for the photo's record, detached from the bug's frames."""
    return ImageError("internal", str(exc)).detached()


def _crashed(deaths: int) -> ImageError:
    return ImageError(
        "crashed",
        f"skipped: the service ended abruptly {deaths} times while labelling this photo (a"
        " crash, or the system stopping it for lack of memory); a changed file is tried again",
    )


def job_for(path: Path) -> Job:
    """A job for a file given on the command line or to the API (sidecar beside it)."""
    return Job(path, path.parent, sidecar.sidecar_path(path))
