"""OS file locks the OS releases when the process dies: one service per user, and the
folders a backfill labels."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
from pathlib import Path
from types import TracebackType

from dropsight.daemon.core.invocation import command_name


class AlreadyRunning(RuntimeError):
    """Another Dropsight service holds the lock."""


class InstanceLock:
    """An exclusive, non-blocking lock on a file (fcntl on POSIX, msvcrt on Windows)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise AlreadyRunning naming the holder's pid."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _lock(fd)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise AlreadyRunning(
                f"Dropsight is already running{who}. Use `{command_name()} status` to see "
                f"it or `{command_name()} stop` to stop it."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        """Release the lock (also released by the OS if the process dies)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return int(os.read(fd, 32).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _lock(fd: int) -> None:
    """Take an exclusive, non-blocking OS lock on `fd`; OSError if another process holds it."""
    # Imported here: each module exists on one platform only, and every command imports this.
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


class Claimed(RuntimeError):
    """Another run holds a claim on one of the folders (or a folder around or inside it)."""


CLAIM_WAIT_S = 10.0  # for the short lock that makes checking and claiming one step


class FolderClaims:
    """Folders a one-off run (`backfill`) labels: a second run on any of them refuses.

    One lock file per claimed folder in `folder` (the state folder, never the user's), held
    while the run lasts; the OS lets go when the process dies, so a crash claims nothing.
    """

    def __init__(self, folder: Path) -> None:
        self._dir = folder
        self._held: list[int] = []

    def claim(self, roots: list[Path]) -> FolderClaims:
        """Claim every root, or raise Claimed naming the run that holds one."""
        self._dir.mkdir(parents=True, exist_ok=True)
        mutex = os.open(self._dir / ".claims.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _lock_waiting(mutex)
            wanted = [r.resolve() for r in roots]
            for path in self._dir.glob("*.lock"):
                holder = _held_by_other(path)
                if holder is None:
                    continue
                pid, theirs = holder
                for mine in wanted:
                    if mine == theirs or theirs in mine.parents or mine in theirs.parents:
                        raise Claimed(
                            f"another backfill{f' (pid {pid})' if pid else ''} is labelling "
                            f"{theirs}; wait for it to finish (the same photos would be "
                            "labelled twice)"
                        )
            for mine in wanted:
                self._held.append(_take(self._dir, mine))
        except BaseException:
            self.release()
            raise
        finally:
            os.close(mutex)  # also lets go of the mutex's lock
        return self

    def release(self) -> None:
        """Give the claims up."""
        held, self._held = self._held, []
        for fd in held:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)

    def __enter__(self) -> FolderClaims:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def _take(folder: Path, root: Path) -> int:
    name = hashlib.sha256(os.fsencode(root)).hexdigest()[:32] + ".lock"
    fd = os.open(folder / name, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _lock(fd)
    except OSError:
        os.close(fd)
        raise Claimed(f"another backfill is labelling {root}; wait for it to finish") from None
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    # From byte 1: Windows locks byte 0, and others could not read a locked byte.
    os.write(fd, f"\n{os.getpid()}\n".encode() + os.fsencode(root))
    return fd


def _held_by_other(path: Path) -> tuple[int | None, Path] | None:
    """(pid, folder) of a claim file another process holds; None when nobody does."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return None
    try:
        try:
            _lock(fd)
        except OSError:
            os.lseek(fd, 1, os.SEEK_SET)
            pid, _, where = os.read(fd, 65536).partition(b"\n")
            return (int(pid) if pid.isdigit() else None), Path(os.fsdecode(where))
        return None  # nobody holds it: a claim that ended (closing lets go of our lock)
    except OSError:
        return None
    finally:
        os.close(fd)


def _lock_waiting(fd: int) -> None:
    """Take the lock on `fd`, waiting up to CLAIM_WAIT_S for another run's short hold."""
    deadline = time.monotonic() + CLAIM_WAIT_S
    while True:
        try:
            _lock(fd)
            return
        except OSError:
            if time.monotonic() >= deadline:
                raise Claimed("the backfill claims are held too long; try again") from None
            time.sleep(0.05)
