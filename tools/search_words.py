"""Print README's table of everyday words and what `dropsight search` finds for each.

    .venv/bin/python tools/search_words.py [WORD...]

Each word goes through the same parser as the command (daemon/labels/query.py): a class
name or category as it is, an ancestor or a WordNet concept as the classes it stands for,
or nothing, said so. tests/test_readme.py checks README's table is this output.
"""

from __future__ import annotations

import sys

from dropsight.daemon.labels import classes, query

# The words: places, nature, things, animals, people and food people photograph.
_WORDS = (
    "beach mountain sea lake river sunset sky snow forest tree flower garden city street house "
    "bridge car bike boat christmas dog puppy cat kitten bird baby food cake coffee wedding"
)
WORDS = _WORDS.split()


def row(word: str) -> str:
    """One table row: the word, what it searches, how many classes."""
    (term,) = query.parse([word])
    if not term.ranked:
        return f"| {word} | no class covers this | 0 |"
    if term.summary:
        found = term.summary
    elif classes.names_a_class(word) and word in classes.categories():
        found = f"the {classes.categories()[word].plural.lower()} category"
    else:
        found = ", ".join(classes.info(i).name for i in term.ranked[:3])
        found += f" and {len(term.ranked) - 3} more" if len(term.ranked) > 3 else ""
    return f"| {word} | {found} | {len(term.ranked)} |"


def table(words: list[str]) -> str:
    """The whole table, a header and one row per word."""
    head = "| word | `dropsight search WORD` finds | classes |\n|---|---|---|"
    return "\n".join([head, *(row(w) for w in words)])


if __name__ == "__main__":
    print(table(sys.argv[1:] or WORDS))
