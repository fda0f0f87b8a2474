"""How digiKam 7.9 and darktable 4.2 read keywords from an XMP sidecar, and how darktable
rewrites one: the tests' stand-ins for the apps, on the dict pyexiv2 reads.

Sources (read for these readers; the research notes of issue 19 hold the excerpts):
- digiKam 7.9: core/libs/metadataengine/dmetadata/dmetadata_tags.cpp,
  DMetadata::getItemTagsPath (the first non-empty namespace wins unless "Read all metadata
  for tags" is on; separators other than "/" are converted) and
  dmetadatasettingscontainer.cpp, DMetadataSettingsContainer::defaultTagValues (the order).
  The 2022 version (SPDX 2006-2022), whose symbols (readingAllTags) are in Debian's 7.9.0
  libdigikamcore.so.
- darktable 4.2.1 (Debian's 4.2.1-4 source): src/common/exif.cc, _exif_decode_xmp_data
  (lr:hierarchicalSubject when it has an item, else dc:subject), _exif_import_tags (each item
  split on ","), dt_exif_xmp_write and dt_remove_known_keys (the rewrite on import), and
  src/common/tags.c, dt_tag_get_list (every "|" part of every tag, sorted and unique, into
  dc:subject) and dt_tag_get_hierarchical (the tags as attached, into hierarchicalSubject).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyexiv2

XmpDict = Mapping[str, Any]


def read_xmp(path: Path) -> dict[str, Any]:
    """Every property of an XMP file as exiv2 (which both apps use) reads it."""
    img = pyexiv2.ImageData(path.read_bytes())
    try:
        data: dict[str, Any] = img.read_xmp()
        return data
    finally:
        img.close()


def _items(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value]


# DMetadataSettingsContainer::defaultTagValues(): (key, separator, alternative key), in read
# priority. Iptc.Application2.Keywords and Exif.Image.XPKeywords follow; never in a sidecar.
DIGIKAM_TAG_NAMESPACES: tuple[tuple[str, str, str | None], ...] = (
    ("Xmp.digiKam.TagsList", "/", None),
    ("Xmp.MicrosoftPhoto.LastKeywordXMP", "/", None),
    ("Xmp.lr.hierarchicalSubject", "|", "Xmp.lr.HierarchicalSubject"),
    ("Xmp.mediapro.CatalogSets", "|", None),
    ("Xmp.acdsee.categories", "/", None),
    ("Xmp.dc.subject", "/", None),
)


def _acdsee_paths(value: Any) -> list[str]:
    """DMetadata::getACDSeeTagsPath, step for step (its quirks included)."""
    xml = value if isinstance(value, str) else ""
    if "<Categories>" not in xml:
        return []
    xml = xml.replace("</Categories>", "").replace("<Categories>", "").replace("/", "\\")
    paths: list[str] = []
    category = 0
    for tags in xml.split("<Category Assigned"):
        if not tags:
            continue
        count = tags.count("<\\Category>")
        length = len(tags) - 11 * count - 5
        name = tags[5 : 5 + max(length, 0)]
        if category == 0 or not paths:
            paths.append(name)
        else:
            paths[-1] += "/" + name
        category = category - count + 1
        if tags[:5] == '="1">' and category > 0:
            paths.append("/".join(paths[-1].split("/")[:category]))
    return paths


def digikam_tags(xmp: XmpDict, read_all: bool = False) -> set[str]:
    """Tag paths digiKam 7.9 assigns from this XMP (default: the first non-empty wins).

    With "Read all metadata for tags" (readingAllTags, off by default) all are united. For
    separators other than "/", a "/" inside a keyword becomes "\\", then the separator "/".
    """
    found: list[str] = []
    for key, sep, alternative in DIGIKAM_TAG_NAMESPACES:
        for name in (key, alternative):
            if name is None:
                break
            if name == "Xmp.acdsee.categories":
                paths = _acdsee_paths(xmp.get(name))
            else:
                paths = _items(xmp.get(name))
            if paths:
                if sep != "/":
                    paths = [p.replace("/", "\\").replace(sep, "/") for p in paths]
                found += paths
                if not read_all:
                    return set(found)
    return set(found)


def darktable_tags(xmp: XmpDict) -> set[str]:
    """Tag names darktable 4.2 attaches when it reads IMG.ext.xmp (import, or "look for
    updated XMP files"): hierarchicalSubject if it has an item, else dc:subject, each item
    split on ","; "|" nests ("Places|France|Paris"), a flat name is a top-level tag."""
    hierarchy = _items(xmp.get("Xmp.lr.hierarchicalSubject"))
    items = hierarchy if any(hierarchy) else _items(xmp.get("Xmp.dc.subject"))
    return {piece for item in items for piece in item.split(",")}


def darktable_rewrite(path: Path, extension: str = "jpg", initial_rating: int = 1) -> None:
    """Rewrite `path` the way darktable 4.2 does right after importing its photo.

    dt_exif_xmp_write: the keys darktable knows are erased and written from its database:
    dc:subject = every "|" part of every attached tag (sorted, unique), hierarchicalSubject
    = the attached tags (those read, plus "darktable|format|<ext>" added on import), rating
    = the file's or ui_last/import_initial_rating (1). Other keys (digiKam:TagsList,
    dropsight:*) stay. Written in place, as darktable's g_fopen("wb") does.
    """
    xmp = read_xmp(path)
    tags = sorted(darktable_tags(xmp) | {f"darktable|format|{extension}"})
    flat = sorted({part for tag in tags for part in tag.split("|")})
    changes: dict[str, Any] = {"Xmp.dc.subject": None, "Xmp.lr.hierarchicalSubject": None}
    bags: dict[str, Any] = {
        "Xmp.dc.subject": 'type="Bag"',
        "Xmp.lr.hierarchicalSubject": 'type="Bag"',
    }
    items: dict[str, Any] = {f"Xmp.dc.subject[{i}]": v for i, v in enumerate(flat, start=1)}
    items |= {f"Xmp.lr.hierarchicalSubject[{i}]": v for i, v in enumerate(tags, start=1)}
    if "Xmp.xmp.Rating" not in xmp:
        items["Xmp.xmp.Rating"] = str(initial_rating)
    img = pyexiv2.ImageData(path.read_bytes())
    try:
        img.clear_iptc()
        for step in (changes, bags, items):
            img.modify_xmp(step)
        data = img.get_bytes()
    finally:
        img.close()
    with path.open("r+b") as f:  # in place, keeping the inode, mode and owner
        f.truncate(0)
        f.write(data)


KEYWORD_KEYS = (
    "Xmp.dc.subject",
    "Xmp.lr.hierarchicalSubject",
    "Xmp.digiKam.TagsList",
)


def user_values(xmp: XmpDict) -> dict[str, Any]:
    """Everything but the keyword fields and Dropsight's namespace: ratings, labels, titles,
    history, ... (what must come through every merge unchanged)."""
    return {
        k: v
        for k, v in xmp.items()
        if not k.startswith("Xmp.dropsight.") and k.split("[")[0] not in KEYWORD_KEYS
    }
