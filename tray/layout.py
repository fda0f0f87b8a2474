"""Window sizes that fit the screen, and text that fits its place."""

from __future__ import annotations

import tkinter as tk
from tkinter import font as tkfont

# Room left for panels, a title bar and window borders around a window.
SCREEN_MARGIN_PX = (40, 90)
ELLIPSIS = "\u2026"


def fit_window(
    window: tk.Tk | tk.Toplevel, want: tuple[int, int], minimum: tuple[int, int]
) -> tuple[int, int]:
    """Give a window the size it wants, or the screen's less the margins; resizable.

    Setting the size also stops Tk from resizing the window to its contents, so a new
    result set or a long name never makes the window grow.
    """
    screen_w, screen_h = window.winfo_screenwidth(), window.winfo_screenheight()
    width = max(min(want[0], screen_w - SCREEN_MARGIN_PX[0]), 200)
    height = max(min(want[1], screen_h - SCREEN_MARGIN_PX[1]), 200)
    window.minsize(min(minimum[0], width), min(minimum[1], height))
    window.resizable(True, True)
    window.geometry(f"{width}x{height}")
    return width, height


def ellipsize(text: str, font: tkfont.Font | str, max_px: int, *, middle: bool = False) -> str:
    """`text` cut with an ellipsis to at most `max_px` wide in `font` (the middle of a
    path, where its folder and its file name both stay readable; else the end)."""
    measure = tkfont.nametofont(font).measure if isinstance(font, str) else font.measure
    if measure(text) <= max_px:
        return text
    low, high = 0, len(text)
    best = ELLIPSIS
    while low <= high:  # the longest cut that fits
        keep = (low + high) // 2
        if middle:
            head = (keep + 1) // 2
            candidate = text[:head] + ELLIPSIS + text[len(text) - (keep - head) :]
        else:
            candidate = text[:keep].rstrip() + ELLIPSIS
        if measure(candidate) <= max_px:
            best, low = candidate, keep + 1
        else:
            high = keep - 1
    return best
