"""Keywords in XMP sidecars that photo managers read (digiKam, darktable, Lightroom, Immich).

A photo's keywords are the friendly names of its labels scoring at least `xmp_min_score`
plus their categories, written as `dc:subject` (flat), `lr:hierarchicalSubject`
("Dropsight|animal|mammal|dog|golden retriever") and `digiKam:TagsList` (the same with "/").
An existing XMP file is merged, never replaced: everything in it that is not ours stays, and
our own namespace records which flat keywords we added, so labelling again swaps exactly those
and `remove` takes out exactly those. The photo itself is never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyexiv2

from dropsight.config.settings import XmpName
from dropsight.daemon import __version__
from dropsight.daemon.contracts import SidecarRecord
from dropsight.daemon.core.atomic import write_bytes_atomic
from dropsight.daemon.labels.classes import categories, category_path, info

log = logging.getLogger(__name__)

NAMESPACE = "https://dropsight.invalid/xmp/1.0/"
PREFIX = "dropsight"
ROOT_TAG = "Dropsight"  # the parent of every hierarchical keyword we write
SUBJECT = "Xmp.dc.subject"
HIERARCHY = "Xmp.lr.hierarchicalSubject"
TAGS_LIST = "Xmp.digiKam.TagsList"
ADDED = f"Xmp.{PREFIX}.subjects"  # the dc:subject entries we added (and so may remove)
OURS = (ADDED, f"Xmp.{PREFIX}.model", f"Xmp.{PREFIX}.labelledAt", f"Xmp.{PREFIX}.version")
MERGE_ATTEMPTS = 3  # another program rewrote the file while we merged: read it again
EMPTY_PACKET = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
    b' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
    b" </rdf:RDF>\n</x:xmpmeta>\n"
    b'<?xpacket end="w"?>\n'
)


Outcome = Literal["written", "unchanged", "removed", "absent"]

pyexiv2.registerNs(NAMESPACE, PREFIX)
pyexiv2.set_log_level(4)  # exiv2 prints to stderr on its own; failures reach us as exceptions


class XmpError(Exception):
    """An existing XMP file could not be read as XMP; it was left as it was."""


@dataclass(frozen=True)
class Keywords:
    """What one photo is tagged with."""

    flat: tuple[str, ...]  # "golden retriever", "animal", "mammal", "dog"
    paths: tuple[tuple[str, ...], ...]  # ("animal", "mammal", "dog", "golden retriever")

    @property
    def hierarchical(self) -> list[str]:
        """Lightroom's form: "Dropsight|animal|mammal|dog|golden retriever"."""
        return ["|".join((ROOT_TAG, *p)) for p in self.paths]

    @property
    def tags_list(self) -> list[str]:
        """digiKam's form: "Dropsight/animal/mammal/dog/golden retriever"."""
        return ["/".join((ROOT_TAG, *p)) for p in self.paths]


def keywords(record: SidecarRecord, min_score: float) -> Keywords:
    """The keywords of a record: confident labels by friendly name, and their categories."""
    if record.get("status") != "ok":
        return Keywords((), ())
    names: list[str] = []
    cats: list[str] = []
    paths: list[tuple[str, ...]] = []
    for p in record.get("predictions", []):
        if float(p["score"]) < min_score:
            continue
        cls = info(int(p["class_index"]))
        trail = category_path(cls.category) if cls.category else []
        names.append(cls.name)
        cats += cls.categories
        paths.append((*(categories()[c].name for c in trail), cls.name))
    cat_names = [categories()[c].name for c in categories() if c in cats]
    return Keywords(tuple(dict.fromkeys([*names, *cat_names])), tuple(dict.fromkeys(paths)))


def xmp_path(photo: Path, name: XmpName = "IMG.jpg.xmp") -> Path:
    """`IMG.jpg` -> `IMG.jpg.xmp` (darktable, digiKam, Immich) or `IMG.xmp` (Adobe)."""
    return (
        photo.with_name(photo.name + ".xmp") if name == "IMG.jpg.xmp" else photo.with_suffix(".xmp")
    )


def write(photo: Path, record: SidecarRecord, min_score: float, name: XmpName) -> Outcome:
    """Put the record's keywords into the photo's XMP sidecar, replacing only ours.

    A record with no confident labels (or an error record) takes ours out and creates no file.
    Raises XmpError for an existing file that is not XMP, OSError when it cannot be written.
    """
    kw = keywords(record, min_score)
    stamp = {
        f"Xmp.{PREFIX}.model": record["model"]["name"],
        f"Xmp.{PREFIX}.labelledAt": record["processed_at"],
        f"Xmp.{PREFIX}.version": __version__,
    }
    return _update(xmp_path(photo, name), kw if kw.flat else None, stamp)


def remove(photo: Path, name: XmpName) -> Outcome:
    """Take our keywords out of the photo's XMP sidecar (deleting a file left empty)."""
    return _update(xmp_path(photo, name), None, {})


def read_keywords(path: Path) -> dict[str, list[str]]:
    """The keyword properties of an XMP file (for tests and `dropsight xmp` output)."""
    data = _read(path.read_bytes(), path)
    return {key: _as_list(data.get(key)) for key in (SUBJECT, HIERARCHY, TAGS_LIST, ADDED)}


def _update(path: Path, kw: Keywords | None, stamp: Mapping[str, str]) -> Outcome:
    for _attempt in range(MERGE_ATTEMPTS):
        try:
            before = path.read_bytes()
        except FileNotFoundError:
            if kw is None:
                return "absent"
            before = None
        after = _merged(before, kw, stamp, path)
        if after == before:
            return "unchanged"
        if not _same_file(path, before):
            continue  # a photo tool saved it meanwhile: merge with what it wrote
        if after is None:
            path.unlink()
            return "removed"
        write_bytes_atomic(path, after)
        return "written"
    raise OSError(f"{path} kept changing while Dropsight merged its keywords; try again")


def _same_file(path: Path, before: bytes | None) -> bool:
    try:
        return path.read_bytes() == before
    except FileNotFoundError:
        return before is None


def _merged(
    before: bytes | None, kw: Keywords | None, stamp: Mapping[str, str], path: Path
) -> bytes | None:
    """The file's new bytes (None: nothing would be left in it)."""
    data = _read(before or EMPTY_PACKET, path)
    ours = set(_as_list(data.get(ADDED)))
    subjects = [s for s in _as_list(data.get(SUBJECT)) if s not in ours]
    hierarchy = [h for h in _as_list(data.get(HIERARCHY)) if not _is_ours(h, "|")]
    tags = [t for t in _as_list(data.get(TAGS_LIST)) if not _is_ours(t, "/")]
    added: list[str] = []
    if kw is not None:
        added = [k for k in kw.flat if k not in subjects]
        subjects += added
        hierarchy += kw.hierarchical
        tags += kw.tags_list
    lists = {SUBJECT: subjects, HIERARCHY: hierarchy, TAGS_LIST: tags, ADDED: added}
    stamps = {key: stamp.get(key) for key in OURS if key != ADDED}
    now = {key: _as_list(data.get(key)) for key in lists} | {k: data.get(k) for k in stamps}
    if before is not None and now == lists | stamps:
        return before  # nothing would change: leave the file (and its time) alone
    others = [key for key in data if key not in lists and key not in OURS]
    if kw is None and not (others or subjects or hierarchy or tags):
        return None  # only ours was in it (exiv2 cannot write an empty packet)
    bags = {SUBJECT: subjects, HIERARCHY: hierarchy, ADDED: added}
    # pyexiv2 writes a list as rdf:Seq; a Bag is declared first, its items go in a second pass.
    first: dict[str, Any] = dict.fromkeys((*bags, TAGS_LIST, *OURS))
    first.update({key: 'type="Bag"' for key, values in bags.items() if values})
    second: dict[str, Any] = {
        f"{key}[{i}]": value
        for key, values in bags.items()
        for i, value in enumerate(values, start=1)
    }
    if tags:
        second[TAGS_LIST] = tags
    if kw is not None:
        second.update(stamp)
    return _modify(_modify(before or EMPTY_PACKET, first, path), second, path)


def _is_ours(keyword: str, sep: str) -> bool:
    return keyword == ROOT_TAG or keyword.startswith(ROOT_TAG + sep)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value]


def _read(raw: bytes, path: Path) -> dict[str, Any]:
    try:
        img = pyexiv2.ImageData(raw)
    except RuntimeError as exc:
        raise XmpError(f"{path} is not a valid XMP file ({exc}); left as it was") from exc
    try:
        data: dict[str, Any] = img.read_xmp()
        return data
    except RuntimeError as exc:
        raise XmpError(f"{path} is not a valid XMP file ({exc}); left as it was") from exc
    finally:
        img.close()


def _modify(raw: bytes, changes: Mapping[str, Any], path: Path) -> bytes:
    try:
        img = pyexiv2.ImageData(raw)
    except RuntimeError as exc:
        raise XmpError(f"{path} is not a valid XMP file ({exc}); left as it was") from exc
    try:
        # exiv2 mirrors dc:subject, dc:title and the like into IPTC on reading and back on
        # writing, which would undo our changes; the XMP file itself holds no IPTC block.
        img.clear_iptc()
        img.modify_xmp(dict(changes))
        out: bytes = img.get_bytes()
        return out
    except RuntimeError as exc:
        raise XmpError(
            f"{path}: exiv2 could not merge the keywords ({exc}); left as it was"
        ) from exc
    finally:
        img.close()
