"""Keywords in XMP sidecars that photo managers read (digiKam, darktable, Lightroom, Immich).

A photo's keywords (outputs/xmp/keywords.py) are written as `dc:subject` (flat),
`lr:hierarchicalSubject` ("Dropsight|animal|mammal|dog|golden retriever") and
`digiKam:TagsList` (the same with "/"). An existing XMP file is merged, never replaced:
everything in it that is not ours stays, the user's keywords are mirrored so each app still
shows them next to ours (outputs/xmp/merge.py), and the file is only rewritten when that is
safe (outputs/xmp/existing.py). The photo itself is never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pyexiv2

from dropsight.config.settings import XmpName
from dropsight.daemon import __version__
from dropsight.daemon.contracts import SidecarRecord
from dropsight.daemon.outputs.xmp import existing, merge
from dropsight.daemon.outputs.xmp.existing import XmpError
from dropsight.daemon.outputs.xmp.keywords import ROOT_TAG, Keywords, keywords, union
from dropsight.daemon.outputs.xmp.merge import (
    ADDED,
    HIERARCHY,
    NAMESPACE,
    PREFIX,
    SUBJECT,
    TAGS_LIST,
)

__all__ = [
    "ADDED",
    "HIERARCHY",
    "ROOT_TAG",
    "SUBJECT",
    "TAGS_LIST",
    "Keywords",
    "XmpError",
    "keywords",
    "read_keywords",
    "remove",
    "write",
    "xmp_path",
]

log = logging.getLogger(__name__)

MERGE_ATTEMPTS = 5  # another program rewrote the file while we merged: read it again
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


def xmp_path(photo: Path, name: XmpName = "IMG.jpg.xmp") -> Path:
    """`IMG.CR2` -> `IMG.CR2.xmp` (darktable, digiKam, Immich) or `IMG.xmp` (Adobe)."""
    return (
        photo.with_name(photo.name + ".xmp") if name == "IMG.jpg.xmp" else photo.with_suffix(".xmp")
    )


def write(
    photo: Path,
    record: SidecarRecord,
    min_score: float,
    name: XmpName,
    siblings: Sequence[SidecarRecord] = (),
) -> Outcome:
    """Put the record's keywords (and its `siblings`', photos sharing the XMP file) into
    the photo's XMP sidecar, replacing only ours.

    A record with no confident labels (or an error record) takes ours out and creates no file.
    Raises XmpError for an existing file that is left alone, OSError when it cannot be written.
    """
    kw = union(keywords(r, min_score) for r in (record, *siblings))
    stamp = {
        merge.STAMPS[0]: record["model"]["name"],
        merge.STAMPS[1]: record["processed_at"],
        merge.STAMPS[2]: __version__,
    }
    return _update(xmp_path(photo, name), kw if kw.flat else None, stamp)


def remove(photo: Path, name: XmpName) -> Outcome:
    """Take our keywords out of the photo's XMP sidecar (deleting a file we created)."""
    return _update(xmp_path(photo, name), None, {})


def read_keywords(path: Path) -> dict[str, list[str]]:
    """The keyword properties of an XMP file (for tests and `dropsight xmp` output)."""
    data = _read(existing.read(path).data or EMPTY_PACKET, path)
    return {key: merge.as_list(data.get(key)) for key in (SUBJECT, HIERARCHY, TAGS_LIST, ADDED)}


def _update(path: Path, kw: Keywords | None, stamp: Mapping[str, str]) -> Outcome:
    for _attempt in range(MERGE_ATTEMPTS):
        try:
            return _update_once(path, kw, stamp)
        except existing.Changed:
            continue  # a photo tool saved it meanwhile: merge with what it wrote
    raise OSError(f"{path} kept changing while Dropsight merged its keywords; try again")


def _update_once(path: Path, kw: Keywords | None, stamp: Mapping[str, str]) -> Outcome:
    before = existing.read(path)
    if before.empty and kw is None:
        return "absent" if before.data is None else "unchanged"
    raw = EMPTY_PACKET if before.empty else before.data or EMPTY_PACKET
    data = _read(raw, path)
    existing.check_complete(path, raw, data)
    plan = merge.planned(data, kw, stamp, created=before.empty)
    now = merge.current(data)
    if not before.empty and plan == now:
        return "unchanged"  # leave the file (and its time) alone
    existing.check_writable(path, before)
    others = [k for k in data if k.split("[", 1)[0].split("/", 1)[0] not in now]
    if kw is None and not others and not any(plan.values()):
        if data.get(merge.CREATED, "True") == "True":
            existing.unlink(path, before)  # only ours was in it, and we made it
            return "removed"
        existing.replace(path, EMPTY_PACKET, before)  # exiv2 cannot write an empty packet
        return "written"
    existing.replace(path, _apply(raw, plan, now, path), before)
    return "written"


def _apply(raw: bytes, plan: Mapping[str, Any], now: Mapping[str, Any], path: Path) -> bytes:
    """`raw` with the planned values of the keys that differ from `now`."""
    changed = [key for key in plan if plan[key] != now[key]]
    # pyexiv2 writes a list as rdf:Seq: a Bag is emptied, declared, then filled item by item.
    emptied = dict.fromkeys(changed)
    declared = {key: 'type="Bag"' for key in changed if key in merge.BAGS and plan[key]}
    filled: dict[str, Any] = {}
    for key in changed:
        value = plan[key]
        if value is None:
            continue
        if key in merge.BAGS:
            filled.update({f"{key}[{i}]": v for i, v in enumerate(value, start=1)})
        else:
            filled[key] = value
    return _modify(raw, (emptied, declared, filled), path)


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


def _modify(raw: bytes, passes: Sequence[Mapping[str, Any]], path: Path) -> bytes:
    try:
        img = pyexiv2.ImageData(raw)
    except RuntimeError as exc:
        raise XmpError(f"{path} is not a valid XMP file ({exc}); left as it was") from exc
    try:
        # exiv2 mirrors dc:subject, dc:title and the like into IPTC on reading and back on
        # writing, which would undo our changes; the XMP file itself holds no IPTC block.
        img.clear_iptc()
        for changes in passes:
            if changes:
                img.modify_xmp(dict(changes))
        out: bytes = img.get_bytes()
        return out
    except RuntimeError as exc:
        raise XmpError(
            f"{path}: exiv2 could not merge the keywords ({exc}); left as it was"
        ) from exc
    finally:
        img.close()
