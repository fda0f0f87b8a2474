"""A `.tflite` model on OpenVINO: read as it is (no second conversion), fp32 or bf16.

OpenVINO is the faster runtime where the CPU has AVX-512/AMX bf16, or an Intel GPU or NPU;
elsewhere LiteRT can win (daemon/runtime/choice.py decides by timing both).
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from dataclasses import replace
from typing import Any

import numpy as np

from dropsight.daemon.core import paths
from dropsight.daemon.models import store
from dropsight.daemon.runtime.protocol import Description, Device, ModelInfo, Precision

log = logging.getLogger(__name__)

# OpenVINO's names for our devices and precisions.
DEVICES: dict[Device, str] = {"cpu": "CPU", "gpu": "GPU", "npu": "NPU"}
PRECISIONS: dict[Precision, str] = {"fp32": "f32", "bf16": "bf16"}

_core: Any = None
_core_lock = threading.Lock()


def telemetry_off() -> None:
    """Keep OpenVINO's telemetry out of this process: nothing sent, nothing in ~/intel.

    `import openvino` imports its converter (openvino.tools.ovc), which sends an "import"
    event and writes a client id into ~/intel through the openvino_telemetry package. No
    setting turns that off in 2026.4 (OPENVINO_TELEMETRY_DISABLE is not read; only CI=true
    is): the converter falls back to its own no-op stub when that package cannot be
    imported, so it is marked unimportable here, before openvino is imported.
    """
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]


def module() -> Any:
    """The openvino package, imported with its telemetry off (never import it elsewhere)."""
    telemetry_off()
    import openvino

    return openvino


def cache_dir() -> str:
    """Where compiled models are kept, so a restart does not compile again."""
    return str(paths.cache_dir() / "openvino")


def core() -> Any:
    """The process's one OpenVINO Core (plugins load once), caching compiled models."""
    global _core
    with _core_lock:
        if _core is None:
            _core = module().Core()
        return _core


def version() -> str:
    """OpenVINO's version (a new one may change which runtime is faster)."""
    return str(module().get_version())


def available() -> bool:
    """True when OpenVINO is installed (a source install without it runs LiteRT only)."""
    try:
        core()
    except (ImportError, RuntimeError, OSError):
        return False
    return True


def devices() -> list[Device]:
    """The devices OpenVINO sees here, ours by name ("cpu", "gpu", "npu")."""
    seen = [str(d).split(".", 1)[0].upper() for d in core().available_devices]
    return [ours for ours, theirs in DEVICES.items() if theirs in seen]


def supports_bf16(device: Device = "cpu") -> bool:
    """True when the device computes bf16 natively (AVX512-BF16, AMX, a GPU)."""
    caps = core().get_property(DEVICES[device], "OPTIMIZATION_CAPABILITIES")
    return "BF16" in {str(c).upper() for c in caps}


class OpenVINOClassifier:
    """A model compiled once for `device`: `lanes` inference requests of `threads` threads.

    Thread-safe: each call borrows a free request, so up to `lanes` batches run at once
    (OpenVINO's streams). Any batch size runs: the batch dimension is left dynamic.
    """

    def __init__(
        self,
        artifact: store.ModelArtifact,
        info: ModelInfo,
        *,
        precision: Precision = "fp32",
        device: Device = "cpu",
        lanes: int = 1,
        threads: int = 1,
    ) -> None:
        lanes, threads = max(1, lanes), max(1, threads)
        self._description = Description("openvino", precision, device, lanes, threads)
        self.info = replace(info, runtime=self._description.label)
        ov = core()
        model = ov.read_model(str(artifact.path))
        h, w = info.input_size
        model.reshape({model.input(0): module().PartialShape([-1, h, w, 3])})
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": PRECISIONS[precision],
            "CACHE_DIR": cache_dir(),
        }
        if device == "cpu":
            config |= {"INFERENCE_NUM_THREADS": lanes * threads, "NUM_STREAMS": lanes}
        else:
            config |= {"PERFORMANCE_HINT": "THROUGHPUT" if lanes > 1 else "LATENCY"}
        self._compiled = ov.compile_model(model, DEVICES[device], config)
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        warm = np.zeros((1, h, w, 3), np.float32)
        for _ in range(lanes):
            request = self._compiled.create_infer_request()
            # The first inference of a shape plans its kernels (VGG16: +220 ms measured); done
            # here, while the model loads, not on the first photo after a restart.
            request.infer({0: warm})
            self._free.put(request)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch on a free inference request."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        request = self._free.get()
        try:
            request.infer({0: batch})  # releases the GIL: requests run in parallel
            return np.array(request.get_output_tensor(0).data, dtype=np.float32)
        finally:
            self._free.put(request)

    def describe(self) -> Description:
        """OpenVINO, its precision and device."""
        return self._description

    def timed(self, img_s: float) -> OpenVINOClassifier:
        """This classifier, describing the speed measured when it was chosen."""
        self._description = replace(self._description, img_s=img_s)
        return self
