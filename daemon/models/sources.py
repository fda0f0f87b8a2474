"""Where a model's weights come from when the user asks to get them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dropsight.daemon.models import registry, weights

# Tests only: a server on 127.0.0.1 stands in for Keras' address (never set by the app).
URL_ENV = "DROPSIGHT_TEST_VGG16_URL"
MD5_ENV = "DROPSIGHT_TEST_VGG16_MD5"


@dataclass(frozen=True)
class Source:
    """One weights file to fetch: from where, its hash, its size, and where it goes."""

    name: str
    url: str
    md5: str
    size: int | None
    target: Path


def source_for(name: str) -> Source | None:
    """The download of `name`'s weights (None: they ship with Dropsight)."""
    spec = registry.spec(name)
    if not spec.download_bytes:
        return None
    test_url, test_md5 = os.environ.get(URL_ENV), os.environ.get(MD5_ENV)
    return Source(
        name=name,
        url=test_url or weights.VGG16_WEIGHTS_URL,
        md5=test_md5 or weights.VGG16_WEIGHTS_MD5,
        # A test's file (another URL or checksum) has a size of its own.
        size=None if test_url or test_md5 else spec.download_bytes,
        # The Keras cache: where the weights chain looks, and where Keras itself puts them.
        target=weights.keras_home() / "models" / weights.VGG16_WEIGHTS_FILE,
    )
