"""The stoppable-thread pattern: a stop racing a start, restarts, failing steps."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from dropsight.daemon.core import threads
from dropsight.daemon.core.threads import Loop
from tests.daemon.helpers import wait_for

RealThread = threading.Thread


def test_a_join_racing_the_start_waits_for_the_thread_instead_of_failing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Seen once in a fresh clone's `make test`: a stop joined a loop whose thread existed
    but had not started yet, and threading refuses that join (RuntimeError)."""
    stop = threading.Event()
    stop.set()  # the loop ends as soon as it runs: the join only has to reach it
    loop = Loop("raced", lambda: None, stop)
    outcome: list[object] = []

    def join_now() -> None:
        try:
            outcome.append(loop.join(10))
        except Exception as exc:  # what the race used to raise
            outcome.append(exc)

    joiner = RealThread(target=join_now, name="joiner")

    class JoinedWhileStarting(RealThread):
        """The loop's thread: a join comes in from another thread before it starts."""

        def start(self) -> None:
            joiner.start()
            # Room for the join to happen first. With the race it fails at once; fixed, it
            # waits for the start, so this wait times out (its length decides nothing).
            joiner.join(0.5)
            super().start()

    with monkeypatch.context() as patch:
        patch.setattr(threads.threading, "Thread", JoinedWhileStarting)
        loop.start()
    joiner.join(10)
    assert not joiner.is_alive()
    assert outcome == [True], outcome
    assert not loop.alive


def test_join_before_any_start_and_a_restart_after_the_thread_ended() -> None:
    stop = threading.Event()
    steps: list[int] = []

    def step() -> None:
        steps.append(1)
        stop.wait(0.01)

    loop = Loop("counting", step, stop)
    assert loop.join(1), "never started: nothing to wait for"
    loop.start()
    wait_for(lambda: len(steps) >= 3, 5, "steps")
    stop.set()
    assert loop.join(5)
    assert not loop.alive
    stop.clear()
    loop.start()  # as the supervisor restarts a dead thread
    seen = len(steps)
    wait_for(lambda: len(steps) > seen, 5, "steps again")
    stop.set()
    assert loop.join(5)


def test_a_failing_step_is_counted_reported_and_the_loop_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(threads, "FAILURE_PAUSE_S", 0.01)
    stop = threading.Event()
    reported: list[tuple[str, Any]] = []
    calls: list[int] = []

    def step() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("one bad photo")
        stop.wait(0.01)

    loop = Loop("faulty", step, stop, on_error=lambda name, exc: reported.append((name, exc)))
    loop.start()
    wait_for(lambda: len(calls) >= 3, 5, "steps after the failure")
    stop.set()
    assert loop.join(5)
    assert loop.failures == 1
    assert [(name, str(exc)) for name, exc in reported] == [("faulty", "one bad photo")]
