"""What every model runtime offers: load a model file, predict a batch, describe itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

RuntimeName = Literal["litert", "openvino"]
Precision = Literal["fp32", "bf16"]
Device = Literal["cpu", "gpu", "npu"]

RUNTIME_TITLES: dict[str, str] = {"litert": "LiteRT", "openvino": "OpenVINO"}


@dataclass(frozen=True)
class ModelInfo:
    """What produced the labels: recorded in status and in every sidecar."""

    name: str
    fingerprint: str  # the model's weights and version, never the runtime: no relabelling
    input_size: tuple[int, int]
    runtime: str = "litert-fp32"  # runtime and precision, as the sidecar records them
    requested: str = ""
    fallback_reason: str | None = None
    gflops: float = 0.0  # cost per image; decides how cores are shared (daemon/runtime/budget.py)
    requested_missing: bool = False  # the fallback runs because the weights are not here

    @property
    def is_fallback(self) -> bool:
        """True when the configured model could not load and another one runs instead."""
        return self.fallback_reason is not None


@dataclass(frozen=True)
class Description:
    """How a classifier runs: which runtime, at what precision, where, on how many threads."""

    runtime: RuntimeName
    precision: Precision
    device: Device = "cpu"
    lanes: int = 1  # batches that run side by side
    threads: int = 1  # threads per lane
    img_s: float | None = None  # measured when the runtime was chosen (None: not timed)

    @property
    def label(self) -> str:
        """Runtime and precision as the sidecar records them: "openvino-bf16"."""
        return f"{self.runtime}-{self.precision}"

    def summary(self, model: str) -> str:
        """One line for people: "vgg16 on OpenVINO (fp32, CPU), 9 img/s"."""
        where = f", {self.device.upper()}" if self.device != "cpu" else ""
        speed = f", {self.img_s:.3g} img/s" if self.img_s else ""
        return f"{model} on {RUNTIME_TITLES[self.runtime]} ({self.precision}{where}){speed}"


class Classifier(Protocol):
    """Anything that maps a batch of RGB images to ImageNet class probabilities."""

    info: ModelInfo

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) float32 RGB 0..255 -> (N, 1000) probabilities."""
        ...

    def describe(self) -> Description:
        """Runtime, precision, device and threads this classifier runs with."""
        ...
