"""`dropsight bench --mode e2e`: a real service on a real folder against bare LiteRT, one run.

Bare LiteRT (one interpreter on every core, photos decoded beforehand) is timed for several
seconds before and after the bursts; the better of batch 1 and the configured batch is the
baseline, and its median and spread are printed, so a busy machine shows as a wide spread.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dropsight.config.settings import Settings, WatchSettings
from dropsight.daemon.bench.main import (
    bare_classifier,
    cpu_seconds,
    keras_model,
    phone_photos,
    photos,
    rate,
    say,
    time_for,
    wait,
)
from dropsight.daemon.photos import imaging
from dropsight.daemon.pipeline.crashguard import CrashGuard
from dropsight.daemon.runtime.classifier import Classifier, open_classifier
from dropsight.daemon.service.service import Service

HEAVY_GFLOPS = 2.0
GOALS = {  # from issue 12
    "light_burst_vs_bare": 0.6,
    "heavy_12mp_burst_vs_bare": 0.9,
    "cpu_busy_percent": 85.0,
    "latency_over_bare_b1_ms": 150.0,
    "heavy_12mp_vs_tutorial": 2.0,
}


def bench_e2e(args: argparse.Namespace, settings: Settings, work: Path) -> dict[str, Any]:
    """Bare before, bursts (ImageNet-size and 12 MP), single-photo latency, bare after."""
    classifier = open_classifier(settings)
    heavy = classifier.info.gflops >= HEAVY_GFLOPS
    count = args.count or (128 if heavy else 600)
    files = photos(args.images, count)
    say(f"making {min(count, 8)} distinct 12 MP photos ...")
    phone = phone_photos(files, work / "phone-src")
    bare = bare_classifier(settings)
    size = bare.info.input_size
    x = np.stack([imaging.load(p, size).pixels for p in files[:32]])
    batch = settings.model.batch_size
    out: dict[str, Any] = {"model": classifier.info.name, "cpu_count": os.cpu_count()}
    say(f"bare LiteRT for {args.bare_seconds:g} s at batch 1 and {batch} (before) ...")
    before = {str(b): time_for(bare.predict, x, b, args.bare_seconds) for b in (1, batch)}
    bursts = [("12mp", phone)] if heavy else [("imagenet_size", files), ("12mp", phone)]
    service_out = _run_service(settings, classifier, work, bursts)
    say("bare LiteRT again (after) ...")
    after = {str(b): time_for(bare.predict, x, b, args.bare_seconds) for b in (1, batch)}
    best = max(("1", str(batch)), key=lambda b: before[b]["median"] + after[b]["median"])
    bare_rate = statistics.median([before[best]["median"], after[best]["median"]])
    bare_b1 = statistics.median([before["1"]["median"], after["1"]["median"]])
    out["bare_litert_img_s"] = {"before": before, "after": after, "baseline_batch": int(best)}
    out["bare_img_s"] = round(bare_rate, 2)
    out.update(service_out)
    out["bare_batch1_latency_ms"] = round(1000 / bare_b1, 1)
    if heavy:
        say("the tutorial's way (Keras load_img + predict, one photo at a time) ...")
        out["tutorial_12mp_img_s"] = _tutorial_rate(args, settings, phone[:16])
    out["goals"] = _goals(out, heavy)
    return out


def _run_service(
    settings: Settings,
    classifier: Classifier,
    work: Path,
    bursts: list[tuple[str, list[Path]]],
) -> dict[str, Any]:
    """Bursts into a running service; img/s and how busy the cores were."""
    folder = work / "watched"
    folder.mkdir(parents=True)
    s = Settings(
        watch=WatchSettings(folders=(folder,), rescan_interval_s=0),
        model=settings.model,
        output=settings.output,
        service=settings.service,
    )
    # As `dropsight service` runs it: with the crash guard's journal of photos in flight.
    guard = CrashGuard(work / "state")
    guard.open()
    service = Service(s, classifier_factory=lambda _s: classifier, guard=guard)
    service.start()
    out: dict[str, Any] = {}
    try:
        wait(lambda: service.status()["state"] == "idle", 600, "the service to be idle")
        out["pipeline"] = service.status().get("pipeline")
        for label, burst in bursts:
            say(f"burst of {len(burst)} {label} photos ...")
            out[f"burst_{label}"] = _burst(service, folder / label, burst)
            wait(lambda: service.status()["state"] == "idle", 120, "idle after the burst")
        say("single-photo latency (12 MP, idle service) ...")
        latencies = []
        for i, f in enumerate(bursts[-1][1][:5]):
            time.sleep(0.5)
            target = folder / f"single_{i}.jpg"
            started = time.perf_counter()
            shutil.copy(f, target)
            wait(target.with_name(target.name + ".json").exists, 120, "a single sidecar")
            latencies.append((time.perf_counter() - started) * 1000)
        out["single_12mp_latency_ms"] = round(statistics.median(latencies), 1)
        say("idle CPU over 5 s ...")
        cpu = cpu_seconds()
        time.sleep(5)
        out["idle_cpu_percent"] = round((cpu_seconds() - cpu) / 5 * 100, 2)
    finally:
        service.join()
        guard.close()
    return out


def _burst(service: Service, dest: Path, files: list[Path]) -> dict[str, Any]:
    """Copy `files` in at once; time until every sidecar exists, and CPU use meanwhile."""
    dest.mkdir()
    a = service.activity
    expected = a.done + a.failed + len(files)
    cpu, started = cpu_seconds(), time.perf_counter()
    for i, f in enumerate(files):
        shutil.copy(f, dest / f"{i:04d}{f.suffix}")
    # The service's own counters: listing the folder to count sidecars would cost the
    # service CPU time it is being measured on.
    wait(lambda: a.done + a.failed >= expected, 3600, f"{len(files)} sidecars")
    wall = time.perf_counter() - started
    written = len(list(dest.glob("*.json")))
    if written != len(files):
        raise SystemExit(f"bench: {written} sidecars for {len(files)} photos")
    busy = (cpu_seconds() - cpu) / (wall * (os.cpu_count() or 1)) * 100
    return {
        "photos": len(files),
        "img_s": rate(len(files), wall),
        "cpu_busy_percent": round(busy, 1),
    }


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
        model = keras_model(args.model, settings.model, str(settings.source))
        preprocess = lambda a: a  # noqa: E731  (preprocessing is inside this model)
    model.predict(np.zeros((1, 224, 224, 3), np.float32), verbose=0)
    started = time.perf_counter()
    for f in files:
        img = keras.utils.load_img(f, target_size=(224, 224))
        arr = keras.utils.img_to_array(img)[None]
        model.predict(preprocess(arr), verbose=0)
    return rate(len(files), time.perf_counter() - started)


def _goals(out: dict[str, Any], heavy: bool) -> dict[str, Any]:
    """Each goal of issue 12 with the measured value beside it."""
    bare = out["bare_img_s"]
    goals: dict[str, Any] = {}
    if heavy:
        burst = out["burst_12mp"]
        goals["12mp_burst_vs_bare"] = {
            "value": round(burst["img_s"] / bare, 2),
            "goal": GOALS["heavy_12mp_burst_vs_bare"],
        }
        goals["12mp_burst_vs_tutorial"] = {
            "value": round(burst["img_s"] / out["tutorial_12mp_img_s"], 2),
            "goal": GOALS["heavy_12mp_vs_tutorial"],
        }
    else:
        burst = out["burst_imagenet_size"]
        goals["burst_vs_bare"] = {
            "value": round(burst["img_s"] / bare, 2),
            "goal": GOALS["light_burst_vs_bare"],
        }
    goals["cpu_busy_percent"] = {
        "value": burst["cpu_busy_percent"],
        "goal": GOALS["cpu_busy_percent"],
    }
    goals["latency_over_bare_b1_ms"] = {
        "value": round(out["single_12mp_latency_ms"] - out["bare_batch1_latency_ms"], 1),
        "goal": GOALS["latency_over_bare_b1_ms"],
    }
    for goal in goals.values():
        lower_is_better = goal is goals["latency_over_bare_b1_ms"]
        goal["met"] = (
            goal["value"] <= goal["goal"] if lower_is_better else goal["value"] >= goal["goal"]
        )
    return goals
