"""A prediction's display name: the one way every output, command and window names a label."""

from __future__ import annotations

from dropsight.daemon.contracts import Prediction
from dropsight.daemon.labels import classes


def friendly(label: str) -> str:
    """A raw ImageNet label as people write it: "golden_retriever" -> "golden retriever"."""
    return label.replace("_", " ")


def display_name(prediction: Prediction) -> str:
    """The friendly name the sidecar records ("crane (wading bird)").

    Sidecars from before 0.2 have none: then the class's friendly name, as a fresh run would
    write it; the raw label made readable when the class index is not one of ours.
    """
    name = prediction.get("name")
    if name:
        return name
    index = prediction["class_index"]
    if isinstance(index, int) and 0 <= index < len(classes.classes()):
        return classes.info(index).name
    return friendly(prediction["label"])
