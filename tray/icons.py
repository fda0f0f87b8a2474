"""Tray icon images and tooltip text drawn from a status snapshot (Pillow only, no display)."""

from __future__ import annotations

import math

from PIL import Image, ImageDraw

from dropsight.daemon.contracts import ModelFetchStatus, ModelStatus, Status
from dropsight.tray.attention import reason_first, window_wording
from dropsight.tray.units import human_rate, human_size

ICON_SIZE_PX = 64
# Drawn large and scaled down: Pillow's shapes have no anti-aliasing of their own.
_SCALE = 4
_CANVAS_PX = ICON_SIZE_PX * _SCALE
# The warning badge's outline: it sets the badge off from the disc beneath.
_PANEL_RGB = (48, 48, 48)
# Windows truncates tooltips at 127 characters (NOTIFYICONDATA.szTip).
TOOLTIP_MAX_CHARS = 127
BUSY_STAGES = ("downloading", "verifying", "converting")  # a model fetch under way

_COLOURS = {
    "idle": (46, 157, 91),
    "working": (33, 118, 210),
    "paused": (128, 134, 140),
    "error": (211, 47, 47),
    "starting": (96, 110, 124),
    "stopping": (96, 110, 124),
    "offline": (84, 84, 84),
}
_WHITE = (255, 255, 255, 255)
_AMBER = (255, 179, 0, 255)
_TRACK_MIX = 0.35  # the progress ring's track: the state colour, this much towards white


def visual_state(status: Status | None) -> str:
    """Which of the drawn states a status snapshot shows ("offline" when there is none)."""
    if not status:
        return "offline"
    state = str(status.get("state", "offline"))
    return state if state in _COLOURS else "error"


def progress(status: Status | None) -> tuple[int, int] | None:
    """(processed, total) of the current work, or None when there is nothing to count."""
    if not status:
        return None
    # The service's own count for the current burst, when it reports one.
    burst = status.get("progress")
    if burst:
        done, total = burst.get("done"), burst.get("total")
        if isinstance(done, int) and isinstance(total, int) and 0 <= done <= total and total:
            return (done, total)
    done, failed, queued = (_count(status.get(key)) for key in ("done", "failed", "queued"))
    processed = done + failed
    total = processed + queued
    return (processed, total) if total else None


def model_of(status: Status | None) -> ModelStatus | None:
    """The status' model block, if there is one."""
    return status.get("model") if status else None


def is_fallback(status: Status | None) -> bool:
    """Whether the service runs the fallback model instead of the configured one."""
    model = model_of(status)
    return bool(model and model.get("fallback"))


def fetch_of(status: Status | None) -> ModelFetchStatus | None:
    """The model download the service runs in the background, if any."""
    model = model_of(status)
    return (model.get("fetch") if model else None) or None


def fetching(status: Status | None) -> ModelFetchStatus | None:
    """The model download while it is under way (not once it is ready or failed)."""
    fetch = fetch_of(status)
    return fetch if fetch and fetch.get("stage") in BUSY_STAGES else None


def summary(status: Status | None) -> str:
    """A short status phrase: "12 of 340, 1 failed", "idle, 340 done", "paused"..."""
    state = visual_state(status)
    if status is None or state == "offline":
        return "not running"
    failed = _count(status.get("failed"))
    failed_text = f", {failed} failed" if failed else ""
    if state == "working":
        counts = progress(status) or (0, 0)
        return f"{counts[0]} of {counts[1]}{failed_text}"
    if state == "idle":
        return f"idle, {_count(status.get('done'))} done{failed_text}"
    if state == "paused":
        queued = _count(status.get("queued"))
        return f"paused, {queued} waiting{failed_text}" if queued else f"paused{failed_text}"
    if state == "error":
        errors = status.get("errors") or []
        last = errors[0].get("message") if errors else None
        return f"error: {window_wording(reason_first(last))}" if last else "error"
    return f"{state}..."  # starting..., stopping...


MODEL_TITLES = {"vgg16": "VGG16", "efficientnet-lite0": "EfficientNet-Lite0"}


def model_title(name: object) -> str:
    """How people write a model's name: "VGG16", "EfficientNet-Lite0"."""
    return MODEL_TITLES.get(str(name), str(name))


def fetch_text(fetch: ModelFetchStatus) -> str:
    """A model download's progress: "Downloading VGG16: 45% (12 MB/s, 31 s left)"."""
    title = model_title(fetch.get("name"))
    stage = fetch.get("stage")
    if stage == "converting":
        return f"Preparing {title} (a one-time step)\u2026"
    if stage == "verifying":
        return f"Checking the {title} download\u2026"
    done, total = int(fetch.get("done_bytes") or 0), int(fetch.get("total_bytes") or 0)
    percent = f"{100 * done / total:.0f}% of {human_size(total)}" if total else human_size(done)
    rate, eta = float(fetch.get("rate_bps") or 0), fetch.get("eta_s")
    extra = f" ({human_rate(rate)}, {eta:.0f} s left)" if rate and eta is not None else ""
    return f"Downloading {title}: {percent}{extra}"


def tooltip_for(status: Status | None) -> str:
    """Tooltip text, e.g. "Dropsight: 12 of 340, 1 failed"."""
    text = f"Dropsight: {summary(status)}"
    model = model_of(status)
    fetch = fetching(status)
    if fetch:
        text += f" \u00b7 {fetch_text(fetch)}"
    elif model and is_fallback(status) and model.get("missing"):
        text += f" with {model_title(model.get('name'))}"
    elif model and is_fallback(status):
        text += f" (fallback model {model.get('name', '?')})"
    if len(text) > TOOLTIP_MAX_CHARS:
        text = text[: TOOLTIP_MAX_CHARS - 3] + "..."
    return text


def icon_for(status: Status | None) -> Image.Image:
    """The tray image for a status snapshot: colour and glyph by state, progress, warnings."""
    state = visual_state(status)
    counts = progress(status) if state == "working" else None
    fraction = counts[0] / counts[1] if counts else 0.0
    return draw_icon(state, fraction, is_fallback(status))


def draw_icon(state: str, fraction: float = 0.0, fallback: bool = False) -> Image.Image:
    """Draw one icon; `fraction` (0..1) is the progress ring of the working state."""
    rgb = _COLOURS.get(state, _COLOURS["error"])
    # Transparent around the disc, in the disc's colour: a resize blends edges into it, never
    # into black or a guessed panel colour, so the icon reads on light and dark panels.
    canvas = Image.new("RGBA", (_CANVAS_PX, _CANVAS_PX), (*rgb, 0))
    draw = ImageDraw.Draw(canvas)
    colour = (*rgb, 255)
    c = _CANVAS_PX / 2
    radius = _CANVAS_PX * 0.47
    draw.ellipse(_box(c, c, radius), fill=colour)

    if state == "working":
        ring = radius * 0.84
        width = int(_CANVAS_PX * 0.075)
        # Opaque: a translucent track would let the panel show through the ring.
        track = (*(round(v + (255 - v) * _TRACK_MIX) for v in rgb), 255)
        draw.ellipse(_box(c, c, ring), outline=track, width=width)
        end = -90 + 360 * min(max(fraction, 0.0), 1.0)
        if end > -90:
            draw.arc(_box(c, c, ring), start=-90, end=end, fill=_WHITE, width=width)
        _eye(draw, c, c, radius * 0.5, colour)
    elif state == "idle":
        _eye(draw, c, c, radius * 0.66, colour)
    elif state == "paused":
        bar_w, bar_h, gap = radius * 0.24, radius * 0.9, radius * 0.18
        for x0 in (c - gap - bar_w, c + gap):
            draw.rounded_rectangle(
                (x0, c - bar_h / 2, x0 + bar_w, c + bar_h / 2), radius=bar_w * 0.3, fill=_WHITE
            )
    elif state == "error":
        w = radius * 0.2
        draw.rounded_rectangle(
            (c - w / 2, c - radius * 0.58, c + w / 2, c + radius * 0.2), radius=w / 2, fill=_WHITE
        )
        draw.ellipse(_box(c, c + radius * 0.45, w * 0.62), fill=_WHITE)
    elif state in {"starting", "stopping"}:
        for i in range(3):
            x = c + (i - 1) * radius * 0.5
            draw.ellipse(_box(x, c, radius * 0.13), fill=_WHITE)
    else:  # offline: a hollow eye
        _eye(draw, c, c, radius * 0.66, colour, hollow=True)

    if fallback:
        _warning_badge(draw, _CANVAS_PX * 0.72, _CANVAS_PX * 0.71, _CANVAS_PX * 0.40)

    return canvas.resize((ICON_SIZE_PX, ICON_SIZE_PX), Image.Resampling.LANCZOS)


def _eye(
    draw: ImageDraw.ImageDraw,
    cx: float,
    cy: float,
    half_width: float,
    background: tuple[int, int, int, int],
    *,
    hollow: bool = False,
) -> None:
    """An almond eye with a pupil: the "sight" in Dropsight."""
    points = []
    steps = 48
    for i in range(steps + 1):
        t = math.pi * i / steps
        points.append((cx - half_width * math.cos(t), cy - half_width * 0.62 * math.sin(t)))
    for i in range(steps + 1):
        t = math.pi * i / steps
        points.append((cx + half_width * math.cos(t), cy + half_width * 0.62 * math.sin(t)))
    if hollow:
        draw.line([*points, points[0]], fill=_WHITE, width=int(half_width * 0.14), joint="curve")
        draw.ellipse(_box(cx, cy, half_width * 0.22), fill=_WHITE)
        return
    draw.polygon(points, fill=_WHITE)
    draw.ellipse(_box(cx, cy, half_width * 0.42), fill=background)
    draw.ellipse(_box(cx, cy, half_width * 0.17), fill=_WHITE)


def _warning_badge(draw: ImageDraw.ImageDraw, cx: float, cy: float, size: float) -> None:
    """An amber triangle with "!": the fallback model is in use."""
    h = size * math.sqrt(3) / 2
    outline = size * 0.08
    outer = [(cx, cy - h / 2 - outline), (cx - size / 2 - outline, cy + h / 2 + outline * 0.6)]
    outer.append((cx + size / 2 + outline, cy + h / 2 + outline * 0.6))
    draw.polygon(outer, fill=(*_PANEL_RGB, 255))
    draw.polygon(
        [(cx, cy - h / 2), (cx - size / 2, cy + h / 2), (cx + size / 2, cy + h / 2)], fill=_AMBER
    )
    w = size * 0.11
    draw.rectangle((cx - w / 2, cy - h * 0.2, cx + w / 2, cy + h * 0.18), fill=(40, 40, 40, 255))
    draw.ellipse(_box(cx, cy + h * 0.33, w * 0.6), fill=(40, 40, 40, 255))


def _box(cx: float, cy: float, r: float) -> tuple[float, float, float, float]:
    return (cx - r, cy - r, cx + r, cy + r)


def _count(value: object) -> int:
    return value if isinstance(value, int) and value > 0 else 0
