"""The public sidecar contract: predictions, paths, freshness and the shipped JSON Schema."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from dropsight.daemon import __version__
from dropsight.daemon.contracts import SidecarRecord
from dropsight.daemon.labels.imagenet import imagenet
from dropsight.daemon.outputs import sidecar
from dropsight.daemon.photos import imaging
from dropsight.daemon.photos.imaging import FileFacts
from dropsight.daemon.runtime.classifier import ModelInfo

FP = hashlib.sha256(b"weights").hexdigest()
MODEL = ModelInfo(name="efficientnet-lite0", fingerprint=FP, input_size=(224, 224))
FALLBACK = ModelInfo(
    name="efficientnet-lite0",
    fingerprint=FP,
    input_size=(224, 224),
    requested="vgg16",
    fallback_reason="vgg16 could not be loaded: VGG16 weights not found",
)
FACTS = FileFacts(hashlib.sha256(b"image").hexdigest(), 5, 4032, 3024)
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _format_checker() -> FormatChecker:
    """The default format checker, with `date-time` always enforced.

    jsonschema only checks `date-time` when the optional rfc3339-validator is installed, so
    the check is spelled out here rather than silently skipped.
    """
    checker = FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if not RFC3339.match(value):
            return False
        datetime.fromisoformat(value)  # raises ValueError for e.g. month 13
        return True

    return checker


VALIDATOR = Draft202012Validator(sidecar.schema(), format_checker=_format_checker())


def validate(record: Mapping[str, Any]) -> None:
    """Fail with every schema violation listed (shared by the CLI and accuracy tests)."""
    errors = sorted(VALIDATOR.iter_errors(record), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def probs_with(top: dict[int, float]) -> np.ndarray:
    """A probability vector with the given classes, the rest sharing what is left."""
    probs = np.zeros(1000, np.float32)
    for i, p in top.items():
        probs[i] = p
    rest = [i for i in range(1000) if i not in top]
    probs[rest] = (1.0 - sum(top.values())) / len(rest)
    return probs


# --- top_predictions -----------------------------------------------------------------------


def test_top_predictions_best_first_with_ranks_and_names() -> None:
    probs = probs_with({281: 0.1, 285: 0.5, 967: 0.3, 504: 0.05})
    preds = sidecar.top_predictions(probs, 3)
    assert [p["class_index"] for p in preds] == [285, 967, 281]
    assert [p["rank"] for p in preds] == [1, 2, 3]
    assert [p["score"] for p in preds] == pytest.approx([0.5, 0.3, 0.1], abs=1e-6)
    index = imagenet()
    for p in preds:
        assert p["wnid"] == index.wnids[p["class_index"]]
        assert p["label"] == index.labels[p["class_index"]]
    assert preds[0]["label"] == "Egyptian_cat"
    assert preds[1]["wnid"] == "n07920052"  # espresso
    assert preds[0]["name"] == "Egyptian cat"
    assert set(preds[0]) == {"rank", "class_index", "wnid", "label", "name", "score"}


def test_top_predictions_min_score_cuts_the_tail() -> None:
    probs = probs_with({1: 0.6, 2: 0.25, 3: 0.1})
    preds = sidecar.top_predictions(probs, 5, min_score=0.2)
    assert [p["class_index"] for p in preds] == [1, 2]
    assert [p["rank"] for p in preds] == [1, 2]
    assert sidecar.top_predictions(probs, 5, min_score=0.99) == []


def test_top_predictions_k_is_clamped_and_ties_are_stable() -> None:
    uniform = np.full(1000, 1 / 1000, np.float32)
    preds = sidecar.top_predictions(uniform, 5000)
    assert len(preds) == 1000
    assert [p["class_index"] for p in preds[:3]] == [0, 1, 2]  # ties: lower index first
    assert [p["rank"] for p in preds] == list(range(1, 1001))


def test_top_predictions_scores_are_plain_rounded_floats_in_range() -> None:
    probs = probs_with({7: 0.123456789})
    probs[8] = 1.0000001  # float error from a softmax must not break the [0, 1] contract
    probs[9] = -1e-9
    preds = sidecar.top_predictions(probs, 1000)
    assert preds[0]["score"] == 1.0
    assert preds[1]["score"] == 0.123457
    assert all(type(p["score"]) is float and 0.0 <= p["score"] <= 1.0 for p in preds)
    assert all(type(p["class_index"]) is int for p in preds)
    json.dumps(preds)  # numpy scalars would not serialise


# --- is_current ----------------------------------------------------------------------------


def test_is_current() -> None:
    record = sidecar.build("IMG.jpg", FACTS, MODEL, [])
    assert sidecar.is_current(record, FP, sha256=FACTS.sha256)
    assert not sidecar.is_current(record, FP, sha256="0" * 64)  # the image changed
    assert not sidecar.is_current(record, "1" * 64, sha256=FACTS.sha256)  # another model
    assert sidecar.is_current(record, "1" * 64, sha256=FACTS.sha256, any_model=True)
    assert not sidecar.is_current(None, FP, sha256=FACTS.sha256)
    assert not sidecar.is_current(cast(SidecarRecord, {}), FP, sha256=FACTS.sha256)
    newer = cast(SidecarRecord, {**record, "schema_version": 2})
    assert not sidecar.is_current(newer, FP, sha256=FACTS.sha256)
    broken = cast(SidecarRecord, {**record, "image": None})
    assert not sidecar.is_current(broken, FP, sha256=FACTS.sha256)
    # cheap mode: the recorded size and file identity decide

    def stat(size: int = FACTS.size_bytes, ino: int = 7, mtime: int = 2, ctime: int = 3) -> Any:
        # st_size is field 6, st_ino 1, st_mtime_ns 14, st_ctime_ns 15
        return os.stat_result((0, ino, 1, 1, 0, 0, size, 1, 2, 3, 1, 2, 3, 1, mtime, ctime))

    facts = FileFacts(FACTS.sha256, FACTS.size_bytes, 1, 1, mtime_ns=2, ctime_ns=3, inode=7)
    record = sidecar.build("IMG.jpg", facts, MODEL, [])
    assert sidecar.is_current(record, FP, stat=stat())
    for changed in (stat(size=6), stat(ino=8), stat(mtime=4), stat(ctime=4)):
        assert not sidecar.is_current(record, FP, stat=changed)


def test_error_records_are_current_only_for_content_errors() -> None:
    # A photo that could not be read is tried again; one whose bytes are broken is not.
    for kind in ("not_found", "unreadable", "inference", "internal"):
        failed = sidecar.build("IMG.jpg", FACTS, MODEL, [], (kind, "x"))
        assert not sidecar.is_current(failed, FP, sha256=FACTS.sha256), kind
    for kind in ("corrupt", "truncated", "not_an_image", "empty_file", "too_large"):
        failed = sidecar.build("IMG.jpg", FACTS, MODEL, [], (kind, "x"))
        assert sidecar.is_current(failed, FP, sha256=FACTS.sha256), kind


def test_is_current_after_a_round_trip_through_the_file(tmp_path: Path) -> None:
    image = tmp_path / "IMG_0001.jpg"
    path = sidecar.sidecar_path(image)
    sidecar.write(path, sidecar.build(image.name, FACTS, MODEL, []))
    assert sidecar.is_current(sidecar.read(path), FP, sha256=FACTS.sha256)


def _label(photo: Path, path: Path) -> None:
    """Write the sidecar the service would: facts from reading the photo."""
    facts = imaging.read_file(photo).facts
    sidecar.write(path, sidecar.build(photo.name, facts, MODEL, []))


def test_scan_state_and_the_identical_overwrite(tmp_path: Path) -> None:
    photo = tmp_path / "IMG.jpg"
    photo.write_bytes(b"image")
    path = sidecar.sidecar_path(photo)
    assert sidecar.scan_state(photo, path, FP) == "stale"  # no sidecar yet
    _label(photo, path)
    assert sidecar.scan_state(photo, path, FP) == "current"
    assert sidecar.scan_state(photo, path, "1" * 64) == "other_model"
    # Overwritten with the same bytes: the cheap check says stale until a full check has
    # confirmed the content and recorded the photo's new identity.
    later = photo.stat().st_mtime_ns + 5_000_000_000
    os.utime(photo, ns=(later, later))
    assert sidecar.scan_state(photo, path, FP) == "stale"
    facts = imaging.read_file(photo).facts
    record = sidecar.read(path)
    assert record is not None and sidecar.is_current(record, FP, sha256=facts.sha256)
    sidecar.mark_verified(path, record, facts)
    assert sidecar.scan_state(photo, path, FP) == "current"
    photo.write_bytes(b"other")  # a real change later still shows
    os.utime(photo, ns=(later + 1, later + 1))
    assert sidecar.scan_state(photo, path, FP) == "stale"


def test_a_same_size_replacement_with_the_old_mtime_is_stale(tmp_path: Path) -> None:
    """`cp -p`, `rsync -t`, a backup restore: same size, old mtime, other content."""
    photo = tmp_path / "IMG.bmp"
    photo.write_bytes(b"A" * 64)
    path = sidecar.sidecar_path(photo)
    _label(photo, path)
    assert sidecar.scan_state(photo, path, FP) == "current"
    old = photo.stat()
    replacement = tmp_path / "restored.bmp"
    replacement.write_bytes(b"B" * 64)
    os.utime(replacement, ns=(old.st_atime_ns, old.st_mtime_ns))
    replacement.replace(photo)  # what rsync and restores do: a new file renamed into place
    st = photo.stat()
    assert (st.st_size, st.st_mtime_ns) == (old.st_size, old.st_mtime_ns)
    assert sidecar.scan_state(photo, path, FP) == "stale"


def test_sidecars_without_the_file_identity_are_checked_by_hash(tmp_path: Path) -> None:
    """Sidecars written before 0.3 have no `stat`: one full check records it."""
    photo = tmp_path / "IMG.jpg"
    photo.write_bytes(b"image")
    path = sidecar.sidecar_path(photo)
    sidecar.write(path, sidecar.build(photo.name, FACTS, MODEL, []))  # FACTS: no identity
    stored = sidecar.read(path)
    assert stored is not None and "stat" not in stored["image"]
    assert sidecar.scan_state(photo, path, FP) == "stale"


def test_non_utf8_names_are_kept_losslessly(tmp_path: Path) -> None:
    raw = b"bad\xffname.jpg"
    name = os.fsdecode(raw)
    record = sidecar.build(name, FACTS, MODEL, [])
    path = tmp_path / "r.json"
    sidecar.write(path, record)
    data = path.read_bytes()
    data.decode("utf-8")  # valid UTF-8 on disk
    assert b"\\udcff" in data
    back = sidecar.read(path)
    assert back is not None
    assert os.fsencode(back["image"]["path"]) == raw


# --- sidecar_path --------------------------------------------------------------------------


def test_sidecar_path_beside_the_image(tmp_path: Path) -> None:
    image = tmp_path / "DCIM" / "IMG_0001.JPG"
    assert sidecar.sidecar_path(image) == tmp_path / "DCIM" / "IMG_0001.JPG.json"
    # root alone (no output folder) still means beside
    assert sidecar.sidecar_path(image, root=tmp_path) == image.with_name("IMG_0001.JPG.json")
    dotted = tmp_path / "holiday.2024.heic"
    assert sidecar.sidecar_path(dotted).name == "holiday.2024.heic.json"


def test_sidecar_path_in_an_output_folder(tmp_path: Path) -> None:
    root = tmp_path / "Photos"
    out = tmp_path / "labels"
    image = root / "2024" / "june" / "IMG_0001.jpg"
    assert sidecar.sidecar_path(image, root, out) == out / "2024" / "june" / "IMG_0001.jpg.json"
    assert sidecar.sidecar_path(root / "a.png", root, out) == out / "a.png.json"


# --- read / write --------------------------------------------------------------------------


def test_write_then_read(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    path = folder / "IMG.jpg.json"
    record = sidecar.build("IMG.jpg", FACTS, MODEL, [])
    record["image"]["path"] = "Überraschung ☕.jpg"
    sidecar.write(path, record)
    text = path.read_text("utf-8")
    assert text.endswith("}\n")
    assert "Überraschung ☕" in text  # readable UTF-8, not \u escapes
    assert sidecar.read(path) == record
    assert [p.name for p in folder.iterdir()] == ["IMG.jpg.json"]  # no temp file left


@pytest.mark.parametrize("content", [None, "", "{not json", "[1, 2]", "\xff\xfe"])
def test_read_returns_none_for_missing_or_unusable(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "x.jpg.json"
    if content is not None:
        path.write_bytes(content.encode("latin-1"))
    assert sidecar.read(path) is None


# --- the JSON Schema -----------------------------------------------------------------------


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = sidecar.schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["schema_version"] == {"const": sidecar.SCHEMA_VERSION}


def good_records() -> dict[str, SidecarRecord]:
    preds = sidecar.top_predictions(probs_with({281: 0.7, 285: 0.2}), 5)
    return {
        "ok": sidecar.build("IMG_0001.jpg", FACTS, MODEL, preds, categories=["animal", "cat"]),
        "ok-fallback": sidecar.build("IMG_0001.jpg", FACTS, FALLBACK, preds),
        "ok-no-predictions": sidecar.build("x.png", FACTS, MODEL, []),
        "ok-unknown-size": sidecar.build("x.png", FileFacts(FACTS.sha256, 0), MODEL, preds),
        "error-unreadable": sidecar.build("gone.jpg", None, MODEL, [], ("not_found", "no")),
        "error-corrupt": sidecar.build("bad.jpg", FACTS, FALLBACK, [], ("corrupt", "bad data")),
        "error-empty-message": sidecar.build("e.jpg", None, MODEL, [], ("empty_file", "")),
    }


@pytest.mark.parametrize("name", list(good_records()))
def test_every_record_kind_validates(name: str, tmp_path: Path) -> None:
    record = good_records()[name]
    validate(record)
    assert record["generator"] == {"name": "dropsight", "version": __version__}
    # and the stored form, read back, is the same valid document
    path = tmp_path / "r.json"
    sidecar.write(path, record)
    stored = sidecar.read(path)
    assert stored is not None
    validate(stored)


def test_fallback_is_recorded_in_the_model_block() -> None:
    records = good_records()
    assert records["ok"]["model"]["fallback_for"] is None
    assert records["ok-fallback"]["model"]["fallback_for"] == "vgg16"
    assert records["ok"]["model"]["input_size"] == [224, 224]
    assert records["ok"]["model"]["runtime"] == "litert-fp32"


def test_categories_only_on_labelled_records() -> None:
    records = good_records()
    assert records["ok"]["categories"] == ["animal", "cat"]
    assert records["ok-no-predictions"]["categories"] == []
    assert "categories" not in records["error-corrupt"]
    bad = dict(records["error-corrupt"], categories=["dog"])
    with pytest.raises(AssertionError, match="expected to be empty"):
        validate(bad)


def test_processed_at_is_utc_with_z() -> None:
    stamp = good_records()["ok"]["processed_at"]
    assert stamp.endswith("Z")
    assert RFC3339.match(stamp)


def _set(record: Mapping[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    target: Any = record
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    if value is _DELETE:
        del target[last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value


_DELETE = object()

BROKEN = [
    ("ok", "schema_version", 2),
    ("ok", "status", "maybe"),
    ("ok", "status", _DELETE),
    ("ok", "error", {"type": "corrupt", "message": "x"}),  # ok but with an error
    ("ok", "image.sha256", None),  # ok must record the hash
    ("ok", "image.sha256", "ABC"),
    ("ok", "image.sha256", "A" * 64),  # lower-case hex only
    ("ok", "image.bytes", -1),
    ("ok", "image.width", 0),
    ("ok", "image.path", ""),
    ("ok", "image", _DELETE),
    ("ok", "model.fingerprint", "not-a-hash"),
    ("ok", "model.input_size", [224, 224, 3]),
    ("ok", "model.name", _DELETE),
    ("ok", "predictions.0.score", 1.5),
    ("ok", "predictions.0.score", -0.1),
    ("ok", "predictions.0.rank", 0),
    ("ok", "predictions.0.class_index", 1000),
    ("ok", "predictions.0.wnid", "cat"),
    ("ok", "predictions.0.label", _DELETE),
    ("ok", "predictions", None),
    ("ok", "processed_at", "yesterday"),
    ("ok", "processed_at", "2026-13-40T99:00:00Z"),
    ("ok", "generator.name", "someone-else"),
    ("ok", "generator", _DELETE),
    ("error-corrupt", "error", None),  # an error needs its reason
    ("error-corrupt", "error.type", ""),
    ("error-corrupt", "error.message", _DELETE),
    # an error never carries predictions, even well-formed ones
    (
        "error-corrupt",
        "predictions",
        [{"rank": 1, "class_index": 281, "wnid": "n02123045", "label": "tabby", "score": 0.5}],
    ),
]


@pytest.mark.parametrize(
    ("base", "field", "value"),
    BROKEN,
    ids=[f"{b}:{f}={'<deleted>' if v is _DELETE else v!r}" for b, f, v in BROKEN],
)
def test_schema_rejects_broken_records(base: str, field: str, value: Any) -> None:
    record = copy.deepcopy(good_records()[base])
    if field.startswith("predictions.0"):
        assert record["predictions"], "base record needs a prediction to break"
    _set(record, field, value)
    with pytest.raises(ValidationError):
        VALIDATOR.validate(record)
