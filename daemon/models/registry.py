"""The named models: how each finds its weights, builds in Keras, and preprocesses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dropsight.config.settings import MODEL_NAMES, ModelSettings
from dropsight.daemon.models import weights

INPUT_SIZE = (224, 224)


@dataclass(frozen=True)
class ModelSpec:
    """One model Dropsight can run; its fingerprint is the sha256 of its weights file."""

    name: str
    builder: str  # module with `build(weights: Path) -> keras.Model` (RGB 0..255 in)
    preprocessing: str  # what the model does inside its graph, for docs and `--version`
    locate: Callable[[ModelSettings, str], weights.WeightsFile]
    gflops: float  # multiply-adds x 2 per 224x224 image: how heavy inference is
    input_size: tuple[int, int] = INPUT_SIZE
    download_bytes: int = 0  # size of the weights download, when there is one
    convert_bytes: int = 0  # memory the one-time conversion peaks at (measured)


def _vgg16_weights(settings: ModelSettings, config_name: str) -> weights.WeightsFile:
    return weights.find_vgg16(
        settings.weights, allow_download=settings.allow_download, config_name=config_name
    )


def _efficientnet_weights(_settings: ModelSettings, _config_name: str) -> weights.WeightsFile:
    return weights.find_efficientnet_lite0()


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="vgg16",
            builder="dropsight.daemon.models.keras_vgg16",
            preprocessing="keras.applications.vgg16.preprocess_input (BGR, minus ImageNet mean)",
            locate=_vgg16_weights,
            gflops=15.5,
            download_bytes=weights.VGG16_WEIGHTS_BYTES,
            convert_bytes=6_000_000_000,
        ),
        ModelSpec(
            name="efficientnet-lite0",
            builder="dropsight.daemon.models.keras_efficientnet_lite",
            preprocessing="(x - 127) / 128 on RGB",
            locate=_efficientnet_weights,
            gflops=0.41,
        ),
    )
}
# The config validates names without importing the daemon; both lists must agree.
assert tuple(MODELS) == MODEL_NAMES, (tuple(MODELS), MODEL_NAMES)


def spec(name: str) -> ModelSpec:
    """The spec of `name`; KeyError names the models there are."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None
