"""An XMP file already at a photo's XMP path: read only what is safe, replace only what we read.

The file is the user's (or another tool's): a symlink, a pipe or a device there is never
followed or opened blocking, a file above MAX_BYTES is never read, a file exiv2 would read
only part of is never rewritten (exiv2 reads a file with one bad tag as empty), and the
replacement keeps the file's mode and owner and happens only if the file is still the one
that was read.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
import sys
import xml.parsers.expat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropsight.daemon.core.atomic import temp_path_for

MAX_BYTES = 4 << 20  # real XMP sidecars are a few KB; darktable's long histories, a few 100
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XML = "http://www.w3.org/XML/1998/namespace"
_NS = " "  # expat's separator between a namespace and a local name

Identity = tuple[int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns


class XmpError(Exception):
    """An existing XMP file was not changed: it is not one we can merge safely."""


class Changed(Exception):
    """The file changed between reading and replacing it: merge with what is there now."""


@dataclass(frozen=True)
class Existing:
    """What was at the XMP path when it was read."""

    data: bytes | None  # None: no file there
    identity: Identity | None = None
    mode: int = 0
    uid: int = -1
    gid: int = -1

    @property
    def empty(self) -> bool:
        """No file, or one holding nothing (a 0-byte file has nothing of anyone's in it)."""
        return self.data is None or not self.data.strip()


def read(path: Path) -> Existing:
    """The file at `path`, or why it is to be left alone (XmpError)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return Existing(None)
    _check_kind(path, st)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return Existing(None)
    except OSError as exc:  # ELOOP: a symlink put there since the lstat
        raise XmpError(f"{path} cannot be read ({exc.strerror or exc}); left as it was") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        _check_kind(path, st)
        data = f.read(MAX_BYTES + 1)
        after = os.fstat(fd)
    _check_size(path, len(data))
    if len(data) != after.st_size or _identity(after) != _identity(st):
        raise Changed  # being written right now (darktable rewrites in place)
    return Existing(data, _identity(after), after.st_mode, after.st_uid, after.st_gid)


def check_complete(path: Path, data: bytes, parsed: Mapping[str, Any]) -> None:
    """Raise XmpError unless exiv2's reading `parsed` holds every property of `data`.

    exiv2 reads a file with one bad tag, a truncated one or one with a byte that is not
    UTF-8 as holding nothing: merging into that would replace the user's data with ours.
    """
    if not data.strip():
        return
    properties = _properties(path, data)
    read_ = {key.split("[", 1)[0].split("/", 1)[0] for key in parsed}
    if len(read_) < len(properties):
        raise XmpError(
            f"{path}: exiv2 reads only {len(read_)} of its {len(properties)} properties; "
            "left as it was"
        )


def replace(path: Path, data: bytes, before: Existing) -> None:
    """Put `data` at `path` atomically, if the file there is still `before` (else Changed).

    The new file gets the old one's mode and owner; one we cannot give its owner back (a
    file of another user) is left as it was. A new file is created 0644 less the umask.
    """
    tmp = temp_path_for(path)
    mode = 0o600 if before.data is not None else 0o644
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    ours: Identity | None = None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if before.data is not None:
                _keep_owner(path, fd, before)
                if hasattr(os, "fchmod"):  # as narrow as before, never wider
                    os.fchmod(fd, stat.S_IMODE(before.mode))
            os.fsync(fd)
            ours = _identity(os.fstat(fd))
        if not _is(path, before):
            raise Changed
        _commit(tmp, path, before, ours)
    except BaseException:
        if ours is None or _identity_now(tmp) == ours:  # never what another program wrote
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise


def _commit(tmp: Path, path: Path, before: Existing, ours: Identity) -> None:
    """Move `tmp` to `path` unless another program wrote `path` since `before` was read.

    A new file is linked into place (failing if one appeared). An existing one is swapped
    with renameat2(RENAME_EXCHANGE) and what comes out is checked: if it is not what was
    read, another program saved it in the instant before the swap, and it is swapped back.
    Where the swap is missing (not Linux, some network file systems), the check just before
    is all there is.
    """
    if before.data is None:
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise Changed from None
        except OSError:  # no hard links here (FAT, some shares)
            if _identity_now(path) is not None:
                raise Changed from None
            tmp.replace(path)
            return
        tmp.unlink()
        return
    if not _exchange(tmp, path):
        tmp.replace(path)
        return
    if _is(tmp, before):
        tmp.unlink()  # the file we read, now replaced
        return
    if _identity_now(path) == ours:
        _exchange(tmp, path)  # theirs back in place; ours (at tmp) is removed by the caller
    raise Changed


def _is(path: Path, before: Existing) -> bool:
    """Whether `path` is still the file `before` read: same identity and the same bytes
    (a same-size edit within the file system's clock tick keeps size and mtime)."""
    if _identity_now(path) != before.identity:
        return False
    try:
        return read(path).data == before.data
    except (XmpError, Changed, OSError):
        return False


def _exchange(a: Path, b: Path) -> bool:
    """Swap two names atomically (Linux renameat2); False where that is not available."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _renameat2() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    except OSError:
        return None


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_RENAMEAT2 = _renameat2()


def unlink(path: Path, before: Existing) -> None:
    """Delete the file we created, if it is still the one that was read (else Changed)."""
    if not _is(path, before):
        raise Changed
    path.unlink()


def check_writable(path: Path, before: Existing) -> None:
    """Raise XmpError for a file its owner made read-only: it says "do not change me"."""
    if before.data is not None and not before.mode & stat.S_IWUSR:
        raise XmpError(f"{path} is read-only (mode {stat.S_IMODE(before.mode):o}); left as it was")


def _keep_owner(path: Path, fd: int, before: Existing) -> None:
    if not hasattr(os, "fchown"):
        return  # Windows: the folder's ACL applies to both files alike
    st = os.fstat(fd)
    if (st.st_uid, st.st_gid) == (before.uid, before.gid):
        return
    try:
        os.fchown(fd, before.uid, before.gid)
    except PermissionError:
        raise XmpError(
            f"{path} belongs to another user or group (uid {before.uid}, gid {before.gid}) "
            "that Dropsight cannot give a rewritten file; left as it was"
        ) from None


def _identity(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _identity_now(path: Path) -> Identity | None:
    try:
        return _identity(os.lstat(path))
    except FileNotFoundError:
        return None


def _check_kind(path: Path, st: os.stat_result) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise XmpError(
            f"{path} is a symbolic link; Dropsight never writes through one; left as it was"
        )
    if not stat.S_ISREG(st.st_mode):
        raise XmpError(
            f"{path} is not a regular file (a pipe, device, socket or folder); left as it was"
        )
    _check_size(path, st.st_size)


def _check_size(path: Path, size: int) -> None:
    if size > MAX_BYTES:
        raise XmpError(
            f"{path} is {size / (1 << 20):.1f} MB, more than the {MAX_BYTES >> 20} MB an XMP "
            "sidecar may have; left as it was"
        )


def _properties(path: Path, data: bytes) -> set[str]:
    """The top-level properties of every rdf:Description, by a strict XML parser.

    Refuses what is not well-formed XML and any DTD (entity expansion, external entities).
    """
    found: set[str] = set()
    stack: list[str] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        parent = stack[-1] if stack else ""
        if name == RDF + _NS + "Description" and parent == RDF + _NS + "RDF":
            found.update(a for a in attrs if _NS in a and not a.startswith((RDF, XML)))
        elif parent == RDF + _NS + "Description" and stack[-2:-1] == [RDF + _NS + "RDF"]:
            found.add(name)
        stack.append(name)

    def end(_name: str) -> None:
        stack.pop()

    def no_dtd(*_args: object) -> None:
        raise XmpError(f"{path} declares a DTD, which XMP never has; left as it was")

    parser = xml.parsers.expat.ParserCreate(namespace_separator=_NS)
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.StartDoctypeDeclHandler = no_dtd
    parser.EntityDeclHandler = no_dtd
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as exc:
        raise XmpError(f"{path} is not a valid XMP file ({exc}); left as it was") from None
    return found
