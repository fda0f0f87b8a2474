"""Model-test fixtures: a VGG16 weights file in Keras' own layout, generated once per run."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from dropsight.daemon.models.weights import VGG16_WEIGHTS_FILE


@pytest.fixture(scope="session")
def vgg16_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 553 MB VGG16 weights file like Keras' download (legacy HDF5 layout), random weights.

    Random weights give an almost uniform softmax, so the last layer is scaled up: the top-5
    classes are then well separated and a comparison of orderings means something.
    """
    import h5py
    import keras
    from keras.applications import vgg16
    from keras.src.legacy.saving import legacy_h5_format

    path = tmp_path_factory.mktemp("vgg16-weights") / VGG16_WEIGHTS_FILE
    keras.utils.set_random_seed(0)
    model = vgg16.VGG16(weights=None)
    w, b = model.get_layer("predictions").get_weights()
    model.get_layer("predictions").set_weights([w * 300, b])
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    del model
    keras.backend.clear_session()
    gc.collect()
    return path
