"""`dropsight search` as people use it: their words, complete machine output, honest notes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.daemon.helpers import dropsight
from tests.daemon.outputs.test_library import labelled_photo


@pytest.fixture
def many(tmp_path: Path) -> Path:
    """60 golden retrievers, a beach, a faint daisy, a tabby; indexed."""
    root = tmp_path / "library"
    for i in range(60):
        labelled_photo(root / "dogs", f"dog{i:02d}.jpg", {207: 0.5 + i / 200})
    labelled_photo(root, "beach.jpg", {978: 0.7})
    labelled_photo(root, "flower.jpg", {281: 0.9, 985: 0.01})  # a tabby near a daisy
    assert dropsight("index", "rebuild", root).returncode == 0
    return root


def test_unquoted_names_and_concepts_say_what_they_searched(many: Path) -> None:
    golden = dropsight("search", "golden", "retriever", "--min-score", "0.5", "--limit", "1")
    assert golden.returncode == 0, golden.stderr
    assert golden.stdout.split("\t")[1] == "golden retriever"
    beach = dropsight("search", "beach")
    assert beach.returncode == 0, beach.stderr
    assert beach.stdout.startswith(f"{many / 'beach.jpg'}\tseashore\t70.0%")
    assert "beach: showing lakeside, seashore, sandbar" in beach.stderr
    typo = dropsight("search", "retreiver")
    assert typo.returncode == 1 and "did you mean 'retriever'" in typo.stderr


def test_machine_output_is_complete_and_the_screen_says_what_it_left_out(many: Path) -> None:
    paths = dropsight("search", "dog", "--paths", "-0").stdout.split("\0")
    assert len(paths) == 61 and paths[-1] == ""  # all 60, not the first 50
    assert len(dropsight("search", "dog", "--json").stdout.splitlines()) == 60
    assert len(dropsight("search", "dog", "--paths", "--limit", "7").stdout.splitlines()) == 7
    shown = dropsight("search", "dog")
    assert len(shown.stdout.splitlines()) == 50
    assert "50 of 60 shown (--limit N for more)" in shown.stderr
    assert len(dropsight("search", "dog", "--limit", "60").stdout.splitlines()) == 60


def test_the_default_minimum_score_is_the_categories_threshold(many: Path) -> None:
    faint = dropsight("search", "daisy")
    assert faint.returncode == 1 and faint.stdout == ""
    assert "1 more below 30% (--min-score 0 shows them)" in faint.stderr
    lower = dropsight("search", "daisy", "--min-score", "0")
    assert lower.stdout.splitlines() == [f"{many / 'flower.jpg'}\tdaisy\t1.0%"]
    (config := many.parent / "config.toml").write_text("[output]\nxmp_min_score = 0.005\n")
    assert dropsight("search", "daisy", "--config", config).returncode == 0


def test_nothing_found_says_so_on_screen_and_exits_1(many: Path, tmp_path: Path) -> None:
    zebra = dropsight("search", "zebra")
    assert zebra.returncode == 1 and zebra.stdout == ""
    assert "no photos of zebra yet (62 photos indexed)" in zebra.stderr
    quiet = dropsight("search", "zebra", "--paths")
    assert quiet.returncode == 1 and quiet.stdout == "" and "no photos" not in quiet.stderr
    sunset = dropsight("search", "sunset")
    assert sunset.returncode == 1
    assert "no ImageNet class or category covers 'sunset'" in sunset.stderr


def test_an_empty_index_says_so(tmp_path: Path) -> None:
    empty = dropsight("search", "zebra")
    assert empty.returncode == 1 and "no photos of zebra yet (0 photos indexed)" in empty.stderr
