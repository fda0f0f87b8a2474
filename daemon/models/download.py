"""Resumable, md5-verified downloads of model weights files, with the standard library only."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import math
import os
import re
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, Literal, Protocol

CHUNK_BYTES = 1 << 20
PROGRESS_INTERVAL_S = 0.1  # at most ~10 progress calls a second, plus one at the end
PART_SUFFIX = ".part"
USER_AGENT = "dropsight-downloader"
_SCHEMES = ("http", "https")
_MB = 1_000_000
_DISK_FULL = frozenset(code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if code)
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)
_STOPPED = "download stopped; run it again to resume"
_WriteMode = Literal["ab", "wb"]


class DownloadError(Exception):
    """A download that gave no verified file; the message is one line a person can act on."""


@dataclass(frozen=True)
class Progress:
    """Bytes of the file on disk so far, and the whole file's size when known."""

    done: int
    total: int | None


def part_path(target: Path) -> Path:
    """The partial file a download of `target` writes to, and resumes from."""
    return target.with_name(target.name + PART_SUFFIX)


def verify(path: Path, md5: str) -> bool:
    """Whether `path` is a file whose md5 is `md5`."""
    if not path.is_file():
        return False
    return _md5_of(path) == md5.strip().lower()


def fetch(
    url: str,
    target: Path,
    *,
    md5: str,
    size: int | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    stop: threading.Event | None = None,
    timeout_s: float = 30.0,
) -> Path:
    """Download `url` to `target`, resuming its `.part` with a Range request; verify md5; rename."""
    _check_url(url)
    expected = md5.strip().lower()
    _mkdir(target.parent)
    part = part_path(target)
    job = _Job(url, target, part, expected, size, on_progress, stop, timeout_s)
    for _attempt in range(2):  # a second, clean start when a complete-looking part is wrong
        if job.part_is_complete() or job.download():
            _put_in_place(part, target)
            return target
    raise DownloadError(f"download failed: {job.host} rejects every request; check the URL")


def import_file(source: Path, target: Path, *, md5: str, size: int | None = None) -> Path:
    """Check a weights file the user already has, then copy it into place atomically.

    A known `size` is checked first, and the free space, before a byte is copied.
    """
    expected = md5.strip().lower()
    if not source.is_file():
        raise DownloadError(f"{source} is not a file; give the path of the downloaded weights")
    have = source.stat().st_size
    if size is not None and have != size:
        raise DownloadError(
            f"{source} is not the {target.name} weights file: {have} bytes, expected {size}"
        )
    _mkdir(target.parent)
    part = part_path(target)
    _check_free_space(part, have, resumable=False)
    hasher = hashlib.md5(usedforsecurity=False)
    done = 0
    try:
        with source.open("rb") as src, _open_part(part, "wb", resumable=False) as dst:
            while chunk := _read_source(src, source):
                _write_all(dst, chunk, part, needed=have - done, resumable=False)
                hasher.update(chunk)
                done += len(chunk)
            _sync(dst, part, needed=0, resumable=False)
    except BaseException:
        part.unlink(missing_ok=True)  # a copy is never resumed: nothing half-written stays
        raise
    actual = hasher.hexdigest()
    if actual != expected:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{source} is not the {target.name} weights file: md5 {actual}, expected {expected}"
        )
    _put_in_place(part, target)
    return target


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) URLs only (urllib alone would also follow ftp)."""

    def redirect_request(  # noqa: PLR0917  (urllib's signature)
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        """The request for `newurl`, refusing anything but http(s)."""
        if urllib.parse.urlsplit(newurl).scheme.lower() not in _SCHEMES:
            fp.close()
            raise DownloadError(
                f"download refused: {_host(req.full_url)} redirects to a non-http(s) address "
                f"({_one_line(newurl)}); check the URL"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Throttle:
    """Calls `on_progress` at most every PROGRESS_INTERVAL_S, and once more at the end."""

    def __init__(self, on_progress: Callable[[Progress], None] | None, total: int | None) -> None:
        self._call = on_progress
        self._total = total
        self._last: Progress | None = None
        self._last_t = -math.inf

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self._last_t >= PROGRESS_INTERVAL_S:
            self._emit(done)
            self._last_t = now

    def finish(self, done: int) -> None:
        if self._last != Progress(done, self._total):
            self._emit(done)

    def _emit(self, done: int) -> None:
        if self._call is not None:
            self._last = Progress(done, self._total)
            self._call(self._last)


@dataclass
class _Job:
    """One fetch: the URL, where it goes, and what the result must be."""

    url: str
    target: Path
    part: Path
    md5: str
    size: int | None
    on_progress: Callable[[Progress], None] | None
    stop: threading.Event | None
    timeout_s: float

    @property
    def host(self) -> str:
        return _host(self.url)

    def part_is_complete(self) -> bool:
        """With a known size, finish a part of exactly that size offline (or drop a bad one)."""
        if self.size is None or not self.part.is_file():
            return False
        have = self.part.stat().st_size
        if have == self.size and _md5_of(self.part) == self.md5:
            _fsync_path(self.part)
            return True
        if have >= self.size:  # full size but wrong, or too big: it can only be restarted
            self.part.unlink(missing_ok=True)
        return False

    def download(self) -> bool:
        """Fill the part from the server; True when it verified, False to start over."""
        offset = self.part.stat().st_size if self.part.is_file() else 0
        hasher = hashlib.md5(usedforsecurity=False)
        if offset:
            _hash_into(self.part, hasher)
        self._check_stop()
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        opener = urllib.request.build_opener(_HttpOnlyRedirects)
        try:
            response = opener.open(
                urllib.request.Request(self.url, headers=headers), timeout=self.timeout_s
            )
        except urllib.error.HTTPError as e:
            code, reason = e.code, e.reason
            e.close()
            if code == 416 and offset:  # nothing after the part: it may be the whole file
                if hasher.hexdigest() == self.md5:
                    _fsync_path(self.part)
                    return True
                self.part.unlink(missing_ok=True)
                return False
            raise DownloadError(
                f"download failed: {self.host} answered HTTP {code} {_one_line(str(reason))}; "
                "check the URL or try again later"
            ) from e
        except urllib.error.URLError as e:
            raise self._no_network(e.reason, offset) from e
        except (OSError, http.client.HTTPException) as e:
            raise self._no_network(e, offset) from e
        except ValueError as e:
            raise DownloadError(f"cannot download {_one_line(self.url)}: {e}") from e
        with response:
            return self._receive(response, offset, hasher)

    def _receive(self, response: http.client.HTTPResponse, offset: int, hasher: _Hash) -> bool:
        status = response.status
        length = _int_or_none(response.headers.get("Content-Length"))
        if status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:
                raise DownloadError(
                    f"download failed: {self.host} resumed at byte {start}, not {offset}; "
                    f"delete {self.part} and run it again"
                )
            if total is None and length is not None:
                total = offset + length
            mode: _WriteMode = "ab"
        elif status == 200:  # the server ignored Range (or there was none): start over
            offset, total, mode = 0, length, "wb"
            hasher = hashlib.md5(usedforsecurity=False)
        else:
            raise DownloadError(
                f"download failed: {self.host} answered HTTP {status} {response.reason}; "
                "check the URL or try again later"
            )
        if total is None:
            total = self.size
        elif self.size is not None and total != self.size:
            raise DownloadError(
                f"download failed: {self.host} offers {total} bytes for {self.target.name}, "
                f"expected {self.size}; the URL is wrong or the file changed upstream"
            )
        if total is not None:
            freed = self.part.stat().st_size if mode == "wb" and self.part.is_file() else 0
            _check_free_space(self.part, total - offset - freed)
        done = self._copy(response, mode, offset, total, hasher)
        actual = hasher.hexdigest()
        if actual != self.md5:
            self.part.unlink(missing_ok=True)
            raise DownloadError(
                f"downloaded {self.target.name} is corrupt: md5 {actual}, expected {self.md5} "
                f"({done} bytes from {self.host}); the partial file was removed, run it again"
            )
        return True

    def _copy(
        self,
        response: http.client.HTTPResponse,
        mode: _WriteMode,
        done: int,
        total: int | None,
        hasher: _Hash,
    ) -> int:
        throttle = _Throttle(self.on_progress, total)
        with _open_part(self.part, mode, needed=_remaining(total, done)) as f:
            while True:
                self._check_stop()
                try:
                    chunk = response.read(CHUNK_BYTES)
                except (OSError, http.client.HTTPException) as e:
                    raise self._interrupted(e, done, total) from e
                if not chunk:
                    break
                _write_all(f, chunk, self.part, needed=_remaining(total, done))
                hasher.update(chunk)
                done += len(chunk)
                throttle.update(done)
            if total is not None and done < total:
                raise self._interrupted("the connection closed early", done, total)
            _sync(f, self.part, needed=0)
        throttle.finish(done)
        return done

    def _check_stop(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise DownloadError(_STOPPED)

    def _no_network(self, reason: object, offset: int) -> DownloadError:
        if isinstance(reason, ConnectionRefusedError):
            why = "connection refused"
        elif isinstance(reason, TimeoutError):
            why = f"no answer within {self.timeout_s:g} s"
        else:
            why = _one_line(str(reason)) or type(reason).__name__
        if offset:
            after = (
                f"the partial file ({_mb(offset)} MB) is kept and running the command again resumes"
            )
        else:
            after = "run the command again once online"
        return DownloadError(f"no network: cannot reach {self.host} ({why}); {after}")

    def _interrupted(self, reason: object, done: int, total: int | None) -> DownloadError:
        of = f" of {_mb(total)}" if total is not None else ""
        why = _one_line(str(reason)) or type(reason).__name__
        return DownloadError(
            f"download interrupted after {_mb(done)}{of} MB ({why}); the partial file is kept "
            "and running the command again resumes"
        )


class _Hash(Protocol):
    """What the downloader needs of a hashlib object."""

    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


def _check_url(url: str) -> None:
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in _SCHEMES or not _host(url):
        raise DownloadError(
            f"cannot download {_one_line(url)!r}: only http:// and https:// addresses are allowed"
        )


def _host(url: str) -> str:
    """host[:port] of `url`, without any user name or password."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    host = parts.hostname or ""
    return f"{host}:{port}" if port else host


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _mb(n: int) -> str:
    return f"{n / _MB:.1f}"


def _remaining(total: int | None, done: int) -> int | None:
    return None if total is None else max(total - done, 0)


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _content_range(header: str | None) -> tuple[int, int | None]:
    """(first byte, whole size or None) of a 206 answer's Content-Range."""
    match = _CONTENT_RANGE.fullmatch(header.strip()) if header else None
    if match is None:
        raise DownloadError(
            f"download failed: the server sent a partial answer without a valid Content-Range "
            f"({_one_line(header or 'none')}); run it again"
        )
    return int(match[1]), None if match[3] == "*" else int(match[3])


def _md5_of(path: Path) -> str:
    hasher = hashlib.md5(usedforsecurity=False)
    _hash_into(path, hasher)
    return hasher.hexdigest()


def _hash_into(path: Path, hasher: _Hash) -> None:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            hasher.update(chunk)


def _read_source(f: BinaryIO, source: Path) -> bytes:
    try:
        return f.read(CHUNK_BYTES)
    except OSError as e:
        raise DownloadError(f"cannot read {source}: {e.strerror or e}") from e


def _disk_error(
    e: OSError, part: Path, needed: int | None, *, resumable: bool = True
) -> DownloadError:
    if e.errno in _DISK_FULL:
        return _no_space(part, needed, resumable=resumable)
    return DownloadError(
        f"cannot write {part}: {e.strerror or e}; check the folder and run it again"
    )


def _no_space(part: Path, needed: int | None, *, resumable: bool = True) -> DownloadError:
    folder = part.parent
    how_much = f"need {max(math.ceil(needed / _MB), 1)} MB more" if needed else "free some space"
    # What happens to the part is said truly: a download resumes it, a copy removes it.
    left = (
        f"a partial {PART_SUFFIX} file is kept to resume"
        if resumable
        else "nothing half-copied is left behind"
    )
    return DownloadError(
        f"not enough disk space in {folder} for {part.name.removesuffix(PART_SUFFIX)}: "
        f"{how_much}, then run it again ({left})"
    )


def _check_free_space(part: Path, needed: int, *, resumable: bool = True) -> None:
    try:
        free = shutil.disk_usage(part.parent).free
    except OSError:
        return  # cannot tell: writing will say
    if needed > free:
        raise _no_space(part, needed - free, resumable=resumable)


def _mkdir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot create the folder {folder}: {e.strerror or e}") from e


@contextlib.contextmanager
def _open_part(
    part: Path, mode: _WriteMode, needed: int | None = None, *, resumable: bool = True
) -> Iterator[BinaryIO]:
    # Unbuffered: a failed write raises here, never again from close() hiding the first error.
    try:
        f = part.open(mode, buffering=0)
    except OSError as e:
        raise _disk_error(e, part, needed, resumable=resumable) from e
    with f:
        yield f


def _write_all(
    f: BinaryIO, data: bytes, part: Path, *, needed: int | None, resumable: bool = True
) -> None:
    view = memoryview(data)
    try:
        while view:
            written = f.write(view)
            view = view[written:]
    except OSError as e:
        raise _disk_error(e, part, needed, resumable=resumable) from e


def _sync(f: BinaryIO, part: Path, *, needed: int | None, resumable: bool = True) -> None:
    try:
        f.flush()
        os.fsync(f.fileno())
    except OSError as e:
        raise _disk_error(e, part, needed, resumable=resumable) from e


def _fsync_path(path: Path) -> None:
    try:
        with path.open("rb+") as f:
            os.fsync(f.fileno())
    except OSError as e:
        raise _disk_error(e, path, None) from e


def _put_in_place(part: Path, target: Path) -> None:
    try:
        part.replace(target)
    except OSError as e:
        raise DownloadError(
            f"cannot put {target.name} in place at {target}: {e.strerror or e}"
        ) from e
    if os.name == "posix":  # make the rename itself durable
        with contextlib.suppress(OSError):
            fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
