"""How the service splits the machine's cores between decoding and inference."""

from __future__ import annotations

import os
from dataclasses import dataclass

from dropsight.config.settings import Settings

# Above this cost per image a model is "heavy": decoding is a small share of the work.
HEAVY_GFLOPS = 2.0
# A decode thread that only fills the gaps of a heavy model (Linux: per thread).
HEAVY_FILL_WAIT_S = 1.0  # about what one decoder needs for a batch of 16 12 MP photos


@dataclass(frozen=True)
class Budget:
    """Threads for each stage; `lanes` interpreters run side by side, each on its own thread."""

    decoders: int
    lanes: int
    threads_per_lane: int
    batch_size: int
    # How long a batch may wait to fill up while more photos are on their way: a full batch
    # is faster per photo for a heavy model; a lone photo never waits.
    fill_wait_s: float = 0.0
    take_turns: bool = False  # decoding and inference alternate (daemon/pipeline/turns.py)


@dataclass(frozen=True)
class Request:
    """What the settings ask of the machine: the one place they become a Budget."""

    batch_size: int  # [model] batch_size
    cores: int = 0  # [service] cores; 0: all
    decoders: int = 0  # [service] decode_threads; 0: from the plan

    @classmethod
    def of(cls, settings: Settings) -> Request:
        """The request the settings make."""
        s = settings.service
        return cls(settings.model.batch_size, s.cores, s.decode_threads)

    def plan(self, model_gflops: float) -> Budget:
        """The budget for a model of `model_gflops` per image."""
        return plan(model_gflops, self.batch_size, cpus=self.cores or None, decoders=self.decoders)


def plan(
    model_gflops: float,
    batch_size: int,
    *,
    cpus: int | None = None,
    decoders: int = 0,
) -> Budget:
    """The budget for a model of `model_gflops` per image on `cpus` cores (0 = automatic).

    Light models (EfficientNet-Lite0, ~0.4 GFLOPs): one single-threaded interpreter per core.
    A multi-threaded interpreter waits at every layer for its slowest thread, so a decode
    running on one core stalls the others; independent lanes just share the cores, and
    measured here two 1-thread lanes out-run one 2-thread interpreter (127 vs 121 img/s).
    Decoding costs about a third of the work, so decoders get one thread per two cores; one
    photo per call keeps each lane's working set in cache (measured faster than batches).

    Heavy models (VGG16, ~15.5 GFLOPs): one interpreter using every core on full batches,
    taking turns with decoders on every core (daemon/pipeline/turns.py); decoding is ~5% of
    the work.
    """
    cpus = max(1, cpus or os.cpu_count() or 1)
    if model_gflops >= HEAVY_GFLOPS:
        return Budget(
            decoders=decoders or cpus,
            lanes=1,
            threads_per_lane=cpus,
            batch_size=batch_size,
            fill_wait_s=HEAVY_FILL_WAIT_S,
            take_turns=True,
        )
    return Budget(
        decoders=decoders or max(1, cpus // 2),
        lanes=cpus,
        threads_per_lane=1,
        batch_size=1,
    )
