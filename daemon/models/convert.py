"""Build a Keras model and convert it to `.tflite`; run as a child process so TF stays out."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's C++ start-up chatter quiet

from dropsight.daemon.models import registry


def _say(msg: str) -> None:
    if sys.stderr is not None:
        print(f"dropsight: {msg}", file=sys.stderr, flush=True)


def convert(name: str, weights: Path, out: Path) -> None:
    """Build `name` from `weights` in Keras and write it to `out` as a float32 .tflite."""
    import tensorflow as tf

    from dropsight.daemon.core.atomic import write_bytes_atomic

    started = time.monotonic()
    _say(f"building {name} in Keras from {weights} ...")
    builder = importlib.import_module(registry.spec(name).builder)
    model = builder.build(weights)
    _say(
        f"converting {name} to LiteRT (a one-time step; VGG16 takes 30-45 s and about 6 GB "
        "of memory) ..."
    )
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    data = converter.convert()
    write_bytes_atomic(out, data)
    _say(f"converted {name} in {time.monotonic() - started:.0f} s ({len(data) / 1e6:.0f} MB)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m daemon.models.convert`."""
    p = argparse.ArgumentParser(prog="python -m daemon.models.convert")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert")
    c.add_argument("name")
    c.add_argument("weights", type=Path)
    c.add_argument("out", type=Path)
    sub.add_parser("download-vgg16")
    args = p.parse_args(argv)
    if args.cmd == "download-vgg16":
        from dropsight.daemon.models import keras_vgg16

        _say(f"downloaded {keras_vgg16.download()}")
        return 0
    convert(args.name, args.weights, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
