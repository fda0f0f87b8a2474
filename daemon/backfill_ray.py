"""`dropsight backfill --ray`: the same job on a Ray cluster (placeholder until built)."""

from __future__ import annotations

from pathlib import Path

from dropsight.config.settings import Settings
from dropsight.daemon.backfill import Summary


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached."""


def run_ray(settings: Settings, roots: list[Path], address: str, *, dry_run: bool) -> Summary:
    """Label what is left under `roots` on a Ray cluster."""
    raise RayUnavailable("not built yet")
