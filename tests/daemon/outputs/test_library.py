"""The library index, search and export: semantics, consistency with the sidecars, the CLI."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from dropsight.config.settings import Settings, WatchSettings
from dropsight.daemon.labels.classes import categories_of
from dropsight.daemon.outputs import sidecar
from dropsight.daemon.outputs.index.library import Hit, Index
from dropsight.daemon.outputs.index.sync import sync
from dropsight.daemon.service.service import Service
from tests.daemon.helpers import FakeClassifier, dropsight, make_photo, wait_for
from tests.daemon.outputs.test_sidecar import FACTS, MODEL, probs_with

DOGS = range(151, 269)  # the 118 ImageNet dog classes


def labelled_photo(folder: Path, name: str, scores: dict[int, float]) -> Path:
    """A photo file with a sidecar holding these scores (no model needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    photo = folder / name
    photo.write_bytes(b"photo " + name.encode("utf-8", "surrogateescape"))
    preds = sidecar.top_predictions(probs_with(scores), 5)
    record = sidecar.build(photo.name, FACTS, MODEL, preds, categories=categories_of(preds, 0.3))
    sidecar.write(photo.with_name(photo.name + ".json"), record)
    return photo


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "library"
    labelled_photo(root / "2024", "golden.jpg", {207: 0.9})
    labelled_photo(root / "2024", "lab.jpg", {208: 0.6, 281: 0.3})  # a Labrador and a tabby
    labelled_photo(root / "2025", "husky.jpg", {250: 0.4})
    labelled_photo(root / "2025", "hotdog.jpg", {934: 0.95})
    labelled_photo(root / "2025", "tabby.jpg", {281: 0.8})
    labelled_photo(root / "2025", "truck.jpg", {867: 0.7})
    return root


def indexed(root: Path, tmp_path: Path) -> Index:
    settings = Settings(watch=WatchSettings(folders=(root,)))
    index = Index(tmp_path / "index.sqlite3")
    sync(index, settings, [root])
    return index


def names(hits: list[Hit]) -> list[str]:
    return [h.path.name for h in hits]


def test_words_match_names_synonyms_categories_and_ancestors(library: Path, tmp_path: Path) -> None:
    with indexed(library, tmp_path) as index:
        assert index.count() == 6
        assert names(index.search(["dog"])) == ["golden.jpg", "lab.jpg", "husky.jpg"]
        assert names(index.search(["Dogs"])) == names(index.search(["dog"]))
        assert names(index.search(["retriever"])) == ["golden.jpg", "lab.jpg"]
        # Unquoted words that form a class name match it: "hot dog" is the food.
        assert names(index.search(["hot", "dog"])) == ["hotdog.jpg"]
        assert names(index.search(["golden", "retriever"])) == ["golden.jpg"]
        assert names(index.search(["hotdog"])) == ["hotdog.jpg"]
        assert names(index.search(["food"])) == ["hotdog.jpg"]
        assert names(index.search(["cat"])) == ["tabby.jpg", "lab.jpg"]
        assert names(index.search(["dog", "cat"])) == ["lab.jpg"]  # AND, ranked by the first
        assert names(index.search(["vehicle"])) == ["truck.jpg"]
        assert names(index.search(["dog"], min_score=0.5)) == ["golden.jpg", "lab.jpg"]
        assert names(index.search(["dog"], under=library / "2025")) == ["husky.jpg"]
        assert names(index.search(["dog"], limit=1, offset=1)) == ["lab.jpg"]
        assert index.search(["unicorn"]) == []
        hit = index.search(["golden retriever"])[0]
        assert (hit.name, hit.class_index, hit.score) == ("golden retriever", 207, 0.9)
        assert hit.sidecar == hit.path.with_name("golden.jpg.json")
        assert index.category_counts()["dog"] == 3


def test_every_dog_class_is_found_by_dog(tmp_path: Path) -> None:
    root = tmp_path / "dogs"
    for c in DOGS:
        labelled_photo(root, f"{c}.jpg", {c: 0.7})
    labelled_photo(root, "hotdog.jpg", {934: 0.9})
    with indexed(root, tmp_path) as index:
        found = index.search(["dog"], limit=500)
        assert sorted(h.class_index for h in found) == list(DOGS)


def test_the_index_follows_deletes_moves_edits_and_matches_a_rebuild(
    library: Path, tmp_path: Path
) -> None:
    settings = Settings(watch=WatchSettings(folders=(library,)))
    with indexed(library, tmp_path) as index:
        (library / "2025" / "husky.jpg").unlink()  # deleted (its sidecar stays behind)
        for name in ("golden.jpg", "golden.jpg.json"):  # moved, with its sidecar
            (library / "2025" / "moved").mkdir(exist_ok=True)
            shutil.move(library / "2024" / name, library / "2025" / "moved" / name)
        labelled_photo(library / "2025", "tabby.jpg", {282: 0.9})  # labelled again: tiger cat
        changes = sync(index, settings, [library])
        assert (changes.added, changes.removed) == (2, 2)
        assert names(index.search(["dog"])) == ["golden.jpg", "lab.jpg"]
        assert index.search(["golden retriever"])[0].path.parent.name == "moved"
        assert names(index.search(["tiger cat"])) == ["tabby.jpg"]
        before = [h.as_json() for h in index.search(["animal"], limit=100)]
        again = Index(tmp_path / "fresh.sqlite3")
        sync(again, settings, [library], from_scratch=True)
        assert [h.as_json() for h in again.search(["animal"], limit=100)] == before
        again.close()


def test_non_utf8_names_round_trip(tmp_path: Path) -> None:
    if sys.platform == "win32":
        pytest.skip("POSIX byte names")
    root = tmp_path / "raw"
    name = os.fsdecode(b"caf\xe9.jpg")  # Latin-1 bytes: not UTF-8
    photo = labelled_photo(root, name, {207: 0.9})
    with indexed(root, tmp_path) as index:
        (hit,) = index.search(["dog"])
        assert os.fsencode(hit.path) == os.fsencode(photo)
        assert json.dumps(hit.as_json())  # printable as JSON


def test_the_service_keeps_the_index(tmp_path: Path) -> None:
    """Photos labelled by a running service are searchable at once; the sink is the writer."""
    folder = tmp_path / "photos"
    folder.mkdir()
    labelled_photo(folder, "before.jpg", {207: 0.9})  # from an earlier run: found by repair
    fake = FakeClassifier()
    service = Service(
        Settings(watch=WatchSettings(folders=(folder,), settle_time_s=0.3)),
        classifier_factory=lambda _s: fake,
    )
    service.start()
    try:
        for i in range(5):
            make_photo(folder / f"new{i}.jpg", seed=i)
        wait_for(lambda: len(list(folder.glob("new*.jpg.json"))) == 5, 20, "5 sidecars")
        with Index() as index:
            wait_for(lambda: index.count() == 6, 20, "6 photos indexed")
            label = sidecar.read(folder / "new0.jpg.json")
            assert label is not None
            top = label["predictions"][0]
            hits = index.search([top["name"]], limit=10)
            assert folder / "new0.jpg" in [h.path for h in hits]
            assert names(index.search(["golden retriever"])) == ["before.jpg"]
    finally:
        service.join()


def test_one_walk_serves_the_queue_the_index_and_xmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At start the scanner walks each folder once; the index repair and the XMP catch-up
    follow that walk instead of walking again. A rescan refreshes the index: a photo
    deleted while the service runs leaves it."""
    from dropsight.config.settings import OutputSettings
    from dropsight.daemon.outputs.xmp import packet
    from dropsight.daemon.photos.filter import PhotoFilter

    folder = tmp_path / "photos"
    old, gone = make_photo(folder / "old.jpg", seed=1), make_photo(folder / "gone.jpg", seed=2)
    earlier = Service(
        Settings(watch=WatchSettings(folders=(folder,))),
        classifier_factory=lambda _s: FakeClassifier(),
    )
    earlier.start()  # an earlier run, without XMP
    try:
        wait_for(lambda: len(list(folder.glob("*.json"))) == 2, 20, "two sidecars")
    finally:
        earlier.join()
    make_photo(folder / "new.jpg", seed=3)
    walks: list[Path] = []
    real_walk = PhotoFilter.walk

    def counted(self: PhotoFilter, root: Path, *args: Any) -> object:
        walks.append(root)
        return real_walk(self, root, *args)

    monkeypatch.setattr(PhotoFilter, "walk", counted)
    service = Service(
        Settings(watch=WatchSettings(folders=(folder,)), output=OutputSettings(xmp="beside")),
        classifier_factory=lambda _s: FakeClassifier(),
    )
    service.start()
    try:
        wait_for((folder / "new.jpg.json").exists, 20, "the new photo labelled")
        wait_for(packet.xmp_path(old).exists, 20, "the XMP of the photo labelled before")
        with Index() as index:
            wait_for(lambda: index.count() == 3, 20, "all three indexed")
            assert walks == [folder]  # one walk, not one per consumer
            gone.unlink()
            (folder / "gone.jpg.json").unlink()
            service.rescan()
            wait_for(lambda: index.count() == 2, 20, "the deleted photo forgotten")
        assert walks == [folder, folder]
    finally:
        service.join()


def test_a_damaged_index_is_set_aside_and_rebuilt(tmp_path: Path) -> None:
    from dropsight.daemon.outputs.index.library import default_path

    folder = tmp_path / "photos"
    labelled_photo(folder, "dog.jpg", {207: 0.9})
    default_path().parent.mkdir(parents=True, exist_ok=True)
    default_path().write_bytes(b"this is not a database" * 100)
    service = Service(
        Settings(watch=WatchSettings(folders=(folder,))),
        classifier_factory=lambda _s: FakeClassifier(),
    )
    service.start()
    try:
        state = default_path().parent
        wait_for(lambda: any(state.glob("library.sqlite3.damaged-*")), 20, "set aside")
        with Index() as index:
            wait_for(lambda: index.count() == 1, 20, "rebuilt from the sidecars")
    finally:
        service.join()


# --- the command line --------------------------------------------------------------------------


def test_cli_rebuild_search_and_its_output_forms(library: Path) -> None:
    rebuilt = dropsight("index", "rebuild", library)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "6 added or updated" in rebuilt.stdout
    plain = dropsight("search", "dog")
    assert plain.returncode == 0, plain.stderr
    assert (
        plain.stdout.splitlines()[0]
        == f"{library / '2024' / 'golden.jpg'}\tgolden retriever\t90.0%"
    )
    lines = dropsight("search", "dog", "--json").stdout.splitlines()
    first = json.loads(lines[0])
    assert {"path", "sidecar", "name", "class_index", "score"} <= set(first)
    assert len(lines) == 3
    zero = dropsight("search", "retriever", "--paths", "-0").stdout
    assert zero.split("\0") == [
        str(library / "2024" / "golden.jpg"),
        str(library / "2024" / "lab.jpg"),
        "",
    ]
    assert dropsight("search", "dog", "--in", library / "2025", "--paths").stdout.splitlines() == [
        str(library / "2025" / "husky.jpg")
    ]
    nothing = dropsight("search", "unicorn")
    assert nothing.returncode == 1 and "no ImageNet class or category" in nothing.stderr
    assert dropsight("search", "truck", "--min-score", "0.9").returncode == 1  # none that sure


def test_export_round_trips_through_csv_and_json(library: Path, tmp_path: Path) -> None:
    out = dropsight("export", library)
    assert out.returncode == 0, out.stderr
    table = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(table) == 6
    golden = next(r for r in table if r["path"].endswith("golden.jpg"))
    assert (golden["name1"], float(golden["score1"])) == ("golden retriever", 0.9)
    assert golden["categories"] == "animal mammal dog"
    assert golden["status"] == "ok" and golden["model"] == MODEL.name
    target = tmp_path / "out" / "labels.jsonl"
    target.parent.mkdir()
    written = dropsight("export", library, "--format", "jsonl", "--output", target)
    assert written.returncode == 0, written.stderr
    rows = [json.loads(line) for line in target.read_text("utf-8").splitlines()]
    assert sorted(Path(r["path"]).name for r in rows) == sorted(Path(r["path"]).name for r in table)
    assert next(r for r in rows if r["path"].endswith("truck.jpg"))["categories"] == [
        "vehicle",
        "truck",
    ]
    assert list(target.parent.iterdir()) == [target]  # no temp file left
