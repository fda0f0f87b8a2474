"""EfficientNet-Lite0 built in Keras and loaded from the lukemelas-style PyTorch weights."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers

from dropsight.daemon.models.torch_legacy import WeightsFileError, load_state_dict

NAME = "efficientnet-lite0"
INPUT_SIZE = 224
NUM_CLASSES = 1000

# EfficientNet-Lite0 stages as (repeats, kernel, first stride, expand ratio, output channels);
# Lite keeps the stem (32) and head (1280) fixed and drops squeeze-excite.
_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
_STEM = 32
_HEAD = 1280
# TF's EfficientNet epsilon; PyTorch's default 1e-5 would shift every activation slightly.
_BN_EPS = 1e-3


class _Builder:
    """Builds the graph and remembers which Keras layer each state-dict prefix feeds."""

    def __init__(self) -> None:
        self.by_prefix: dict[str, layers.Layer] = {}

    def track(self, prefix: str, layer: layers.Layer) -> layers.Layer:
        self.by_prefix[prefix] = layer
        return layer

    def conv_bn(
        self, x: keras.KerasTensor, conv: str, bn: str, filters: int, act: bool
    ) -> keras.KerasTensor:
        """1x1 (or stem 3x3) convolution, batch norm, optional ReLU6."""
        name = conv.replace(".", "_").strip("_")
        kernel, stride = (3, 2) if conv == "_conv_stem" else (1, 1)
        conv_layer = layers.Conv2D(
            filters, kernel, stride, padding="same", use_bias=False, name=name
        )
        x = self.track(conv, conv_layer)(x)
        x = self.bn(x, bn)
        return layers.ReLU(6.0, name=f"{name}_relu6")(x) if act else x

    def bn(self, x: keras.KerasTensor, prefix: str) -> keras.KerasTensor:
        """Batch norm with TF's epsilon, named after its state-dict prefix."""
        name = prefix.replace(".", "_").strip("_")
        return self.track(prefix, layers.BatchNormalization(epsilon=_BN_EPS, name=name))(x)

    def block(
        self, x: keras.KerasTensor, i: int, *, kernel: int, stride: int, expand: int, out: int
    ) -> keras.KerasTensor:
        """Inverted residual (MBConv) block without squeeze-excite, as in EfficientNet-Lite."""
        p = f"_blocks.{i}."
        inp = x
        channels = int(x.shape[-1])
        if expand != 1:
            x = self.conv_bn(x, p + "_expand_conv", p + "_bn0", channels * expand, act=True)
        dw = layers.DepthwiseConv2D(
            kernel, stride, padding="same", use_bias=False, name=f"blocks_{i}_depthwise_conv"
        )
        x = self.track(p + "_depthwise_conv", dw)(x)
        x = self.bn(x, p + "_bn1")
        x = layers.ReLU(6.0, name=f"blocks_{i}_depthwise_relu6")(x)
        x = self.conv_bn(x, p + "_project_conv", p + "_bn2", out, act=False)
        if stride == 1 and channels == out:
            x = layers.Add(name=f"blocks_{i}_add")([inp, x])
        return x


def _architecture() -> tuple[keras.Model, dict[str, layers.Layer]]:
    """The untrained network plus the state-dict prefix -> layer map."""
    b = _Builder()
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), dtype="float32", name="image")
    # (x - 127) / 128 inside the model, so every runtime feeds plain 0..255 RGB.
    x = layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="preprocess")(inputs)
    x = b.conv_bn(x, "_conv_stem", "_bn0", _STEM, act=True)
    i = 0
    for repeats, kernel, stride, expand, out in _STAGES:
        for r in range(repeats):
            x = b.block(x, i, kernel=kernel, stride=stride if r == 0 else 1, expand=expand, out=out)
            i += 1
    x = b.conv_bn(x, "_conv_head", "_bn1", _HEAD, act=True)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    # Dropout (0.2 in training) is the identity at inference, so it is left out.
    x = b.track("_fc", layers.Dense(NUM_CLASSES, name="fc"))(x)
    outputs = layers.Activation("softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="efficientnet_lite0"), b.by_prefix


def _keras_weights(layer: layers.Layer, prefix: str, sd: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The layer's weights, in Keras order and layout, taken from the state dict."""
    if isinstance(layer, layers.BatchNormalization):
        return [sd[prefix + s] for s in (".weight", ".bias", ".running_mean", ".running_var")]
    w = sd[prefix + ".weight"]
    if isinstance(layer, layers.DepthwiseConv2D):
        return [w.transpose(2, 3, 0, 1)]  # (C, 1, H, W) -> (H, W, C, 1)
    if isinstance(layer, layers.Conv2D):
        return [w.transpose(2, 3, 1, 0)]  # OIHW -> HWIO
    if isinstance(layer, layers.Dense):
        return [w.T, sd[prefix + ".bias"]]  # (out, in) -> (in, out)
    raise TypeError(f"no weight mapping for {type(layer).__name__}")


def _expected_keys(layer: layers.Layer, prefix: str) -> set[str]:
    """State-dict keys a layer consumes (num_batches_tracked is a training counter)."""
    suffixes: tuple[str, ...]
    if isinstance(layer, layers.BatchNormalization):
        suffixes = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    elif isinstance(layer, layers.Dense):
        suffixes = ("weight", "bias")
    else:
        suffixes = ("weight",)
    return {f"{prefix}.{s}" for s in suffixes}


def build(weights: Path) -> keras.Model:
    """EfficientNet-Lite0: float32 [N, 224, 224, 3] RGB 0..255 in, softmax [N, 1000] out."""
    sd = load_state_dict(weights)
    model, by_prefix = _architecture()
    wanted = set().union(*(_expected_keys(layer, p) for p, layer in by_prefix.items()))
    # Both directions: a leftover tensor means a layer we did not build, a missing one a
    # different checkpoint; either would give silently wrong labels.
    missing, unused = sorted(wanted - sd.keys()), sorted(sd.keys() - wanted)
    if missing or unused:
        raise WeightsFileError(
            f"{weights}: not an EfficientNet-Lite0 state dict "
            f"(missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unused {unused[:5]}{'...' if len(unused) > 5 else ''})"
        )
    assigned: set[str] = set()
    for prefix, layer in by_prefix.items():
        values = _keras_weights(layer, prefix, sd)
        try:
            layer.set_weights(values)
        except ValueError as exc:
            raise WeightsFileError(
                f"{weights}: {prefix} does not fit layer {layer.name}: {exc}"
            ) from exc
        assigned.update(v.path for v in layer.weights)
    unassigned = [v.path for v in model.weights if v.path not in assigned]
    if unassigned:
        raise RuntimeError(f"Keras weights left at their initial values: {unassigned}")
    return model
