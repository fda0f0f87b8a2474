"""Generate config/concepts.json: everyday words that name no ImageNet class, and the classes
they mean, from WordNet 3.0 and config/imagenet_classes.json.

    python tools/gen_concepts.py [--wordnet /usr/share/wordnet] [--check] [--show WORD...]

People search in their words ("beach", "puppy"), not ImageNet's ("seashore", "Pembroke").
The installed app has no WordNet, so this map is made once here and shipped. A word gets an
entry when it is a common noun (tagged in WordNet's SemCor counts) for a physical thing, is
no class name, synonym, category or ancestor already (those match directly), and WordNet
relates it to some classes. Evidence, scored per class:

- kind of: its first sense is a kind of a class or category within two hypernym steps
  ("puppy" is a young dog: every dog); its siblings among few classes ("beach", a geological
  formation, beside sandbar);
- part, member or substance of (or having as one) a synset above classes ("beach" is part of
  a shore: seashore, lakeside); class definitions naming those ("sand": sandbar);
- its definition names a class or a specific kind ("kitten": young domestic cat);
- class definitions or names that use the word ("baby": crib, cradle, bassinet).

Classes scoring at least 60 % of the best are kept, best first; a set that is a whole
category is stored as the category's id, one of 5 or more classes that is all classes below
a WordNet ancestor as its wnid. `forms` maps WordNet's irregular plurals of known
words to them ("mice" -> "mouse"). `--check` exits 1 when the committed file differs from a
fresh generation; `--show` prints what words map to and why.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config"
CLASSES = CONFIG / "imagenet_classes.json"
OUT = CONFIG / "concepts.json"
WORDNET = Path("/usr/share/wordnet")

PHYSICAL_ENTITY = "00001930"
KEEP = 0.6  # of the best class's score
MANY = 5  # classes below an ancestor worth naming it for ("every domestic cat")
# Kind-of through these categories says little: ImageNet's three people are roles
# (ballplayer, groom, scuba diver), not "a cousin" or "a performer".
NO_KIND_OF = {"person"}
_WORD = re.compile(r"[a-z][a-z'-]*")


@dataclass(frozen=True)
class Synset:
    """One noun synset: its lemmas, noun pointers (symbol, offset) and gloss."""

    lemmas: tuple[str, ...]
    pointers: tuple[tuple[str, str], ...]
    gloss: str

    def hypernyms(self) -> list[str]:
        """Offsets of its hypernyms (classes and instances)."""
        return [t for s, t in self.pointers if s in ("@", "@i")]


def read_nouns(folder: Path) -> dict[str, Synset]:
    """Every noun synset of data.noun with its noun-to-noun pointers."""
    nouns: dict[str, Synset] = {}
    with (folder / "data.noun").open(encoding="utf-8") as f:
        for line in f:
            if line.startswith("  "):  # the licence header
                continue
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            count = int(fields[3], 16)
            lemmas = tuple(fields[4 + 2 * i] for i in range(count))
            i = 4 + 2 * count
            pointers = []
            for k in range(int(fields[i])):
                symbol, target, pos, _st = fields[i + 1 + 4 * k : i + 5 + 4 * k]
                if pos == "n":
                    pointers.append((symbol, target))
            text = gloss.strip().split('"', maxsplit=1)[0]  # no quoted examples
            nouns[fields[0]] = Synset(lemmas, tuple(pointers), text.lower())
    return nouns


def read_index(folder: Path) -> dict[str, tuple[list[str], int]]:
    """Each noun lemma's senses (offsets, most frequent first) and its tagged-sense count."""
    index: dict[str, tuple[list[str], int]] = {}
    with (folder / "index.noun").open(encoding="utf-8") as f:
        for line in f:
            if line.startswith(" "):
                continue
            fields = line.split()
            pointers = int(fields[3])
            tagged = int(fields[5 + pointers])
            index[fields[0]] = (fields[6 + pointers :], tagged)
    return index


def read_plurals(folder: Path) -> dict[str, str]:
    """WordNet's irregular noun forms: "mice" -> "mouse"."""
    forms: dict[str, str] = {}
    for line in (folder / "noun.exc").read_text("utf-8").splitlines():
        fields = line.split()
        if len(fields) >= 2:
            forms.setdefault(fields[0].replace("_", " "), fields[1].replace("_", " "))
    return forms


def phrase(lemma: str) -> str:
    """A lemma as people type it: "sand_bar" -> "sand bar", "bass_(fish)" -> "bass"."""
    return lemma.split("(", maxsplit=1)[0].replace("_", " ").strip().lower()


class Concepts:
    """WordNet and the class knowledge, ready to relate words to classes."""

    def __init__(self, wordnet: Path, classes: Any) -> None:
        self.nouns = read_nouns(wordnet)
        self.index = read_index(wordnet)
        self.plurals = read_plurals(wordnet)
        rows: list[dict[str, Any]] = classes["classes"]
        cats: list[dict[str, Any]] = classes["categories"]
        self.class_of = {str(c["wnid"])[1:]: int(c["index"]) for c in rows}
        self.category_of = {str(s)[1:]: str(c["id"]) for c in cats for s in c["synsets"]}
        self.category_sets = {
            str(c["id"]): frozenset(int(r["index"]) for r in rows if c["id"] in r["categories"])
            for c in cats
        }
        self.below: dict[str, set[int]] = collections.defaultdict(set)
        for offset, i in self.class_of.items():
            for above in self.up(offset):
                self.below[above].add(i)
        self.known: set[str] = set()  # words that match classes directly
        for r in rows:
            self.known.update(str(w).lower() for w in (r["name"], *r["synonyms"]))
            for a in r["ancestors"]:
                self.known.update(phrase(lemma) for lemma in self.nouns[str(a)[1:]].lemmas)
        for c in cats:
            self.known.update((str(c["name"]), str(c["plural"]).lower()))
        self.definitions = {int(r["index"]): str(r["definition"]).lower() for r in rows}
        self.name_words = {
            int(r["index"]): {
                t
                for n in (r["name"], *r["synonyms"])
                for t in _WORD.findall(str(n).lower().replace("-", " "))
            }
            for r in rows
        }
        self.gloss_terms = self._gloss_terms(rows)

    @functools.cache  # noqa: B019 (one instance per run)
    def up(self, offset: str) -> frozenset[str]:
        """The synset and all its hypernym ancestors."""
        found = {offset}
        for h in self.nouns[offset].hypernyms():
            found |= self.up(h)
        return frozenset(found)

    @functools.cache  # noqa: B019
    def depth(self, offset: str) -> int:
        """Hypernym steps to the root, the shortest way."""
        parents = self.nouns[offset].hypernyms()
        return 1 + min(self.depth(h) for h in parents) if parents else 0

    def _gloss_terms(self, rows: list[dict[str, Any]]) -> dict[str, frozenset[int]]:
        """Phrases a definition may name: class names and specific kinds (not "plant")."""
        terms: dict[str, set[int]] = collections.defaultdict(set)
        for r in rows:
            for w in (r["name"], *r["synonyms"]):
                terms[str(w).lower()].add(int(r["index"]))
        for offset, classes in self.below.items():
            if offset not in self.class_of and self.depth(offset) >= 7 and len(classes) <= 30:
                for lemma in self.nouns[offset].lemmas:
                    terms[phrase(lemma)] |= classes
        return {t: frozenset(s) for t, s in terms.items()}

    def mentioning(self, word: str) -> set[int]:
        """Classes whose definition uses the word (or its plural)."""
        pattern = re.compile(r"\b" + re.escape(word) + r"(?:s|es)?\b")
        return {i for i, text in self.definitions.items() if pattern.search(text)}

    def named(self, text: str) -> list[str]:
        """Gloss terms in a text, longest first, left to right."""
        tokens, found, i = _WORD.findall(text), [], 0
        while i < len(tokens):
            for n in range(4, 0, -1):
                candidate = " ".join(tokens[i : i + n])
                if candidate in self.gloss_terms:
                    found.append(candidate)
                    i += n
                    break
            else:
                i += 1
        return found

    def scores(self, word: str) -> collections.Counter[int]:
        """Each related class's evidence score (see the module docstring)."""
        score: collections.Counter[int] = collections.Counter()

        def add(classes: set[int] | frozenset[int], points: float) -> None:
            for i in classes:
                score[i] += points

        senses, tagged = self.index[word.replace(" ", "_")]
        for rank, offset in enumerate(senses[: max(2, tagged)][:3]):
            synset = self.nouns[offset]
            if rank == 0:
                for parent in synset.hypernyms():
                    for above in (parent, *self.nouns[parent].hypernyms()):
                        kind = self.class_of.get(above) is not None or above in self.category_of
                        if kind and self.category_of.get(above) not in NO_KIND_OF:
                            add(self.below[above], 4)
                    if 1 <= len(self.below[parent]) <= 12:
                        add(self.below[parent], 1)  # siblings
            for symbol, target in synset.pointers:
                if symbol[0] in "#%":  # holonyms and meronyms: part, member, substance
                    if 0 < len(self.below[target]) <= 40:
                        add(self.below[target], 3)
                    for lemma in {phrase(x) for x in self.nouns[target].lemmas}:
                        if len(lemma) > 2:
                            add(self.mentioning(lemma), 1)
            for term in self.named(synset.gloss):
                add(self.gloss_terms[term], 2 if rank == 0 else 1)
        mentioned = self.mentioning(word)
        add(mentioned, 2 if len(mentioned) <= 6 else 1)
        add({i for i, words in self.name_words.items() if word in words}, 2)
        return score

    def classes_for(self, word: str) -> list[int]:
        """The classes a word means, best first (empty when WordNet relates it to none)."""
        score = self.scores(word)
        if not score:
            return []
        floor = max(2.0, KEEP * max(score.values()))
        return sorted((i for i, s in score.items() if s >= floor), key=lambda i: (-score[i], i))

    def vocabulary(self) -> list[str]:
        """Common nouns for physical things that match no class directly."""
        out = []
        for lemma, (senses, tagged) in self.index.items():
            word = lemma.replace("_", " ")
            if tagged <= 0 or word in self.known or not word.replace(" ", "").isalpha():
                continue
            first = self.nouns[senses[0]]
            if PHYSICAL_ENTITY not in self.up(senses[0]) or any(
                s == "@i" for s, _ in first.pointers
            ):
                continue  # abstract, or a proper name (an instance)
            out.append(word)
        return sorted(out)


def generate(wordnet: Path) -> dict[str, object]:
    """The whole data file as a JSON-ready dict."""
    classes = json.loads(CLASSES.read_text("utf-8"))
    concepts = Concepts(wordnet, classes)
    # A set that is everything below one WordNet ancestor is stored as its wnid, a whole
    # category as the category's id: "puppy": "n02084071" (every dog).
    by_set: dict[frozenset[int], str] = {
        frozenset(concepts.below[a[1:]]): a
        for a in sorted(classes["ancestors"])
        if len(concepts.below[a[1:]]) >= MANY
    }
    by_set.update({s: cid for cid, s in concepts.category_sets.items()})
    words: dict[str, list[int] | str] = {}
    for word in concepts.vocabulary():
        found = concepts.classes_for(word)
        if found:
            words[word] = by_set.get(frozenset(found), found)
    known = concepts.known | set(words)
    forms = {
        plural: base
        for plural, base in sorted(concepts.plurals.items())
        if base in known and plural not in known and plural != base
    }
    return {
        "source": "WordNet 3.0 (Princeton University), Debian wordnet-base; see WORDNET_LICENSE",
        "generator": "tools/gen_concepts.py",
        "words": words,
        "forms": forms,
    }


def dumps(data: dict[str, object]) -> str:
    """The stored form: one word per line, so diffs stay readable."""

    def block(key: str) -> str:
        items: Any = data[key]
        rows = ",\n  ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in items.items())
        return f' "{key}": {{\n  {rows}\n }}'

    head = ",\n".join(f" {json.dumps(k)}: {json.dumps(data[k])}" for k in ("source", "generator"))
    return "{\n" + head + ",\n" + block("words") + ",\n" + block("forms") + "\n}\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or check) the data file, or show words."""
    p = argparse.ArgumentParser(prog="gen_concepts.py", description=__doc__.split("\n")[0])
    p.add_argument("--wordnet", type=Path, default=WORDNET, help="folder holding data.noun")
    p.add_argument("--check", action="store_true", help="compare with the committed file")
    p.add_argument("--show", nargs="+", metavar="WORD", help="print scores for these words")
    args = p.parse_args(argv)
    if not (args.wordnet / "data.noun").is_file():
        print(f"no WordNet at {args.wordnet} (apt-get install wordnet-base)", file=sys.stderr)
        return 2
    if args.show:
        concepts = Concepts(args.wordnet, json.loads(CLASSES.read_text("utf-8")))
        names = [c["name"] for c in json.loads(CLASSES.read_text("utf-8"))["classes"]]
        for word in args.show:
            if word not in concepts.index and word.replace(" ", "_") not in concepts.index:
                print(f"{word}: not a WordNet noun")
                continue
            score = concepts.scores(word)
            kept = concepts.classes_for(word)
            print(f"{word}: " + ", ".join(f"{names[i]} {score[i]:g}" for i in kept[:12]))
        return 0
    text = dumps(generate(args.wordnet))
    if args.check:
        same = OUT.is_file() and OUT.read_text("utf-8") == text
        print("up to date" if same else f"{OUT} differs from a fresh generation")
        return 0 if same else 1
    OUT.write_text(text, "utf-8")
    print(f"wrote {OUT} ({len(text) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
