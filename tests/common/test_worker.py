"""The background loop every store-and-forward worker runs on."""

from __future__ import annotations

import threading
import time

import pytest

from kojinbango.common.transport import Unreachable
from kojinbango.common.worker import BackgroundLoop, Every


def test_the_loop_outlives_failures_and_wakes_at_once() -> None:
    calls: list[float] = []
    ran_after_wake = threading.Event()

    def step() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("a locked database")
        if len(calls) == 2:
            raise Unreachable("the network is down")
        if len(calls) >= 3:
            ran_after_wake.set()

    loop = BackgroundLoop("test-loop", step, interval=60.0, deferred=(Unreachable,))
    loop.start()
    try:
        deadline = time.monotonic() + 5
        while len(calls) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        loop.wake()
        time.sleep(0.05)
        loop.wake()
        # with a 60 s interval only wake() can have brought the third call so soon
        assert ran_after_wake.wait(5), calls
    finally:
        loop.stop()
    assert loop.stopping
    count = len(calls)
    time.sleep(0.1)
    assert len(calls) == count  # stopped means no more steps


def test_wait_first_gives_the_organisation_time_to_start() -> None:
    calls: list[int] = []
    loop = BackgroundLoop("test-wait", lambda: calls.append(1), interval=0.3, wait_first=True)
    loop.start()
    try:
        time.sleep(0.1)
        assert calls == []
        time.sleep(0.4)
        assert calls
    finally:
        loop.stop()


def test_an_hourly_chore_is_due_at_the_first_look_then_an_hour_later(monkeypatch: pytest.MonkeyPatch) -> None:
    """Monotonic time starts near 0 at boot: a chore must not wait for the host's first hour."""
    clock = [5.0]  # a host booted five seconds ago
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    hourly = Every(3600)
    assert hourly.due()
    assert not hourly.due()
    clock[0] += 3599
    assert not hourly.due()
    clock[0] += 2
    assert hourly.due() and not hourly.due()
