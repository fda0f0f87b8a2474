"""The ImageNet-1k class index (wnid and label per class), shipped so no download is needed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class ClassIndex:
    """Wnid and human label for each of the 1000 ImageNet classes, by class index."""

    wnids: tuple[str, ...]
    labels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.wnids)


@cache
def imagenet() -> ClassIndex:
    """Load the shipped class index (Keras' imagenet_class_index.json layout)."""
    text = (
        resources.files("dropsight.config").joinpath("imagenet_class_index.json").read_text("utf-8")
    )
    raw: dict[str, list[str]] = json.loads(text)
    entries = [raw[str(i)] for i in range(len(raw))]
    return ClassIndex(
        wnids=tuple(e[0] for e in entries),
        labels=tuple(e[1] for e in entries),
    )
