"""The library index: every labelled photo in SQLite, so "photos of dogs" is one query.

The sidecars stay the source of truth; the index is rebuilt from them at will (`dropsight
index rebuild`) and repaired at each service start. Paths are stored as their file-system
bytes (a name that is not UTF-8 still round-trips).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from dropsight.daemon.contracts import RecentResult, SidecarRecord
from dropsight.daemon.core import paths
from dropsight.daemon.labels import query
from dropsight.daemon.labels.classes import info

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000  # the service and a CLI command may write at the same time
# Below this many matching labels, read them all and sort (the class index is selective);
# above it, walk labels best-first and stop at the limit (matches are dense, found early).
SELECTIVE_MATCHES = 5_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS photos (
    id INTEGER PRIMARY KEY,
    path BLOB NOT NULL UNIQUE,      -- os.fsencode(photo)
    sidecar BLOB NOT NULL,
    status TEXT NOT NULL,
    model TEXT NOT NULL,
    processed_at TEXT NOT NULL,
    sidecar_mtime_ns INTEGER NOT NULL,
    categories TEXT NOT NULL        -- JSON list
);
CREATE TABLE IF NOT EXISTS labels (
    photo INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    class_index INTEGER NOT NULL,
    score REAL NOT NULL,
    rank INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS labels_by_class ON labels (class_index, score);
CREATE INDEX IF NOT EXISTS labels_by_score ON labels (score DESC, class_index, photo);
CREATE INDEX IF NOT EXISTS labels_by_photo ON labels (photo);
"""


def default_path() -> Path:
    """Where the service keeps the index: state, not data (it is rebuilt from the sidecars,
    and on Linux the data folder is where install.sh puts the app)."""
    return paths.state_dir() / "library.sqlite3"


class HitJson(TypedDict):
    """One line of `dropsight search --json`."""

    path: str
    sidecar: str
    name: str
    class_index: int
    wnid: str
    score: float


@dataclass(frozen=True)
class Hit:
    """One photo found: the best of its labels that matched."""

    path: Path
    sidecar: Path
    class_index: int
    score: float

    @property
    def name(self) -> str:
        """The matched class's friendly name."""
        return info(self.class_index).name

    def as_json(self) -> HitJson:
        """What `search --json` prints per line."""
        return {
            "path": os.fsdecode(os.fsencode(self.path)),
            "sidecar": os.fsdecode(os.fsencode(self.sidecar)),
            "name": self.name,
            "class_index": self.class_index,
            "wnid": info(self.class_index).wnid,
            "score": self.score,
        }


class IndexDamaged(sqlite3.DatabaseError):
    """The index file fails SQLite's integrity check: set it aside and rebuild (repair.py)."""


def is_damage(exc: BaseException) -> bool:
    """A DatabaseError that means a damaged file (not locked, read-only or a full disk)."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


def _check(db: sqlite3.Connection) -> None:
    """SQLite's quick integrity check (pages, records, indexes), or IndexDamaged."""
    try:
        rows = db.execute("PRAGMA quick_check(3)").fetchall()
    except sqlite3.DatabaseError as exc:
        if is_damage(exc):
            raise IndexDamaged(str(exc)) from None
        raise
    if [tuple(r) for r in rows] != [("ok",)]:
        raise IndexDamaged("; ".join(str(r[0]) for r in rows))


class Index:
    """A connection to the index (one per thread at a time).

    Opening checks the file's integrity (IndexDamaged); `read_only` never writes (search).
    """

    def __init__(self, path: Path | None = None, *, read_only: bool = False) -> None:
        self.path = path or default_path()
        if read_only:
            self._db = _open_read_only(self.path)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Private like every file of ours (README); SQLite gives -wal and -shm the same mode.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        # Used from one thread at a time; the service's output uses it on its own thread.
        self._db = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
        )
        try:
            _check(self._db)
            self._setup()
        except BaseException:
            self._db.close()
            raise

    def _setup(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable enough, far faster
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._db:
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- writing -------------------------------------------------------------------------

    def put_many(self, items: Iterable[tuple[Path, Path, SidecarRecord, int]]) -> int:
        """Record (photo, sidecar, record, sidecar mtime_ns) entries in one transaction."""
        count = 0
        with self._db:
            for photo, sidecar, record, mtime_ns in items:
                self._put(photo, sidecar, record, mtime_ns)
                count += 1
        return count

    def _put(self, photo: Path, sidecar: Path, record: SidecarRecord, mtime_ns: int) -> None:
        key = os.fsencode(photo)
        self._db.execute("DELETE FROM photos WHERE path = ?", (key,))
        cur = self._db.execute(
            "INSERT INTO photos (path, sidecar, status, model, processed_at, sidecar_mtime_ns,"
            " categories) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                os.fsencode(sidecar),
                record.get("status", "error"),
                (record.get("model") or {}).get("name", ""),
                record.get("processed_at", ""),
                mtime_ns,
                json.dumps(record.get("categories") or []),
            ),
        )
        self._db.executemany(
            "INSERT INTO labels (photo, class_index, score, rank) VALUES (?, ?, ?, ?)",
            [
                (cur.lastrowid, int(p["class_index"]), float(p["score"]), int(p["rank"]))
                for p in record.get("predictions") or []
            ],
        )

    def remove_many(self, photos: Iterable[Path]) -> int:
        """Forget photos (deleted, or moved out of the watched folders)."""
        with self._db:
            cur = self._db.executemany(
                "DELETE FROM photos WHERE path = ?", [(os.fsencode(p),) for p in photos]
            )
        return cur.rowcount

    def clear(self) -> None:
        """Forget everything (before a rebuild from scratch)."""
        with self._db:
            self._db.execute("DELETE FROM photos")

    # --- reading -------------------------------------------------------------------------

    def known(self, under: Path | None = None) -> Iterator[tuple[Path, Path, int]]:
        """(photo, sidecar, sidecar mtime_ns) of every indexed photo, optionally under a folder."""
        sql = "SELECT path, sidecar, sidecar_mtime_ns FROM photos"
        args: tuple[bytes, ...] = ()
        if under is not None:
            sql, args = sql + " WHERE " + _under_clause(), _under_args(under)
        for path, sidecar, mtime_ns in self._db.execute(sql, args):
            yield Path(os.fsdecode(path)), Path(os.fsdecode(sidecar)), int(mtime_ns)

    def latest(self, limit: int = 20) -> list[RecentResult]:
        """The photos labelled last, newest first, as `Status.recent` lists them."""
        rows = self._db.execute(
            "SELECT p.path, p.sidecar, p.status, p.processed_at, l.class_index, l.score"
            " FROM photos AS p LEFT JOIN labels AS l ON l.photo = p.id AND l.rank = 1"
            " ORDER BY p.processed_at DESC, p.id DESC LIMIT ?",
            (limit,),
        )
        return [
            {
                "image": os.fsdecode(path),
                "sidecar": os.fsdecode(sidecar),
                "status": str(status),
                "label": info(class_index).name if class_index is not None else None,
                "score": float(score) if score is not None else None,
                "time": str(processed_at),
            }
            for path, sidecar, status, processed_at, class_index, score in rows
        ]

    def count(self) -> int:
        """How many photos are indexed."""
        return int(self._db.execute("SELECT COUNT(*) FROM photos").fetchone()[0])

    def category_counts(self) -> dict[str, int]:
        """Photos per category (categories of labels at or above the keyword threshold)."""
        counts: dict[str, int] = {}
        for (raw,) in self._db.execute("SELECT categories FROM photos WHERE categories != '[]'"):
            for cid in json.loads(raw):
                counts[cid] = counts.get(cid, 0) + 1
        return counts

    def search(
        self,
        words: Sequence[str],
        *,
        min_score: float = 0.0,
        under: Path | None = None,
        limit: int | None = 50,
        offset: int = 0,
    ) -> list[Hit]:
        """Photos matching every term of the words (labels/query.py), best first.

        A term is a class name ("golden retriever", also unquoted), a synonym, a category or
        WordNet ancestor ("dog" finds every breed), or a word the concept map relates to
        classes ("beach"); several terms must all match the same photo, which is ranked by
        its best label for the rarest of them. `limit` None: every photo.
        """
        wanted = [t.classes for t in query.parse(words)]
        if not wanted or any(not w for w in wanted):
            return []
        sql, args = self._query(
            wanted, min_score, under, "p.path, p.sidecar, l.class_index, l.score"
        )
        hits: list[Hit] = []
        seen: set[bytes] = set()
        skip = offset
        for path, sidecar, class_index, score in self._db.execute(
            sql + " ORDER BY l.score DESC, p.path", args
        ):
            if path in seen:
                continue  # a photo's second-best matching label
            seen.add(path)
            if skip:
                skip -= 1
                continue
            hits.append(
                Hit(Path(os.fsdecode(path)), Path(os.fsdecode(sidecar)), class_index, score)
            )
            if limit is not None and len(hits) >= limit:
                break
        return hits

    def count_matching(
        self, words: Sequence[str], *, min_score: float = 0.0, under: Path | None = None
    ) -> int:
        """How many photos `search` would find without a limit."""
        wanted = [t.classes for t in query.parse(words)]
        if not wanted or any(not w for w in wanted):
            return 0
        sql, args = self._query(wanted, min_score, under, "DISTINCT l.photo")
        return int(self._db.execute(f"SELECT COUNT(*) FROM ({sql})", args).fetchone()[0])

    def _query(
        self, wanted: list[frozenset[int]], min_score: float, under: Path | None, columns: str
    ) -> tuple[str, list[Any]]:
        """The SELECT of labels matching the rarest term, filtered by the others."""
        counted = sorted((self._matches(w, min_score), i) for i, w in enumerate(wanted))
        matches, driver = counted[0]
        first = sorted(wanted[driver])
        rest = [w for i, w in enumerate(wanted) if i != driver]
        filters, args = self._filters(rest, min_score, under)
        marks = ",".join("?" * len(first))
        order = "labels_by_class" if matches < SELECTIVE_MATCHES else "labels_by_score"
        sql = (
            f"SELECT {columns}"
            f" FROM labels AS l INDEXED BY {order} JOIN photos AS p ON p.id = l.photo"
            f" WHERE l.class_index IN ({marks}) AND l.score >= ?{filters}"
        )
        return sql, [*first, min_score, *args]

    def _matches(self, classes: frozenset[int], min_score: float) -> int:
        """How many labels match, counted no further than SELECTIVE_MATCHES (kept cheap)."""
        marks = ",".join("?" * len(classes))
        row = self._db.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM labels INDEXED BY labels_by_class"
            f" WHERE class_index IN ({marks}) AND score >= ? LIMIT ?)",
            (*sorted(classes), min_score, SELECTIVE_MATCHES),
        ).fetchone()
        return int(row[0])

    @staticmethod
    def _filters(
        rest: Sequence[frozenset[int]], min_score: float, under: Path | None
    ) -> tuple[str, list[Any]]:
        clauses, args = "", list[Any]()
        for classes in rest:
            marks = ",".join("?" * len(classes))
            clauses += (
                " AND EXISTS (SELECT 1 FROM labels AS o WHERE o.photo = p.id"
                f" AND o.class_index IN ({marks}) AND o.score >= ?)"
            )
            args += [*sorted(classes), min_score]
        if under is not None:
            clauses += " AND " + _under_clause("p.path")
            args += list(_under_args(under))
        return clauses, args


def _open_read_only(path: Path) -> sqlite3.Connection:
    """The index opened read-only (`mode=ro`): never a write, not even to create it.

    A missing index is an empty one. On read-only media (no -shm can be made beside a WAL
    file) it is opened as immutable: nobody can be writing it there.
    """
    if not path.exists():
        db = sqlite3.connect(":memory:", check_same_thread=False)
        db.executescript(_SCHEMA)
        return db
    uri = path.absolute().as_uri()
    try:
        return _checked(uri + "?mode=ro")
    except sqlite3.OperationalError:
        return _checked(uri + "?mode=ro&immutable=1")


def _checked(uri: str) -> sqlite3.Connection:
    db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    try:
        _check(db)
    except BaseException:
        db.close()
        raise
    return db


def _under_clause(column: str = "path") -> str:
    return f"{column} >= ? AND {column} < ?"


def _under_args(folder: Path) -> tuple[bytes, bytes]:
    """Byte bounds of every path below `folder` ("/a/b/" .. "/a/b0": '0' follows '/')."""
    prefix = os.fsencode(folder.absolute()).rstrip(b"/\\") + os.sep.encode()
    return prefix, prefix[:-1] + bytes([prefix[-1] + 1])
