"""Settling: when a seen file counts as complete."""

from __future__ import annotations

import time
from pathlib import Path

from dropsight.daemon.watch.settler import Settler
from tests.daemon.helpers import make_photo, wait_for


def test_a_close_that_was_lost_with_the_events_does_not_hold_the_photo(tmp_path: Path) -> None:
    """After an inotify overflow the close-after-write of a photo being written may be gone."""
    done: list[Path] = []
    settler = Settler(lambda path, _root: done.append(path), settle_time_s=0.2)
    settler.start()
    try:
        photo = make_photo(tmp_path / "a.jpg")
        settler.touch(photo, tmp_path, wait_close=True)  # written; its close never arrives
        time.sleep(1.0)
        assert done == [], "waits for the close while events are trusted"
        settler.events_lost(tmp_path)
        wait_for(lambda: done == [photo], 5, "settled by quiet time instead")
        assert not settler.is_pending(photo)
    finally:
        settler.stop()
