"""State-to-icon mapping and tooltips, without a display."""

from __future__ import annotations

from typing import Any

import pytest
from PIL import Image

from dropsight.tray.icons import (
    ICON_SIZE_PX,
    TOOLTIP_MAX_CHARS,
    icon_for,
    progress,
    summary,
    tooltip_for,
    visual_state,
)


def status(state: str, done: int = 0, queued: int = 0, failed: int = 0, **extra: Any) -> Any:
    """A partial snapshot: the icons read only these fields (and tolerate missing ones)."""
    return {"state": state, "done": done, "queued": queued, "failed": failed, **extra}


def fallback(state: str = "idle", **counts: int) -> Any:
    model = {"name": "efficientnet-lite0", "requested": "vgg16", "fallback": True}
    return status(state, model=model, **counts)


CASES: dict[str, Any] = {
    "not running": None,
    "starting": status("starting"),
    "stopping": status("stopping"),
    "idle": status("idle", done=40),
    "working 25%": status("working", done=25, queued=75),
    "working 75%": status("working", done=75, queued=25),
    "paused": status("paused", queued=3),
    "error": status("error", errors=[{"message": "disk full"}]),
    "fallback idle": fallback("idle", done=3),
    "fallback working": fallback("working", done=25, queued=75),
}


def test_every_state_has_a_distinct_icon() -> None:
    images = {name: icon_for(s) for name, s in CASES.items()}
    for image in images.values():
        assert image.size == (ICON_SIZE_PX, ICON_SIZE_PX)
        assert image.mode == "RGBA"
    # "starting" and "stopping" share a look on purpose; everything else differs.
    distinct = {name: img.tobytes() for name, img in images.items() if name != "stopping"}
    assert len(set(distinct.values())) == len(distinct)
    assert images["starting"].tobytes() == images["stopping"].tobytes()


def test_state_colours_differ_at_the_edge() -> None:
    # The rim colour tells the state apart at 16 px, where glyphs blur.
    def rim(s: Any) -> tuple[int, ...]:
        pixel = icon_for(s).getpixel((ICON_SIZE_PX // 2, 3))
        assert isinstance(pixel, tuple)
        return pixel[:3]

    rims = {rim(CASES[n]) for n in ("not running", "idle", "working 25%", "paused", "error")}
    assert len(rims) == 5


def test_progress_ring_grows() -> None:
    quarter, three_quarters = icon_for(CASES["working 25%"]), icon_for(CASES["working 75%"])
    # A point on the ring at "half past" (6 o'clock): white only once progress passed 50%.
    point = (ICON_SIZE_PX // 2, int(ICON_SIZE_PX * 0.87))
    lit = three_quarters.getpixel(point)
    unlit = quarter.getpixel(point)
    assert isinstance(lit, tuple)
    assert isinstance(unlit, tuple)
    assert sum(lit[:3]) > sum(unlit[:3]) + 100


def test_the_icon_is_transparent_around_an_opaque_disc() -> None:
    """Transparent corners (no dark square on a light panel), an opaque disc and ring (an
    X11 tray's shape mask shows only opaque pixels), edges in the disc's colour, not black."""
    for name, state in CASES.items():
        image = icon_for(state)
        corner = image.getpixel((0, 0))
        assert isinstance(corner, tuple)
        assert corner[3] == 0, name
        alpha = image.getchannel("A")
        inner = alpha.crop((12, 12, ICON_SIZE_PX - 12, ICON_SIZE_PX - 12))
        assert inner.getextrema()[0] == 255, f"{name}: translucent inside the disc"
        edge = image.getpixel((ICON_SIZE_PX // 2, 1))
        assert isinstance(edge, tuple)
        assert sum(edge[:3]) > 120, f"{name}: a dark fringe {edge}"


def test_icon_scales_down_for_small_trays() -> None:
    small = icon_for(CASES["error"]).resize((16, 16), Image.Resampling.LANCZOS)
    assert small.getbbox() is not None


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (None, "offline"),
        ({}, "offline"),
        ({"state": "idle"}, "idle"),
        ({"state": "working"}, "working"),
        ({"state": "exploded"}, "error"),
    ],
)
def test_visual_state(state: Any, expected: str) -> None:
    assert visual_state(state) == expected


def test_progress_prefers_the_services_burst_counts() -> None:
    s = status("working", done=900, failed=3, queued=28, progress={"done": 12, "total": 40})
    assert progress(s) == (12, 40)
    assert tooltip_for(s) == "Dropsight: 12 of 40, 3 failed"
    broken = status("working", done=1, queued=1, progress={"done": 5, "total": 2})
    assert progress(broken) == (1, 2)


def test_progress_counts_failures_as_processed() -> None:
    assert progress(status("working", done=11, failed=1, queued=328)) == (12, 340)
    assert progress(status("idle")) is None
    junk: Any = {"state": "working", "done": "x", "queued": -4}
    assert progress(junk) is None


@pytest.mark.parametrize(
    ("s", "text"),
    [
        (status("working", done=11, failed=1, queued=328), "Dropsight: 12 of 340, 1 failed"),
        (status("working", done=3, queued=7), "Dropsight: 3 of 10"),
        (status("idle", done=340, failed=2), "Dropsight: idle, 340 done, 2 failed"),
        (status("paused", queued=5), "Dropsight: paused, 5 waiting"),
        (status("paused"), "Dropsight: paused"),
        (status("starting"), "Dropsight: starting..."),
        (
            status(
                "error", errors=[{"message": "disk full"}, {"message": "older"}]
            ),  # newest first
            "Dropsight: error: disk full",
        ),
        (status("error"), "Dropsight: error"),
        (None, "Dropsight: not running"),
        (
            fallback("idle", done=1),
            "Dropsight: idle, 1 done (fallback model efficientnet-lite0)",
        ),
    ],
)
def test_tooltip(s: Any, text: str) -> None:
    assert tooltip_for(s) == text


def test_tooltip_fits_windows_limit() -> None:
    long_error = status("error", errors=[{"message": "x" * 500}])
    text = tooltip_for(long_error)
    assert len(text) == TOOLTIP_MAX_CHARS
    assert text.endswith("...")


def test_summary_without_status() -> None:
    assert summary(None) == "not running"
