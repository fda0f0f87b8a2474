"""What the 1000 ImageNet classes are: friendly names, synonyms, definitions, WordNet ancestors
and the categories people tag with (data: config/imagenet_classes.json, from WordNet 3.0)."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

DATA_FILE = "imagenet_classes.json"


@dataclass(frozen=True)
class Category:
    """A category people tag with, e.g. id "dog", plural "Dogs", parent "mammal"."""

    id: str
    name: str
    plural: str
    parent: str | None


@dataclass(frozen=True)
class ClassInfo:
    """One ImageNet class."""

    index: int
    wnid: str
    name: str  # friendly: "golden retriever", "crane (wading bird)"
    synonyms: tuple[str, ...]  # every lemma of its WordNet synset
    definition: str
    ancestors: tuple[str, ...]  # names of its WordNet hypernyms, nearest first
    categories: tuple[str, ...]  # category ids, most general first

    @property
    def category(self) -> str | None:
        """The most specific category ("dog" rather than "animal"), if any."""
        return self.categories[-1] if self.categories else None


@dataclass(frozen=True)
class _Knowledge:
    classes: tuple[ClassInfo, ...]
    categories: dict[str, Category]
    terms: dict[str, frozenset[int]]  # normalised word or phrase -> class indices
    names: frozenset[str]  # the terms that name a class or category (not only an ancestor)
    ancestors: dict[str, tuple[str, ...]]  # wnid -> its lemmas, for every ancestor synset
    below: dict[str, frozenset[int]]  # wnid -> the classes it is an ancestor of


@cache
def _knowledge() -> _Knowledge:
    raw: dict[str, Any] = json.loads(
        resources.files("dropsight.config").joinpath(DATA_FILE).read_text("utf-8")
    )
    lemmas: dict[str, list[str]] = raw["ancestors"]
    categories = {
        c["id"]: Category(c["id"], c["name"], c["plural"], c["parent"]) for c in raw["categories"]
    }
    classes = tuple(
        ClassInfo(
            index=c["index"],
            wnid=c["wnid"],
            name=c["name"],
            synonyms=tuple(c["synonyms"]),
            definition=c["definition"],
            ancestors=tuple(lemmas[a][0] for a in c["ancestors"]),
            categories=tuple(c["categories"]),
        )
        for c in raw["classes"]
    )
    terms: dict[str, set[int]] = defaultdict(set)
    names: set[str] = set()
    below: dict[str, set[int]] = defaultdict(set)
    for c, entry in zip(classes, raw["classes"], strict=True):
        own = [c.name, *c.synonyms]
        for cid in c.categories:
            own += [categories[cid].name, categories[cid].plural]
        names.update(normalise(w) for w in own)
        for w in [*own, *(w for a in entry["ancestors"] for w in lemmas[a])]:
            terms[normalise(w)].add(c.index)
        for a in entry["ancestors"]:
            below[a].add(c.index)
    return _Knowledge(
        classes,
        categories,
        {t: frozenset(s) for t, s in terms.items()},
        frozenset(names),
        {a: tuple(w) for a, w in lemmas.items()},
        {a: frozenset(s) for a, s in below.items()},
    )


def classes() -> tuple[ClassInfo, ...]:
    """All 1000 classes, by class index."""
    return _knowledge().classes


def info(class_index: int) -> ClassInfo:
    """One class by its index (0-999)."""
    return _knowledge().classes[class_index]


def categories() -> Mapping[str, Category]:
    """Every category by id, in display order."""
    return _knowledge().categories


def category_path(category_id: str) -> list[str]:
    """A category and its parents, most general first: ["animal", "mammal", "dog"]."""
    cats = _knowledge().categories
    path: list[str] = []
    current: str | None = category_id
    while current is not None and current not in path:
        path.insert(0, current)
        current = cats[current].parent
    return path


def categories_of(predictions: Iterable[Mapping[str, Any]], min_score: float) -> list[str]:
    """Categories of the predictions scoring at least `min_score`, in display order."""
    found: set[str] = set()
    for p in predictions:
        if float(p["score"]) >= min_score:
            found.update(info(int(p["class_index"])).categories)
    return [cid for cid in _knowledge().categories if cid in found]


_SPACES = re.compile(r"[\s_]+")


def normalise(text: str) -> str:
    """Lower case, single spaces, no underscores: how names and query words are compared."""
    return _SPACES.sub(" ", text.strip().lower())


def _singulars(word: str) -> list[str]:
    forms = [word]
    if word.endswith("ies") and len(word) > 4:
        forms.append(word[:-3] + "y")  # butterflies
    if word.endswith("es") and len(word) > 3:
        forms.append(word[:-2])  # boxes, foxes
    if word.endswith("s") and not word.endswith("ss") and len(word) > 2:
        forms.append(word[:-1])  # dogs
    return forms


def singular_forms(word: str) -> list[str]:
    """The word (normalised) and the singulars it may be a plural of ("dogs": dogs, dog)."""
    return _singulars(normalise(word))


def names_a_class(word: str) -> bool:
    """Whether the word (or its singular) is a class name, synonym or category."""
    return any(form in _knowledge().names for form in _singulars(normalise(word)))


def vocabulary() -> Iterable[str]:
    """Every word and phrase that matches classes directly."""
    return _knowledge().terms.keys()


def ancestor(wnid: str) -> tuple[str, frozenset[int]]:
    """A WordNet ancestor's first lemma and the classes below it ("dog", {151, ...})."""
    k = _knowledge()
    return k.ancestors[wnid][0], k.below.get(wnid, frozenset())


def classes_matching(word: str) -> frozenset[int]:
    """Classes whose name, synonym, category or WordNet ancestor is `word` (or its plural).

    A phrase matches whole ("golden retriever"); "dog" finds every breed but not "hot dog".
    """
    terms = _knowledge().terms
    found: set[int] = set()
    for form in _singulars(normalise(word)):
        found |= terms.get(form, frozenset())
    return frozenset(found)
