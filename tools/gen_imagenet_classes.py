"""Generate config/imagenet_classes.json from WordNet 3.0 and config/categories.toml.

    python tools/gen_imagenet_classes.py [--wordnet /usr/share/wordnet] [--check] [--report]

For each of the 1000 ImageNet classes (config/imagenet_class_index.json): its wnid, a
friendly name, its synonyms (every lemma of the synset), a one-line definition, its WordNet
hypernym ancestors (nearest first) and the curated categories it falls in. An ImageNet wnid's
digits are its WordNet 3.0 noun synset offset; `@` and `@i` pointers in data.noun are
hypernyms. WordNet comes from Debian's `wordnet-base` package; its licence travels with the
generated file (config/WORDNET_LICENSE). `--check` exits 1 when the committed file differs
from a fresh generation; `--report` lists the classes no category covers.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config"
OUT = CONFIG / "imagenet_classes.json"
WORDNET = Path("/usr/share/wordnet")


@dataclass(frozen=True)
class Synset:
    """One WordNet noun synset: its lemmas, hypernyms and gloss."""

    lemmas: tuple[str, ...]
    hypernyms: tuple[str, ...]  # offsets
    gloss: str


def read_nouns(folder: Path) -> dict[str, Synset]:
    """Every noun synset of data.noun by its 8-digit offset."""
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
            pointers = int(fields[i])
            hypernyms = []
            for k in range(pointers):
                symbol, target, pos = fields[i + 1 + 4 * k : i + 4 + 4 * k]
                if symbol in ("@", "@i") and pos == "n":
                    hypernyms.append(target)
            nouns[fields[0]] = Synset(lemmas, tuple(hypernyms), gloss.strip())
    return nouns


def words(lemma: str) -> str:
    """WordNet lemmas use underscores and keep their adjective markers: "bass_(fish)"."""
    return lemma.split("(", maxsplit=1)[0].replace("_", " ").strip()


def definition(gloss: str) -> str:
    """The gloss without its quoted examples: one line."""
    text = gloss.split('; "', maxsplit=1)[0].split(' "', maxsplit=1)[0].strip().rstrip(";").strip()
    return text[:1].upper() + text[1:]


def ancestors(offset: str, nouns: dict[str, Synset]) -> list[str]:
    """Every hypernym ancestor, nearest first (breadth first, each once)."""
    out: list[str] = []
    queue = collections.deque(nouns[offset].hypernyms)
    seen = set(queue)
    while queue:
        parent = queue.popleft()
        out.append(parent)
        for grand in nouns[parent].hypernyms:
            if grand not in seen:
                seen.add(grand)
                queue.append(grand)
    return out


def generate(wordnet: Path) -> dict[str, object]:
    """The whole data file as a JSON-ready dict."""
    nouns = read_nouns(wordnet)
    index: dict[str, list[str]] = json.loads((CONFIG / "imagenet_class_index.json").read_text())
    categories = tomllib.loads((CONFIG / "categories.toml").read_text("utf-8"))["category"]
    by_synset: dict[str, list[str]] = collections.defaultdict(list)
    for cid, cat in categories.items():
        for wnid in cat["synsets"]:
            if wnid[1:] not in nouns:
                raise SystemExit(f"categories.toml: [{cid}] names {wnid}, not a WordNet noun")
            by_synset[wnid[1:]].append(cid)
    labels = [index[str(i)][1] for i in range(len(index))]
    names = [label.replace("_", " ") for label in labels]
    twice = {n for n, c in collections.Counter(names).items() if c > 1}
    classes = []
    used: set[str] = set()  # ancestor synsets, listed once with their lemmas
    for i, (wnid, _label) in ((i, index[str(i)]) for i in range(len(index))):
        offset = wnid[1:]
        synset = nouns[offset]
        chain = ancestors(offset, nouns)
        name = names[i]
        if name in twice:  # "crane" the bird and "crane" the machine
            name = f"{name} ({words(nouns[chain[0]].lemmas[0])})"
        member = [c for c in categories if any(c in by_synset[s] for s in (offset, *chain))]
        member = [c for c in member if not set(categories[c].get("unless", ())) & set(member)]
        synonyms = list(dict.fromkeys(words(lemma) for lemma in synset.lemmas))
        classes.append(
            {
                "index": i,
                "wnid": wnid,
                "name": name,
                "synonyms": synonyms,
                "definition": definition(synset.gloss),
                "ancestors": [f"n{a}" for a in chain],
                "categories": member,
            }
        )
        used.update(chain)
    return {
        "source": "WordNet 3.0 (Princeton University), Debian wordnet-base; see WORDNET_LICENSE",
        "generator": "tools/gen_imagenet_classes.py",
        "categories": [
            {
                "id": cid,
                "name": cid.replace("_", " "),
                "plural": cat["plural"],
                "parent": cat.get("parent"),
                "synsets": cat["synsets"],
            }
            for cid, cat in categories.items()
        ],
        "ancestors": {
            f"n{a}": list(dict.fromkeys(words(lemma) for lemma in nouns[a].lemmas))
            for a in sorted(used)
        },
        "classes": classes,
    }


def dumps(data: dict[str, object]) -> str:
    """The stored form: one class per line, so diffs stay readable."""
    head = {k: v for k, v in data.items() if k not in ("classes", "ancestors")}
    lines = json.dumps(head, indent=1, ensure_ascii=False)[:-2]
    ancestors = ",\n  ".join(
        f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}"
        for k, v in data["ancestors"].items()  # type: ignore[attr-defined]
    )
    rows = ",\n  ".join(json.dumps(c, ensure_ascii=False) for c in data["classes"])  # type: ignore[attr-defined]
    return f'{lines},\n "ancestors": {{\n  {ancestors}\n }},\n "classes": [\n  {rows}\n ]\n}}\n'


def main(argv: list[str] | None = None) -> int:
    """Write (or check) the data file."""
    p = argparse.ArgumentParser(prog="gen_imagenet_classes.py", description=__doc__.split("\n")[0])
    p.add_argument("--wordnet", type=Path, default=WORDNET, help="folder holding data.noun")
    p.add_argument("--check", action="store_true", help="compare with the committed file")
    p.add_argument("--report", action="store_true", help="list classes in no category")
    args = p.parse_args(argv)
    if not (args.wordnet / "data.noun").is_file():
        print(f"no WordNet at {args.wordnet} (apt-get install wordnet-base)", file=sys.stderr)
        return 2
    data = generate(args.wordnet)
    text = dumps(data)
    if args.report:
        counts = collections.Counter(c for cls in data["classes"] for c in cls["categories"])  # type: ignore[attr-defined]
        for cid, n in counts.most_common():
            print(f"{n:4d} {cid}")
        none = [c for c in data["classes"] if not c["categories"]]  # type: ignore[attr-defined]
        print(f"{len(none)} classes in no category:")
        for c in none:
            chain = [data["ancestors"][a][0] for a in c["ancestors"][:4]]  # type: ignore[index]
            print(f"  {c['index']:3d} {c['name']}: {' < '.join(chain)}")
    if args.check:
        same = OUT.is_file() and OUT.read_text("utf-8") == text
        print("up to date" if same else f"{OUT} differs from a fresh generation")
        return 0 if same else 1
    if not args.report:
        OUT.write_text(text, "utf-8")
        print(f"wrote {OUT} ({len(data['classes'])} classes)")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
