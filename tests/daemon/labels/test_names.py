"""One display name for a prediction, whichever sidecar it comes from."""

from __future__ import annotations

from dropsight.daemon.contracts import Prediction
from dropsight.daemon.labels.names import display_name, friendly


def _prediction(class_index: int, label: str, name: str | None = None) -> Prediction:
    p: Prediction = {
        "rank": 1,
        "class_index": class_index,
        "wnid": "n00000000",
        "label": label,
        "score": 0.5,
    }
    if name is not None:
        p["name"] = name
    return p


def test_the_recorded_name_wins() -> None:
    assert display_name(_prediction(207, "golden_retriever", "golden retriever")) == (
        "golden retriever"
    )


def test_sidecars_before_0_2_get_the_class_friendly_name() -> None:
    # The raw label "crane" names two classes; the friendly name tells them apart.
    assert display_name(_prediction(134, "crane")) == "crane (wading bird)"
    assert display_name(_prediction(517, "crane")) == "crane (lifting device)"


def test_an_unknown_class_shows_its_label_readably() -> None:
    assert display_name(_prediction(5000, "golden_retriever")) == "golden retriever"
    assert display_name(_prediction(-1, "tiger_cat", "")) == "tiger cat"
    assert friendly("space_suit") == "space suit"
