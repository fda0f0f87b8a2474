"""Settling: when a seen file counts as complete (a clock moved by hand: no sleeping)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dropsight.daemon.watch.settler import CLOSE_WAIT_MAX_S, Settler
from tests.daemon.helpers import make_photo, wait_for

SETTLE_S = 0.2


class Clock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Seen:
    """What the settler handed on: complete files and files gone for good."""

    def __init__(self) -> None:
        self.done: list[Path] = []
        self.gone: list[Path] = []


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def settler(clock: Clock, seen: Seen) -> Iterator[Settler]:
    s = Settler(
        lambda path, _root: seen.done.append(path),
        SETTLE_S,
        lambda path, _root: seen.gone.append(path),
        clock=clock,
    )
    s.start()
    yield s
    s.stop()


def checked(settler: Settler) -> None:
    """Wait for a pass over the pending files that began after this call (and its clock)."""
    # The pass under way may have read the clock before the caller moved it: wait for two.
    start = settler.checks
    wait_for(lambda: settler.checks >= start + 2, 5, "the settler's next check")


def test_a_close_that_was_lost_with_the_events_does_not_hold_the_photo(
    tmp_path: Path, settler: Settler, clock: Clock, seen: Seen
) -> None:
    """After an inotify overflow the close-after-write of a photo being written may be gone."""
    photo = make_photo(tmp_path / "a.jpg")
    settler.touch(photo, tmp_path, wait_close=True)  # written; its close never arrives
    clock.advance(5 * SETTLE_S)  # quiet for far longer than the settle time
    checked(settler)
    assert seen.done == [], "waits for the close while events are trusted"
    assert settler.is_pending(photo)
    settler.events_lost(tmp_path)
    wait_for(lambda: seen.done == [photo], 5, "settled by quiet time instead")
    assert not settler.is_pending(photo)
    assert settler.settled()


def test_a_close_that_never_comes_is_waited_for_at_most_the_safety_net(
    tmp_path: Path, settler: Settler, clock: Clock, seen: Seen
) -> None:
    photo = make_photo(tmp_path / "mmapped.jpg")
    settler.touch(photo, tmp_path, wait_close=True)
    clock.advance(CLOSE_WAIT_MAX_S - 1)
    checked(settler)
    assert seen.done == []
    clock.advance(2)
    wait_for(lambda: seen.done == [photo], 5, "taken after the safety net's wait")


def test_a_quiet_file_settles_after_the_settle_time_and_a_change_starts_it_again(
    tmp_path: Path, settler: Settler, clock: Clock, seen: Seen
) -> None:
    photo = make_photo(tmp_path / "copied.jpg")
    settler.touch(photo, tmp_path, wait_close=False)
    checked(settler)
    assert seen.done == [], "not quiet for the settle time yet"
    clock.advance(SETTLE_S / 2)
    with photo.open("ab") as f:
        f.write(b"more")  # still being written: the quiet time starts again
    checked(settler)
    clock.advance(SETTLE_S / 2 + 0.01)  # settle time since the first touch, not the change
    checked(settler)
    assert seen.done == []
    assert not settler.settled()
    clock.advance(SETTLE_S)
    wait_for(lambda: seen.done == [photo], 5, "settled once quiet")
    assert settler.settled()


def test_a_deleted_photo_is_cleaned_up_after_once_it_stayed_gone(
    tmp_path: Path, settler: Settler, clock: Clock, seen: Seen
) -> None:
    photo = tmp_path / "deleted.jpg"
    settler.gone(photo, tmp_path)
    checked(settler)
    assert seen.gone == []
    assert not settler.settled(), "the clean-up still waits"
    clock.advance(SETTLE_S)
    wait_for(lambda: seen.gone == [photo], 5, "cleaned up after")
    assert settler.settled()


def test_a_photo_being_handed_on_is_not_settled_yet(tmp_path: Path, clock: Clock) -> None:
    """The barrier tests wait on: nothing pending, yet the queue does not have it either."""
    handing, release = threading.Event(), threading.Event()
    done: list[Path] = []

    def slow_queue(path: Path, _root: Path) -> None:
        handing.set()
        release.wait(10)
        done.append(path)

    settler = Settler(slow_queue, SETTLE_S, clock=clock)
    settler.start()
    try:
        photo = make_photo(tmp_path / "a.jpg")
        settler.touch(photo, tmp_path, wait_close=False)
        clock.advance(SETTLE_S)
        assert handing.wait(5), "never handed on"
        assert settler.pending_count() == 0
        assert not settler.settled()
        release.set()
        wait_for(settler.settled, 5, "settled once handed on")
        assert done == [photo]
    finally:
        release.set()
        settler.stop()
