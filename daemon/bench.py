"""`dropsight bench`: throughput and latency figures (placeholder until filled in)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Bench options."""
    p.add_argument("--model", default="efficientnet-lite0")
    p.add_argument("--json", action="store_true")


def run_bench(args: argparse.Namespace) -> int:
    """Run the benchmark."""
    raise SystemExit("bench: not written yet")
