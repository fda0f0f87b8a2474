"""What a search means: phrases typed without quotes, concepts from WordNet, near names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dropsight.daemon.labels import classes, query

ROOT = Path(__file__).resolve().parents[3]
WORDNET = Path("/usr/share/wordnet/data.noun")
DOGS = frozenset(range(151, 269))


def one(*words: str) -> query.Term:
    (term,) = query.parse(words)
    return term


def test_unquoted_words_that_form_a_class_name_match_it() -> None:
    assert one("golden", "retriever").classes == {207}
    assert one("sports", "car").classes == {817}
    assert one("hot", "dog").classes == {934}  # the food, not a dog
    assert one("Golden  Retriever").text == "golden retriever"
    assert one("golden retriever").explain() is None  # a class name needs no explaining
    # Words that form no name stay separate terms, each of which must match.
    dog, cat = query.parse(["dog", "cat"])
    assert dog.classes == classes.classes_matching("dog") and 281 in cat.classes
    first, second = query.parse(["golden", "retriever", "tabby"])
    assert (first.classes, second.classes) == ({207}, {281})


def test_a_word_that_names_no_class_finds_what_wordnet_relates_it_to() -> None:
    beach = one("beach")
    assert {978, 977, 975} <= beach.classes  # seashore, sandbar, lakeside
    assert beach.explain() == "beach: showing lakeside, seashore, sandbar"
    assert one("beaches").classes == beach.classes
    puppy = one("puppy")
    assert puppy.classes == DOGS and puppy.explain() == "puppy: showing every dog (118 classes)"
    assert one("puppies").classes == DOGS
    assert one("kitten").classes == {281, 282, 283, 284, 285}  # the domestic cats
    assert 978 in one("sea").classes  # seashore
    assert {516, 520} <= one("baby").classes  # cradle, crib
    assert {985} <= one("flower").classes  # daisy: a category, said as it is
    mountain = one("mountain")  # an ancestor of classes: said what it stands for
    assert mountain.classes == {970, 980} and mountain.explain() == "mountain: showing alp, volcano"


def test_no_class_is_said_honestly_and_typos_get_near_names() -> None:
    sunset = one("sunset")
    assert not sunset.classes
    assert sunset.why_none() == "no ImageNet class or category covers 'sunset'"
    zebar = one("zebar")
    assert not zebar.classes and zebar.suggestions[0] == "zebra"
    assert "did you mean 'zebra'" in zebar.why_none()
    assert "did you mean 'golden retriever'" in one("goldn retriever").why_none()


def test_the_concept_map_is_small() -> None:
    data = ROOT / "config" / "concepts.json"
    assert data.stat().st_size < 128 * 1024


@pytest.mark.skipif(not WORDNET.is_file(), reason="needs Debian's wordnet-base")
def test_committed_concepts_are_what_the_generator_makes() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_concepts.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
