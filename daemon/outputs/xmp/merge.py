"""Merging our keywords into an XMP file's so every photo manager sees the user's and ours.

digiKam shows only the first non-empty of `digiKam:TagsList`, `MicrosoftPhoto:LastKeywordXMP`,
`lr:hierarchicalSubject`, `mediapro:CatalogSets`, `acdsee:categories`, `dc:subject`;
darktable shows `lr:hierarchicalSubject` when it has any item, else `dc:subject` (see
tests/daemon/outputs/xmp/readers.py for the sources). Writing our paths into TagsList and
hierarchicalSubject would hide every keyword the user keeps elsewhere, so the user's
keywords are mirrored into the three fields we write: flat ones as top-level paths (unless
one of the user's paths names them already), paths in each field's own form, their last
part into dc:subject. What we added is recorded in our namespace with a digest of what the
rest of each field was, so taking ours out restores the user's values exactly; when another
tool has rewritten a field since (darktable flattens ours into dc:subject), the mirrored
keywords stay, being the only way that tool's field shows them now.
"""

from __future__ import annotations

import hashlib
import json
import xml.parsers.expat
from collections.abc import Mapping
from typing import Any

from dropsight.daemon.outputs.xmp.keywords import ROOT_TAG, Keywords

NAMESPACE = "https://dropsight.invalid/xmp/1.0/"
PREFIX = "dropsight"
SUBJECT = "Xmp.dc.subject"
HIERARCHY = "Xmp.lr.hierarchicalSubject"
TAGS_LIST = "Xmp.digiKam.TagsList"
FIELDS = (SUBJECT, HIERARCHY, TAGS_LIST)  # the keyword fields we write
# Paths digiKam reads before dc:subject that we do not write: mirrored into TagsList.
SLASH_PATHS = (TAGS_LIST, "Xmp.MicrosoftPhoto.LastKeywordXMP")
BAR_PATHS = (HIERARCHY, "Xmp.mediapro.CatalogSets")
ACDSEE = "Xmp.acdsee.categories"

ADDED = f"Xmp.{PREFIX}.subjects"  # our own keywords in dc:subject
MIRRORED = {
    SUBJECT: f"Xmp.{PREFIX}.mirroredSubjects",
    HIERARCHY: f"Xmp.{PREFIX}.mirroredHierarchy",
    TAGS_LIST: f"Xmp.{PREFIX}.mirroredTags",
}
BASE = {  # digest of each field's other items when we wrote it
    SUBJECT: f"Xmp.{PREFIX}.subjectsBase",
    HIERARCHY: f"Xmp.{PREFIX}.hierarchyBase",
    TAGS_LIST: f"Xmp.{PREFIX}.tagsBase",
}
CREATED = f"Xmp.{PREFIX}.created"  # "True": the file did not exist before us
STAMPS = (f"Xmp.{PREFIX}.model", f"Xmp.{PREFIX}.labelledAt", f"Xmp.{PREFIX}.version")
OURS = (ADDED, *MIRRORED.values(), *BASE.values(), CREATED, *STAMPS)
BAGS = (SUBJECT, HIERARCHY, ADDED, *MIRRORED.values())  # TagsList is digiKam's Seq
LISTS = (*FIELDS, ADDED, *MIRRORED.values())

Path_ = tuple[str, ...]


def as_list(value: Any) -> list[str]:
    """A property's items (exiv2 gives a lone string for a simple property)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value]


def is_recorded(data: Mapping[str, Any]) -> bool:
    """Whether Dropsight has written keywords into this file."""
    return any(key in data for key in OURS)


def users(data: Mapping[str, Any]) -> dict[str, list[str]]:
    """The keyword fields without what is ours: as they were before Dropsight wrote them."""
    recorded = is_recorded(data)
    ours_flat = set(as_list(data.get(ADDED)))
    out: dict[str, list[str]] = {}
    for key in FIELDS:
        items = as_list(data.get(key))
        if key == SUBJECT:  # darktable flattens our paths here, the root included
            items = [s for s in items if s not in ours_flat and not (recorded and s == ROOT_TAG)]
        else:
            sep = "|" if key == HIERARCHY else "/"
            items = [s for s in items if s != ROOT_TAG and not s.startswith(ROOT_TAG + sep)]
        mirrored = set(as_list(data.get(MIRRORED[key])))
        others = [s for s in items if s not in mirrored]
        if mirrored and digest(others) == data.get(BASE[key]):
            items = others  # nobody else touched the field: the mirrored copies go
        out[key] = items
    return out


def planned(
    data: Mapping[str, Any], kw: Keywords | None, stamp: Mapping[str, str], created: bool
) -> dict[str, Any]:
    """The values our keys and the keyword fields should have (None: absent)."""
    fields = users(data)
    plan: dict[str, Any] = dict.fromkeys(OURS)
    if kw is None or not kw.flat:
        return plan | {key: items or None for key, items in fields.items()}
    paths, flats = _user_keywords(data, fields)
    subject = fields[SUBJECT]
    mirrored = {
        SUBJECT: _new([p[-1] for p in paths], subject),
        HIERARCHY: _new(["|".join(p) for p in paths] + flats, fields[HIERARCHY]),
        TAGS_LIST: _new([_slashed(p) for p in paths] + flats, fields[TAGS_LIST]),
    }
    added = _new(list(kw.flat), subject + mirrored[SUBJECT])
    ours = {SUBJECT: added, HIERARCHY: kw.hierarchical, TAGS_LIST: kw.tags_list}
    for key, items in fields.items():
        plan[key] = items + mirrored[key] + ours[key]
        plan[MIRRORED[key]] = mirrored[key] or None
        plan[BASE[key]] = digest(items) if mirrored[key] else None
    plan[ADDED] = added or None
    plan[CREATED] = str(data.get(CREATED, created))
    return plan | dict(stamp)


def current(data: Mapping[str, Any]) -> dict[str, Any]:
    """The values of the keys `planned` decides, as the file has them now."""
    return {
        key: (as_list(data.get(key)) or None) if key in LISTS else data.get(key)
        for key in (*FIELDS, *OURS)
    }


def digest(items: list[str]) -> str:
    """A short, order-free fingerprint of a field's items."""
    text = json.dumps(sorted(set(items)), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _new(items: list[str], present: list[str]) -> list[str]:
    have = set(present)
    return [i for i in dict.fromkeys(items) if i not in have]


def _slashed(path: Path_) -> str:
    """digiKam's form of a path: "/" joins, a "/" inside a name becomes "\\" (as it reads)."""
    return "/".join(p.replace("/", "\\") for p in path)


def _user_keywords(
    data: Mapping[str, Any], fields: Mapping[str, list[str]]
) -> tuple[list[Path_], list[str]]:
    """The user's hierarchical paths (every field that holds some) and flat keywords that
    none of them names (Lightroom and darktable list each path's parts in dc:subject)."""
    paths: list[Path_] = []
    for key in SLASH_PATHS:
        items = fields[key] if key in fields else as_list(data.get(key))
        paths += [tuple(p.replace("\\", "/") for p in s.split("/")) for s in items]
    for key in BAR_PATHS:
        items = fields[key] if key in fields else as_list(data.get(key))
        paths += [tuple(s.split("|")) for s in items]
    paths += acdsee_paths(data.get(ACDSEE))
    paths = [p for p in dict.fromkeys(paths) if all(p)]
    named = {part for p in paths for part in p} | {"|".join(p) for p in paths}
    named |= {_slashed(p) for p in paths}
    flats = [s for s in dict.fromkeys(fields[SUBJECT]) if s not in named]
    return paths, flats


def acdsee_paths(value: Any) -> list[Path_]:
    """The assigned categories of ACDSee's XML-in-a-string (`<Category Assigned="1">`)."""
    if not isinstance(value, str) or "<Categories>" not in value:
        return []
    stack: list[tuple[list[str], bool]] = []  # (the name's text before any child, assigned)
    found: list[Path_] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        if name == "Category":
            stack.append(([], attrs.get("Assigned") == "1"))

    def text(chars: str) -> None:
        if stack:
            stack[-1][0].append(chars)

    def end(name: str) -> None:
        if name == "Category" and stack:
            if stack[-1][1]:
                found.append(tuple("".join(s[0]).strip() for s in stack))
            stack.pop()

    parser = xml.parsers.expat.ParserCreate()
    parser.StartElementHandler = start
    parser.CharacterDataHandler = text
    parser.EndElementHandler = end
    try:
        parser.Parse(value, True)
    except xml.parsers.expat.ExpatError:
        return []
    return found
