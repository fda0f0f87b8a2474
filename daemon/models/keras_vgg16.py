"""VGG16 in Keras with its preprocessing inside the graph (the tutorial's model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
from keras.applications import vgg16

from dropsight.daemon.models.weights import VGG16_WEIGHTS_FILE, VGG16_WEIGHTS_MD5, VGG16_WEIGHTS_URL


@keras.saving.register_keras_serializable(package="dropsight")
class VGG16Preprocess(keras.layers.Layer):
    """Keras' own `vgg16.preprocess_input`, as a layer so the .tflite takes plain RGB."""

    def call(self, inputs: Any) -> Any:
        return vgg16.preprocess_input(inputs)


def reference(weights: Path) -> keras.Model:
    """The plain Keras VGG16, exactly as the tutorial used it (expects preprocessed input)."""
    return vgg16.VGG16(weights=str(weights))


def build(weights: Path) -> keras.Model:
    """VGG16 taking float32 RGB 0..255 (N, 224, 224, 3), giving softmax over 1000 classes."""
    inputs = keras.Input((224, 224, 3), dtype="float32", name="rgb")
    outputs = reference(weights)(VGG16Preprocess(name="preprocess")(inputs))
    return keras.Model(inputs, outputs, name="vgg16_rgb")


def download() -> Path:
    """Fetch the weights into the Keras cache (hash-checked, with Keras' progress bar)."""
    return Path(
        keras.utils.get_file(
            VGG16_WEIGHTS_FILE,
            VGG16_WEIGHTS_URL,
            cache_subdir="models",
            file_hash=VGG16_WEIGHTS_MD5,
        )
    )
