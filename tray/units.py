"""Sizes and rates as the tray and viewer write them: one helper, so "553 MB" is "553 MB"."""

from __future__ import annotations


def human_size(n_bytes: float) -> str:
    """A byte count the way the desktop's file managers say it: "553 MB", "1.2 GB" (SI)."""
    value = float(n_bytes)
    for unit in ("bytes", "kB", "MB", "GB"):
        if abs(value) < 1000:
            if unit == "bytes":
                return f"{int(value)} bytes"
            return f"{value:.1f} {unit}" if abs(value) < 10 else f"{value:.0f} {unit}"
        value /= 1000
    return f"{value:.1f} TB" if abs(value) < 10 else f"{value:.0f} TB"


def human_rate(bytes_per_s: float) -> str:
    """A transfer rate: "12 MB/s"."""
    return f"{human_size(bytes_per_s)}/s"
