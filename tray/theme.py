"""The viewer's look: Sun Valley (sv-ttk, the Windows 11 style) in light or dark."""

from __future__ import annotations

import logging
import os
import sys
import tkinter as tk
from dataclasses import dataclass
from tkinter import ttk
from typing import Literal

log = logging.getLogger(__name__)

Mode = Literal["light", "dark"]
# "light", "dark" or "system" (follow the desktop); unset: the system's on Windows and macOS,
# light on Linux, where desktops report dark mode in too many different ways to trust.
THEME_ENV = "DROPSIGHT_THEME"


@dataclass(frozen=True)
class Palette:
    """Colours our own widgets use beside the theme's (bars, banners, lists)."""

    background: str
    text: str
    muted: str
    accent: str
    accent_top: str
    track: str
    warn_bg: str
    warn_fg: str
    error: str
    list_bg: str
    select_bg: str


PALETTES: dict[Mode, Palette] = {
    "light": Palette(
        background="#fafafa",
        text="#1c1c1c",
        muted="#5f6b7a",
        accent="#2176d2",
        accent_top="#135aa8",
        track="#e4e8ee",
        warn_bg="#fff3cd",
        warn_fg="#3d2f00",
        error="#b3261e",
        list_bg="#ffffff",
        select_bg="#cfe3fa",
    ),
    "dark": Palette(
        background="#1c1c1c",
        text="#f2f2f2",
        muted="#a3adb8",
        accent="#4aa3ff",
        accent_top="#7cbcff",
        track="#3a3f46",
        warn_bg="#4a3b0b",
        warn_fg="#ffe6a0",
        error="#ff8a80",
        list_bg="#2b2b2b",
        select_bg="#1f4e7a",
    ),
}


def wanted_mode(asked: str | None = None) -> Mode:
    """Which mode to use: asked for (or $DROPSIGHT_THEME), else the system's (see THEME_ENV)."""
    choice = (asked or os.environ.get(THEME_ENV, "")).strip().lower()
    if choice in ("light", "dark"):
        return "dark" if choice == "dark" else "light"
    if choice == "system" or sys.platform in ("win32", "darwin"):
        try:
            import darkdetect

            return "dark" if darkdetect.isDark() else "light"
        except Exception as exc:  # no way to ask the desktop: light
            log.info("cannot tell the desktop's light/dark mode: %s", exc)
    return "light"


def apply(root: tk.Tk, asked: str | None = None) -> Palette:
    """Theme the application's windows; the palette for widgets the theme does not draw."""
    mode = wanted_mode(asked)
    try:
        import sv_ttk

        sv_ttk.set_theme(mode, root)
    except Exception as exc:  # sv-ttk missing or its Tcl files not found: Tk's clam
        log.warning("the Sun Valley theme is not available (%s); using clam", exc)
        style = ttk.Style(root)
        if "clam" in style.theme_names():
            style.theme_use("clam")
    palette = PALETTES[mode]
    root.setvar("dropsight_theme", mode)
    return palette


def _applied(root: tk.Misc) -> str | None:
    try:
        return str(root.getvar("dropsight_theme"))
    except tk.TclError:
        return None


def ensure(root: tk.Tk) -> Palette:
    """Theme the windows unless done already (a caller may have chosen the mode)."""
    return palette(root) if _applied(root) else apply(root)


def palette(root: tk.Misc) -> Palette:
    """The palette apply() chose for this interpreter (light before it ran)."""
    return PALETTES["dark" if _applied(root) == "dark" else "light"]
