"""`dropsight bench`: model throughput, decode cost, end-to-end service figures (numbers only)."""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dropsight.config.settings import ModelSettings, Settings
from dropsight.config.settings import load as load_settings
from dropsight.daemon.contracts import ExitCode
from dropsight.daemon.core import paths
from dropsight.daemon.photos import imaging
from dropsight.daemon.runtime.choice import BASELINE
from dropsight.daemon.runtime.classifier import Classifier, open_as

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "imagenet-sample-100"
PHONE_SIZE = (4032, 3024)  # a 12 MP phone photo
PHONE_SOURCES = 8  # distinct 12 MP photos made per run; the rest are copies


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Bench options."""
    p.add_argument(
        "--model",
        choices=("efficientnet-lite0", "vgg16", "all"),
        help="model to measure (default: efficientnet-lite0; both for --mode runtimes)",
    )
    p.add_argument("--images", type=Path, help=f"folder of photos (default: {SAMPLE})")
    p.add_argument(
        "--mode",
        choices=("model", "e2e", "search", "backfill", "runtimes", "accuracy", "all"),
        default="all",
        help="runtimes: every runtime side by side, the pipeline's limit and the service burst; "
        "accuracy: each runtime's label agreement with LiteRT fp32",
    )
    p.add_argument(
        "--photos", type=int, default=1_000_000, help="search: synthetic photos in the index"
    )
    p.add_argument(
        "--count", type=int, default=0, help="photos per burst (default: 600 light, 48 heavy)"
    )
    p.add_argument(
        "--bare-seconds", type=float, default=6.0, help="how long bare LiteRT is timed, each time"
    )
    p.add_argument(
        "--random-weights",
        action="store_true",
        help="VGG16 without its weights file: time a same-shaped network with random weights",
    )
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")


def say(msg: str) -> None:
    """Progress on stderr (numbers go to stdout)."""
    if sys.stderr is not None:
        print(f"bench: {msg}", file=sys.stderr, flush=True)


def photos(folder: Path | None, count: int) -> list[Path]:
    """`count` photo paths from `folder`, repeating when it has fewer."""
    folder = folder or SAMPLE
    if not folder.is_dir():
        raise SystemExit(f"bench: no photos at {folder}; pass --images DIR")
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not found:
        raise SystemExit(f"bench: no .jpg/.png photos in {folder}")
    return [found[i % len(found)] for i in range(count)]


def phone_photos(src: list[Path], out: Path) -> list[Path]:
    """12 MP JPEGs (quality 90) made by scaling input photos up; copies beyond the first few."""
    out.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    for i, p in enumerate(dict.fromkeys(src[:PHONE_SOURCES])):
        with Image.open(p) as im:
            big = im.convert("RGB").resize(PHONE_SIZE, Image.Resampling.BICUBIC)
        made.append(out / f"src_{i}_12mp.jpg")
        big.save(made[-1], quality=90)
    return [made[i % len(made)] for i in range(len(src))]


def rate(n: int, seconds: float) -> float:
    """Items per second, rounded."""
    return round(n / seconds, 2) if seconds > 0 else float("inf")


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (portable: no `resource`)."""
    t = os.times()
    return t.user + t.system


def wait(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `cond` until true, or stop the bench with a message."""
    end = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > end:
            raise SystemExit(f"bench: timed out waiting for {what}")
        time.sleep(0.01)


def _vgg16_random_weights(folder: Path) -> Path:
    """A VGG16 weights file in Keras' layout with random values (same compute as the real)."""
    import h5py
    import keras
    from keras.applications import vgg16
    from keras.src.legacy.saving import legacy_h5_format

    path = folder / "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        keras.utils.set_random_seed(0)
        with h5py.File(path, "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, vgg16.VGG16(weights=None))
    return path


def bench_settings(args: argparse.Namespace) -> Settings:
    """The user's settings with the benchmarked model and no fallback."""
    config = args.config if args.config is not None else paths.config_file()
    s = load_settings(config)
    model = replace(s.model, name=args.model, fallback="")
    if args.model == "vgg16" and args.random_weights:
        model = replace(model, weights=_vgg16_random_weights(paths.cache_dir() / "bench"))
    return replace(s, model=model)


def bare_classifier(settings: Settings) -> Classifier:
    """The model the plain way: one LiteRT interpreter using every core."""
    return open_as(BASELINE, settings, threads=os.cpu_count() or 1)


def time_batches(fn: Callable[[np.ndarray], Any], x: np.ndarray, batch: int) -> float:
    """img/s of `fn` over `x` in batches of `batch` (after one warm-up call)."""
    fn(x[:batch])  # warm-up (plans, allocations)
    started = time.perf_counter()
    for i in range(0, len(x) - batch + 1, batch):
        fn(x[i : i + batch])
    return rate((len(x) // batch) * batch, time.perf_counter() - started)


def time_for(
    fn: Callable[[np.ndarray], Any], x: np.ndarray, batch: int, seconds: float
) -> dict[str, float]:
    """img/s in one-second windows for `seconds`: median, min and max."""
    fn(x[:batch])
    windows: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < 1.0:
            for i in range(0, len(x) - batch + 1, batch):
                fn(x[i : i + batch])
                n += batch
        windows.append(n / (time.perf_counter() - started))
    return {
        "median": round(statistics.median(windows), 2),
        "min": round(min(windows), 2),
        "max": round(max(windows), 2),
        "windows": len(windows),
    }


def keras_model(name: str, model: ModelSettings, config_name: str) -> Any:
    """The Keras reference model (with preprocessing inside), built from the same weights."""
    from dropsight.daemon.models import weights as w

    if name == "vgg16":
        from dropsight.daemon.models import keras_vgg16

        found = w.find_vgg16(model.weights, allow_download=False, config_name=config_name)
        return keras_vgg16.build(found.path)
    from dropsight.daemon.models import keras_efficientnet_lite

    return keras_efficientnet_lite.build(w.find_efficientnet_lite0().path)


def bench_model(args: argparse.Namespace, settings: Settings, work: Path) -> dict[str, Any]:
    """Keras vs LiteRT throughput at batch 1 and 16, and decode cost full vs draft."""
    files = photos(args.images, 64)
    classifier = bare_classifier(settings)
    size = classifier.info.input_size
    x = np.stack([imaging.load(p, size).pixels for p in files])
    out: dict[str, Any] = {"model": classifier.info.name, "images": len(files)}
    say("LiteRT throughput ...")
    out["litert_img_s"] = {str(b): time_batches(classifier.predict, x, b) for b in (1, 16)}
    say("Keras reference throughput ...")
    reference = keras_model(args.model, settings.model, str(settings.source))
    out["keras_img_s"] = {
        str(b): time_batches(lambda a: reference.predict(a, verbose=0), x, b) for b in (1, 16)
    }
    say("decode cost ...")
    phone = phone_photos(files[:8], work / "phone")
    out["decode_ms"] = {
        "normal_full": _decode_ms(files[:32], draft=False),
        "normal_draft": _decode_ms(files[:32], draft=True),
        "12mp_full": _decode_ms(phone, draft=False),
        "12mp_draft": _decode_ms(phone, draft=True),
    }
    return out


def _decode_ms(files: list[Path], *, draft: bool) -> float:
    times = []
    for p in files:
        read = imaging.read_file(p)
        data, facts = read.data, read.facts
        started = time.perf_counter()
        if draft:
            imaging.prepare_bytes(data, facts)
        else:
            with Image.open(io.BytesIO(data)) as im:
                im.convert("RGB").resize((224, 224), Image.Resampling.BICUBIC)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def run_bench(args: argparse.Namespace) -> int:
    """Run the selected benchmarks and print their figures."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.model is None:
        args.model = "all" if args.mode == "runtimes" else "efficientnet-lite0"
    if args.mode in ("runtimes", "accuracy"):
        from dropsight.daemon.bench import runtimes

        work = Path(tempfile.mkdtemp(prefix="dropsight-bench-"))
        try:
            if args.mode == "runtimes":
                figures = runtimes.bench_runtimes(args, work)
            else:
                figures = runtimes.bench_accuracy(args)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(json.dumps(figures, indent=None if args.json else 2))
        return ExitCode.OK
    if args.model == "all":
        raise SystemExit("bench: --model all is for --mode runtimes and accuracy")
    settings = bench_settings(args)
    result: dict[str, Any] = {"cpu_count": os.cpu_count()}
    work = Path(tempfile.mkdtemp(prefix="dropsight-bench-"))
    try:
        if args.mode == "backfill":
            from dropsight.daemon.bench.backfill import bench_backfill

            result["backfill"] = bench_backfill(args, settings, work / "backfill")
        if args.mode == "search":
            from dropsight.daemon.bench.search import bench_search

            result["search"] = bench_search(args.photos, work)
        if args.mode in ("model", "all"):
            result["model_bench"] = bench_model(args, settings, work / "model")
        if args.mode in ("e2e", "all"):
            from dropsight.daemon.bench.e2e import bench_e2e

            result["e2e"] = bench_e2e(args, settings, work / "e2e")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=None if args.json else 2))
    return ExitCode.OK
