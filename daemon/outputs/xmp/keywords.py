"""What a labelled photo is tagged with: friendly names, their categories, one path per chain."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dropsight.daemon.contracts import SidecarRecord
from dropsight.daemon.labels.classes import categories, category_path, info

ROOT_TAG = "Dropsight"  # the parent of every hierarchical keyword we write


@dataclass(frozen=True)
class Keywords:
    """What one photo (or the photos sharing one XMP file) is tagged with."""

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


NONE = Keywords((), ())


def keywords(record: SidecarRecord, min_score: float) -> Keywords:
    """The keywords of a record: confident labels by friendly name, and their categories.

    Categories form a graph (espresso is food and drink; a minivan is a car and a truck):
    a label gets one path per most specific category it has, so every parent lists it.
    """
    if record.get("status") != "ok":
        return NONE
    names: list[str] = []
    cats: set[str] = set()
    paths: list[tuple[str, ...]] = []
    for p in record.get("predictions", []):
        if float(p["score"]) < min_score:
            continue
        cls = info(int(p["class_index"]))
        names.append(cls.name)
        chains = [category_path(c) for c in _most_specific(cls.categories)]
        for chain in chains or [[]]:
            cats.update(chain)
            paths.append((*(categories()[c].name for c in chain), cls.name))
    cat_names = [categories()[c].name for c in categories() if c in cats]
    return Keywords(tuple(dict.fromkeys([*names, *cat_names])), tuple(dict.fromkeys(paths)))


def union(each: Iterable[Keywords]) -> Keywords:
    """The keywords of several photos at once (photos sharing one `IMG.xmp`), in order."""
    flat: list[str] = []
    paths: list[tuple[str, ...]] = []
    for kw in each:
        flat += kw.flat
        paths += kw.paths
    return Keywords(tuple(dict.fromkeys(flat)), tuple(dict.fromkeys(paths)))


def _most_specific(ids: Iterable[str]) -> list[str]:
    """The categories no other one of `ids` is a child of: where each chain ends."""
    ids = list(ids)
    parents = {p for c in ids for p in category_path(c)[:-1]}
    return [c for c in ids if c not in parents]
