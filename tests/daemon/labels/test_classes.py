"""ImageNet class knowledge: coverage, categories, names and word matching."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from dropsight.daemon.labels import classes
from dropsight.daemon.labels.imagenet import imagenet

ROOT = Path(__file__).resolve().parents[3]
WORDNET = Path("/usr/share/wordnet/data.noun")

# Classes no category covers, on purpose: none of them is something people would file under
# a category (a ride, a rig, an instrument of execution, a maze, a muzzle, a web, a bubble).
UNMAPPED = {476, 540, 583, 646, 676, 815, 971}


def test_every_class_of_the_index_is_covered() -> None:
    index = json.loads(
        resources.files("dropsight.config").joinpath("imagenet_class_index.json").read_text()
    )
    known = classes.classes()
    assert len(known) == 1000
    assert [c.wnid for c in known] == [index[str(i)][0] for i in range(1000)]
    assert [c.index for c in known] == list(range(1000))
    assert all(c.definition and c.synonyms and c.ancestors for c in known)


def test_friendly_names_are_unique_and_readable() -> None:
    names = [c.name for c in classes.classes()]
    assert len(set(names)) == 1000
    assert not [n for n in names if "_" in n]
    assert classes.info(207).name == "golden retriever"
    assert classes.info(661).name == "Model T"
    # ImageNet has two "crane"s and two "maillot"s; their hypernym tells them apart.
    assert classes.info(134).name == "crane (wading bird)"
    assert classes.info(517).name.startswith("crane (")
    assert classes.info(639).name == "maillot (swimsuit)"


def test_unmapped_classes_are_the_deliberate_few() -> None:
    assert {c.index for c in classes.classes() if not c.categories} == UNMAPPED


def test_categories_follow_wordnet_ancestry() -> None:
    golden = classes.info(207)
    assert golden.categories == ("animal", "mammal", "dog")
    assert golden.category == "dog"
    assert "retriever" in golden.ancestors
    assert classes.info(281).category == "cat"  # tabby
    assert classes.info(934).categories == ("food",)  # hot dog is not a dog
    assert "car" in classes.info(661).categories  # Model T
    assert classes.category_path("dog") == ["animal", "mammal", "dog"]
    cats = classes.categories()
    assert 20 <= len(cats) <= 45
    assert all(cats[c].parent in (None, *cats) for c in cats)


def test_categories_of_uses_only_confident_predictions() -> None:
    preds = [
        {"class_index": 207, "score": 0.6},
        {"class_index": 934, "score": 0.2},
    ]
    assert classes.categories_of(preds, 0.3) == ["animal", "mammal", "dog"]
    assert set(classes.categories_of(preds, 0.1)) == {"animal", "mammal", "dog", "food"}
    assert classes.categories_of(preds, 0.9) == []


def test_words_match_whole_names_synonyms_categories_and_ancestors() -> None:
    dogs = classes.classes_matching("dog")
    assert set(range(151, 269)) <= dogs
    assert 934 not in dogs  # hot dog
    assert classes.classes_matching("Dogs") == dogs
    assert classes.classes_matching("hot dog") == {934}
    retrievers = classes.classes_matching("retriever")
    assert 207 in retrievers and len(retrievers) == 5  # WordNet counts the Chesapeake Bay too
    assert set(range(281, 286)) <= classes.classes_matching("cat")
    assert 0 in classes.classes_matching("tench")  # a synonym: "Tinca tinca" too
    assert 0 in classes.classes_matching("Tinca tinca")
    assert classes.classes_matching("butterflies") == classes.classes_matching("butterfly")
    assert classes.classes_matching("no such thing") == frozenset()


def test_raw_labels_and_friendly_names_describe_the_same_class() -> None:
    for i, raw in enumerate(imagenet().labels):
        info = classes.info(i)
        assert info.name.split(" (")[0] == raw.replace("_", " ")


@pytest.mark.skipif(not WORDNET.is_file(), reason="needs Debian's wordnet-base")
def test_committed_data_is_what_the_generator_makes() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_imagenet_classes.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
