"""`dropsight bench --mode runtimes | accuracy`: every runtime side by side, in one run.

runtimes: img/s per runtime, precision and batch for both models; the decode cost; the
pipeline's limit, cores / (decode core-s + inference core-s per photo), each measured bare
here; and the service's burst against that limit.
accuracy: top-1 and top-5 agreement of each runtime and precision with LiteRT fp32.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from dropsight.config.settings import Settings
from dropsight.daemon.bench.main import bench_settings, phone_photos, photos, say
from dropsight.daemon.labels.imagenet import imagenet
from dropsight.daemon.photos import imaging
from dropsight.daemon.runtime import budget, timing
from dropsight.daemon.runtime.choice import BASELINE, agreement
from dropsight.daemon.runtime.classifier import open_as, open_classifier, runtime_candidates

MODELS = ("efficientnet-lite0", "vgg16")
BATCHES = (1, 16)


def cpu_flags() -> str:
    """The CPU's vector and matrix extensions that decide the runtime (AVX2, AVX-512, AMX)."""
    try:
        text = Path("/proc/cpuinfo").read_text("utf-8", errors="replace")
    except OSError:
        return ""
    flags = {f for line in text.splitlines() if line.startswith("flags") for f in line.split()}
    keep = sorted(f for f in flags if f.startswith(("avx512", "amx")) or f == "avx2")
    return " ".join(keep)


def cpu_name() -> str:
    """The CPU's model name."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return ""
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if "Model name" in ln), "")


def _settings_for(args: argparse.Namespace, model: str) -> Settings:
    return bench_settings(argparse.Namespace(**{**vars(args), "model": model}))


def _models(args: argparse.Namespace) -> list[str]:
    return list(MODELS) if args.model == "all" else [args.model]


def _predict_all(classifier: Any, x: np.ndarray, batch: int = 16) -> np.ndarray:
    return np.concatenate([classifier.predict(x[i : i + batch]) for i in range(0, len(x), batch)])


def bench_accuracy(args: argparse.Namespace) -> dict[str, Any]:
    """Agreement of each runtime/precision with LiteRT fp32 (and ImageNet accuracy where the
    photos' names start with their class's wnid, as in the ImageNet sample)."""
    files = _all_photos(args.images)
    truth = _wnids(files)
    out: dict[str, Any] = {"images": len(files)}
    for model in _models(args):
        s = _settings_for(args, model)
        cores = os.cpu_count() or 1
        reference_model = open_as(BASELINE, s, threads=cores)
        size = reference_model.info.input_size
        say(f"{model}: decoding {len(files)} photos ...")
        x = np.stack([imaging.load(p, size).pixels for p in files])
        ref = _predict_all(reference_model, x)
        del reference_model
        rows: dict[str, Any] = {}
        for candidate in runtime_candidates(s):
            say(f"{model}: {candidate.label} ...")
            probs = (
                ref
                if candidate == BASELINE
                else _predict_all(open_as(candidate, s, threads=cores), x)
            )
            row = {
                "top1_agreement": round(float(np.mean(probs.argmax(1) == ref.argmax(1))), 4),
                "top5_set_agreement": round(agreement(ref, probs), 4),
                "ref_top1_in_top5": round(_in_top5(ref.argmax(1), probs), 4),
            }
            if truth is not None:
                row["top1_accuracy"] = round(_in_top(truth, probs, 1), 4)
                row["top5_accuracy"] = round(_in_top5(truth, probs), 4)
            rows[candidate.label] = row
        out[model] = rows
    return out


def _all_photos(folder: Path | None) -> list[Path]:
    first = photos(folder, 1)[0]
    return sorted(
        p for p in first.parent.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )


def _wnids(files: list[Path]) -> np.ndarray | None:
    index = {w: i for i, w in enumerate(sorted(imagenet().wnids))}
    classes = [index.get(p.name.split("_", 1)[0]) for p in files]
    if any(c is None for c in classes):
        return None
    return np.array(classes)


def _in_top(truth: np.ndarray, probs: np.ndarray, k: int) -> float:
    top = np.argsort(-probs, axis=1)[:, :k]
    return float(np.mean([t in row for t, row in zip(truth, top, strict=True)]))


def _in_top5(truth: np.ndarray, probs: np.ndarray) -> float:
    return _in_top(truth, probs, 5)


def bench_runtimes(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Both models on every runtime; decode cost; the pipeline's limit; the service burst."""
    from dropsight.daemon.bench.e2e import _run_service

    cores = os.cpu_count() or 1
    out: dict[str, Any] = {"cpu": cpu_name(), "cpu_flags": cpu_flags(), "cores": cores}
    files = photos(args.images, 64)
    out["decode_core_ms"] = _decode_cost(files, work)
    decode_s = out["decode_core_ms"]["imagenet_size"] / 1000
    for model in _models(args):
        s = _settings_for(args, model)
        try:
            chosen = open_classifier(s)  # the automatic choice (timed once, remembered)
        except Exception as exc:
            out[model] = {"skipped": str(exc).splitlines()[0]}
            continue
        plan = budget.Request.of(s).plan(chosen.info.gflops)
        size = chosen.info.input_size
        x = np.stack([imaging.load(p, size).pixels for p in files[:32]])
        row: dict[str, Any] = {"chosen": chosen.describe().summary(model)}
        speeds: dict[str, Any] = {}
        for candidate in runtime_candidates(s):
            say(f"{model}: {candidate.label} on {cores} threads ...")
            c = open_as(candidate, s, threads=cores)
            speeds[candidate.label] = {
                f"batch_{b}": timing.throughputs(c, x, [b], args.bare_seconds / 2)[b]
                for b in BATCHES
            }
            if plan.lanes > 1:
                say(f"{model}: {candidate.label} as the service runs it ({plan.lanes} lanes) ...")
                laned = open_as(candidate, s, lanes=plan.lanes, threads=plan.threads_per_lane)
                speeds[candidate.label][f"{plan.lanes}_lanes_batch_1"] = timing.throughputs(
                    laned, x, [1], args.bare_seconds / 2
                )[1]
            del c
        row["img_s"] = speeds
        say(f"{model}: the chosen runtime bare, as the service runs it ...")
        bare = timing.throughputs(chosen, x, [plan.batch_size], args.bare_seconds)[plan.batch_size]
        row["chosen_bare_img_s"] = bare
        infer_s = cores / bare
        row["inference_core_ms"] = round(infer_s * 1000, 2)
        row["pipeline_limit_img_s"] = round(cores / (decode_s + infer_s), 1)
        started = time.perf_counter()
        again = open_classifier(s)
        again.predict(x[:1])
        row["restart_first_photo_ms"] = round((time.perf_counter() - started) * 1000, 1)
        lanes = again.describe().lanes  # each lane runs one photo at a time
        row["batch1_latency_ms"] = round(1000 * lanes / timing.throughput(again, x, 1, 1.0), 1)
        del again
        count = args.count or (48 if plan.take_turns else 600)
        burst_files = photos(args.images, count)
        say(f"{model}: service burst of {count} photos ...")
        service = _run_service(s, chosen, work / model, [("imagenet_size", burst_files)])
        burst = service["burst_imagenet_size"]
        row["service_burst"] = burst
        row["service_vs_limit"] = round(burst["img_s"] / row["pipeline_limit_img_s"], 2)
        litert = speeds[BASELINE.label][f"batch_{16 if plan.take_turns else 1}"]
        row["service_vs_bare_litert"] = round(burst["img_s"] / litert, 2)
        out[model] = row
    return out


def _decode_cost(files: list[Path], work: Path) -> dict[str, float]:
    """Median CPU ms of one thread to read, hash, decode and resize a photo."""

    def cost(paths: list[Path]) -> float:
        times = []
        for p in paths:
            started = time.thread_time()
            imaging.load(p)
            times.append((time.thread_time() - started) * 1000)
        return round(statistics.median(times), 2)

    phone = phone_photos(files[:8], work / "phone")
    return {"imagenet_size": cost(files[:32]), "12mp": cost(phone[:8] * 2)}
