"""`dropsight bench`: model throughput, decode cost, and end-to-end service figures."""

from __future__ import annotations

import argparse
import json
import os
import resource
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

from dropsight.config.settings import ModelSettings, Settings, WatchSettings
from dropsight.config.settings import load as load_settings
from dropsight.daemon import imaging, paths
from dropsight.daemon.classifier import load_classifier

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample-100"
PHONE_SIZE = (4032, 3024)  # a 12 MP phone photo


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Bench options."""
    p.add_argument("--model", default="efficientnet-lite0", help="model to measure")
    p.add_argument("--images", type=Path, help=f"folder of photos (default: {SAMPLE})")
    p.add_argument("--mode", choices=("model", "e2e", "all"), default="all")
    p.add_argument("--count", type=int, default=64, help="photos per burst / throughput run")
    p.add_argument(
        "--random-weights",
        action="store_true",
        help="VGG16 without its weights file: time a same-shaped network with random weights",
    )
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")


def _say(msg: str) -> None:
    if sys.stderr is not None:
        print(f"bench: {msg}", file=sys.stderr, flush=True)


def _photos(folder: Path | None, count: int) -> list[Path]:
    folder = folder or SAMPLE
    if not folder.is_dir():
        raise SystemExit(f"bench: no photos at {folder}; pass --images DIR")
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not found:
        raise SystemExit(f"bench: no .jpg/.png photos in {folder}")
    return [found[i % len(found)] for i in range(count)]


def _phone_photos(src: list[Path], out: Path) -> list[Path]:
    """12 MP JPEGs (quality 90) made by scaling the input photos up."""
    out.mkdir(parents=True, exist_ok=True)
    made: dict[Path, Path] = {}
    result = []
    for i, p in enumerate(src):
        if p not in made:
            with Image.open(p) as im:
                big = im.convert("RGB").resize(PHONE_SIZE, Image.Resampling.BICUBIC)
            made[p] = out / f"{p.stem}_12mp.jpg"
            big.save(made[p], quality=90)
        dest = out / f"{i:04d}_{made[p].name}"
        if dest != made[p]:
            shutil.copy(made[p], dest)
        result.append(dest)
    return result


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 2) if seconds > 0 else float("inf")


def _vgg16_random_weights(folder: Path) -> Path:
    """A VGG16 weights file in Keras' layout with random values (same compute as the real)."""
    import h5py
    import keras
    from keras.applications import vgg16
    from keras.src.legacy.saving import legacy_h5_format

    path = folder / "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    if not path.exists():
        keras.utils.set_random_seed(0)
        with h5py.File(path, "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, vgg16.VGG16(weights=None))
    return path


def _settings(args: argparse.Namespace) -> Settings:
    config = args.config if args.config is not None else paths.config_file()
    s = load_settings(config)
    model = replace(s.model, name=args.model, fallback="")
    if args.model == "vgg16" and args.random_weights:
        model = replace(model, weights=_vgg16_random_weights(paths.cache_dir()))
    return replace(s, model=model)


def _keras_model(name: str, model: ModelSettings, config_name: str) -> Any:
    """The Keras reference model (with preprocessing inside), built from the same weights."""
    from dropsight.daemon.models import weights as w

    if name == "vgg16":
        from dropsight.daemon.models import keras_vgg16

        found = w.find_vgg16(model.weights, allow_download=False, config_name=config_name)
        return keras_vgg16.build(found.path)
    from dropsight.daemon.models import keras_efficientnet_lite

    return keras_efficientnet_lite.build(w.find_efficientnet_lite0().path)


def _time_batches(fn: Callable[[np.ndarray], Any], x: np.ndarray, batch: int) -> float:
    fn(x[:batch])  # warm-up (plans, allocations)
    started = time.perf_counter()
    for i in range(0, len(x) - batch + 1, batch):
        fn(x[i : i + batch])
    return _rate((len(x) // batch) * batch, time.perf_counter() - started)


def bench_model(args: argparse.Namespace, settings: Settings, work: Path) -> dict[str, Any]:
    """Keras vs LiteRT throughput at batch 1 and 16, and decode cost full vs draft."""
    photos = _photos(args.images, args.count)
    classifier = load_classifier(settings)
    size = classifier.info.input_size
    x = np.stack([imaging.prepare(p, size).pixels for p in photos])
    out: dict[str, Any] = {"model": classifier.info.name, "images": len(photos)}
    _say("LiteRT throughput ...")
    out["litert_img_s"] = {str(b): _time_batches(classifier.predict, x, b) for b in (1, 16)}
    _say("Keras reference throughput ...")
    keras_model = _keras_model(args.model, settings.model, str(settings.source))
    out["keras_img_s"] = {
        str(b): _time_batches(lambda a: keras_model.predict(a, verbose=0), x, b) for b in (1, 16)
    }
    _say("decode cost ...")
    phone = _phone_photos(photos[:8], work / "phone")
    out["decode_ms"] = {
        "normal_full": _decode_ms(photos[:32], draft=False),
        "normal_draft": _decode_ms(photos[:32], draft=True),
        "12mp_full": _decode_ms(phone, draft=False),
        "12mp_draft": _decode_ms(phone, draft=True),
    }
    return out


def _decode_ms(files: list[Path], *, draft: bool) -> float:
    times = []
    for p in files:
        data, facts = imaging.read_file(p)
        started = time.perf_counter()
        if draft:
            imaging.prepare_bytes(data, facts)
        else:
            import io

            with Image.open(io.BytesIO(data)) as im:
                im.convert("RGB").resize((224, 224), Image.Resampling.BICUBIC)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def bench_e2e(args: argparse.Namespace, settings: Settings, work: Path) -> dict[str, Any]:
    """A real service on a real folder: burst throughput, single-photo latency, idle CPU."""
    from dropsight.daemon.service import Service

    photos = _photos(args.images, args.count)
    phone = _phone_photos(photos, work / "phone-src")
    classifier = load_classifier(settings)
    size = classifier.info.input_size
    x = np.stack([imaging.prepare(p, size).pixels for p in photos[:32]])
    bare = {str(b): _time_batches(classifier.predict, x, b) for b in (1, settings.model.batch_size)}
    bare_b1_ms = round(1000 / bare["1"], 1)
    out: dict[str, Any] = {"model": classifier.info.name, "bare_litert_img_s": bare}

    folder = work / "watched"
    folder.mkdir(parents=True)
    s = replace(
        settings,
        watch=WatchSettings(folders=(folder,), rescan_interval_s=0),
    )
    service = Service(s, classifier_factory=lambda _s: classifier)
    service.start()
    try:
        _wait(lambda: service.status()["state"] == "idle", 600)
        for label, files in (("imagenet_size", photos), ("12mp", phone)):
            _say(f"burst of {len(files)} {label} photos ...")
            dest = folder / label
            dest.mkdir()
            started = time.perf_counter()
            for i, f in enumerate(files):
                shutil.copy(f, dest / f"{i:04d}{f.suffix}")
            _wait(_count_is(dest, len(files)), 3600)
            out[f"burst_{label}_img_s"] = _rate(len(files), time.perf_counter() - started)
        _wait(lambda: service.status()["state"] == "idle", 60)
        _say("single-photo latency ...")
        lat = []
        for i, f in enumerate(phone[:5]):
            time.sleep(0.5)
            target = folder / f"single_{i}.jpg"
            started = time.perf_counter()
            shutil.copy(f, target)
            _wait(target.with_name(target.name + ".json").exists, 60)
            lat.append((time.perf_counter() - started) * 1000)
        out["single_12mp_latency_ms"] = round(statistics.median(lat), 1)
        out["bare_batch1_latency_ms"] = bare_b1_ms
        _say("idle CPU over 5 s ...")
        before = _cpu_s()
        time.sleep(5)
        out["idle_cpu_percent"] = round((_cpu_s() - before) / 5 * 100, 2)
    finally:
        service.join()

    _say("the tutorial's way (Keras load_img + predict, one at a time) ...")
    out["tutorial_12mp_img_s"] = _tutorial_rate(args, settings, phone[: min(8, len(phone))])
    b = str(settings.model.batch_size)
    out["targets"] = {
        "burst_12mp_vs_bare_batched": round(out["burst_12mp_img_s"] / bare[b], 2),
        "burst_12mp_vs_tutorial": round(out["burst_12mp_img_s"] / out["tutorial_12mp_img_s"], 2),
        "latency_over_bare_batch1_ms": round(out["single_12mp_latency_ms"] - bare_b1_ms, 1),
    }
    return out


def _tutorial_rate(args: argparse.Namespace, settings: Settings, files: list[Path]) -> float:
    """The original tutorial: keras load_img(target_size=224) + preprocess + predict per photo."""
    import keras

    from dropsight.daemon.models import weights as w

    if args.model == "vgg16":
        from keras.applications import vgg16

        found = w.find_vgg16(
            settings.model.weights, allow_download=False, config_name=str(settings.source)
        )
        model = vgg16.VGG16(weights=str(found.path))
        preprocess: Callable[[Any], Any] = vgg16.preprocess_input
    else:
        model = _keras_model(args.model, settings.model, str(settings.source))
        preprocess = lambda a: a  # noqa: E731  (preprocessing is inside this model)
    model.predict(np.zeros((1, 224, 224, 3), np.float32), verbose=0)
    started = time.perf_counter()
    for f in files:
        img = keras.utils.load_img(f, target_size=(224, 224))
        arr = keras.utils.img_to_array(img)[None]
        model.predict(preprocess(arr), verbose=0)
    return _rate(len(files), time.perf_counter() - started)


def _count_is(folder: Path, n: int) -> Callable[[], bool]:
    return lambda: len(list(folder.glob("*.json"))) == n


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _wait(cond: Callable[[], bool], timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > end:
            raise SystemExit("bench: timed out")
        time.sleep(0.01)


def run_bench(args: argparse.Namespace) -> int:
    """Run the selected benchmarks and print their figures."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    settings = _settings(args)
    result: dict[str, Any] = {"cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="dropsight-bench-") as tmp:
        work = Path(tmp)
        if args.mode in ("model", "all"):
            result["model_bench"] = bench_model(args, settings, work / "model")
        if args.mode in ("e2e", "all"):
            result["e2e"] = bench_e2e(args, settings, work / "e2e")
    print(json.dumps(result, indent=None if args.json else 2))
    return 0
