"""Choose image... shows camera files whatever the case of their extension (issue 21 item 6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dropsight.tray.viewer import image_patterns

pytestmark = pytest.mark.gui


def test_tks_own_dialog_lists_upper_case_photos(display: str, tmp_path: Path) -> None:
    """The Linux file dialog (tkfbox.tcl) lists a folder with Tcl's case-sensitive glob and
    the filter's patterns; DSC_0001.JPG must be among the photos."""
    tk = pytest.importorskip("tkinter", reason="Python built without Tk (python3-tk)")
    names = ["DSC_0001.JPG", "IMG_0002.JPEG", "holiday.jpg", "scan.Png", "raw.NEF", "iphone.HEIC"]
    for name in [*names, "notes.txt", "movie.MOV"]:
        (tmp_path / name).write_bytes(b"x")
    root = tk.Tk()
    try:
        listed = root.tk.splitlist(
            root.tk.call(
                "glob",
                "-nocomplain",
                "-tails",
                "-directory",
                str(tmp_path),
                *root.tk.splitlist(image_patterns("linux")),
            )
        )
    finally:
        root.destroy()
    assert sorted(listed) == sorted(names)


def test_native_dialogs_get_plain_patterns() -> None:
    """Windows' and macOS' dialogs ignore case; they get "*.jpg", not bracket classes."""
    for platform in ("win32", "darwin"):
        patterns = image_patterns(platform).split()
        assert "*.jpg" in patterns and "*.heic" in patterns
        assert not any("[" in p for p in patterns)
