"""What a search means: the words people type, as ImageNet classes, and what was searched.

Words that form a class name match it ("golden retriever", "hot dog" the food). A word that
names no class is looked up in the concept map made from WordNet (config/concepts.json, by
tools/gen_concepts.py): "beach" means seashore, lakeside, sandbar; "puppy" every dog. A word
WordNet knows nothing about gets near names (a typo) and an honest "no class covers this".
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from dropsight.daemon.labels import classes

DATA_FILE = "concepts.json"
LONGEST = 6  # words in the longest class name worth trying as a phrase
SHOWN = 3  # names an explanation lists before "and N more"


@dataclass(frozen=True)
class Term:
    """Some of the words typed, and the classes they stand for (best first)."""

    text: str
    ranked: tuple[int, ...]
    summary: str = ""  # what it searched, when the words name no class: "seashore, sandbar"
    suggestions: tuple[str, ...] = ()

    @property
    def classes(self) -> frozenset[int]:
        """The classes, as a set."""
        return frozenset(self.ranked)

    def explain(self) -> str | None:
        """What was searched for words that name no class: "beach: showing seashore, ..."."""
        return f"{self.text}: showing {self.summary}" if self.ranked and self.summary else None

    def why_none(self) -> str:
        """Why nothing can be found for words that mean no class."""
        text = f"no ImageNet class or category covers {self.text!r}"
        if self.suggestions:
            text += f" (did you mean {' or '.join(repr(s) for s in self.suggestions)}?)"
        return text


@dataclass(frozen=True)
class _Concepts:
    words: dict[str, list[int] | str]
    forms: dict[str, str]


@cache
def _concepts() -> _Concepts:
    raw: dict[str, Any] = json.loads(
        resources.files("dropsight.config").joinpath(DATA_FILE).read_text("utf-8")
    )
    return _Concepts(dict(raw["words"]), dict(raw["forms"]))


def parse(words: Sequence[str]) -> list[Term]:
    """The terms of a query, left to right, longest phrase first ("golden retriever")."""
    tokens = classes.normalise(" ".join(words)).split()
    terms: list[Term] = []
    i = 0
    while i < len(tokens):
        spans = range(min(LONGEST, len(tokens) - i), 0, -1)
        term = next(filter(None, (resolve(" ".join(tokens[i : i + n])) for n in spans)), None)
        if term is None:  # a typo, perhaps in a phrase: "goldn retriever"
            term = next(filter(None, (_misspelt(" ".join(tokens[i : i + n])) for n in spans)))
        terms.append(term)
        i += len(term.text.split())
    return terms


def _misspelt(text: str) -> Term | None:
    """A Term of no classes for words that match nothing, with near names if any (a word
    always gets one; a phrase only when it has near names)."""
    near = tuple(_near(text))
    return Term(text, (), suggestions=near) if near or " " not in text else None


def resolve(text: str) -> Term | None:
    """One word or phrase (normalised) as a Term, None when it means no class."""
    data = _concepts()
    for form in (text, data.forms.get(text)):  # "mice" is WordNet's plural of "mouse"
        if form is None:
            continue
        direct = classes.classes_matching(form)
        if direct:
            ranked = tuple(sorted(direct))
            # An ancestor says what it stands for: "mountain" is alp and volcano.
            return Term(text, ranked, "" if classes.names_a_class(form) else _names(ranked))
        for singular in classes.singular_forms(form):
            entry = data.words.get(singular)
            if entry is not None:
                return Term(text, *_meaning(entry))
    return None


def _meaning(entry: list[int] | str) -> tuple[tuple[int, ...], str]:
    """A concept map entry: classes (best first), a category id, or an ancestor's wnid."""
    if isinstance(entry, list):
        return tuple(entry), _names(entry)
    if entry in classes.categories():
        ranked = tuple(c.index for c in classes.classes() if entry in c.categories)
        return ranked, classes.categories()[entry].plural.lower()
    name, below = classes.ancestor(entry)
    return tuple(sorted(below)), f"every {name} ({len(below)} classes)"


def _names(ranked: Sequence[int]) -> str:
    shown = ", ".join(classes.info(i).name for i in ranked[:SHOWN])
    more = len(ranked) - SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def _near(text: str) -> list[str]:
    """Known words and phrases spelled like `text` (a typo's likely meaning)."""
    known = [*classes.vocabulary(), *_concepts().words]
    return difflib.get_close_matches(text, known, n=3, cutoff=0.8)
