"""Background loops: the store-and-forward and sweep workers every organisation runs.

Each one is a daemon thread that calls a step every few seconds or as soon as it is woken, and
must outlive a bad moment (a peer that is down, a locked database): a step that raises is logged
and the loop goes on.  A peer that is merely unreachable is worth a warning, not a traceback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from kojinbango.common.transport import RemoteError

log = logging.getLogger(__name__)


class Every:
    """A chore due every ``seconds`` — and at the first look, so a service started on a host that
    booted less than ``seconds`` ago does not wait that long for it (monotonic time starts near 0)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._last: float | None = None

    def due(self) -> bool:
        t = time.monotonic()
        if self._last is not None and t - self._last < self.seconds:
            return False
        self._last = t
        return True


class BackgroundLoop:
    """Runs ``step`` every ``interval`` seconds, or at once after ``wake()``, until ``stop()``.

    ``deferred`` names the exception types that mean "try later" (logged as one warning line);
    ``wait_first`` lets the organisation finish starting before the first step.
    """

    def __init__(
        self,
        name: str,
        step: Callable[[], object],
        interval: float,
        deferred: tuple[type[BaseException], ...] = (),
        wait_first: bool = False,
    ):
        self.name = name
        self._step = step
        self.interval = interval
        self._deferred = deferred
        self._wait_first = wait_first
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        if self._wait_first:
            self._wake.wait(self.interval)
            self._wake.clear()
        while not self._stop.is_set():
            try:
                self._step()
            except self._deferred as exc:
                log.warning("%s deferred: %s", self.name, type(exc).__name__)
            except Exception:  # the loop must outlive a bad moment
                log.exception("%s failed", self.name)
            self._wake.wait(self.interval)
            self._wake.clear()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)


def refused_for_good(exc: RemoteError) -> bool:
    """A 4xx refusal the next attempt would get again (422, 403, 404, 409, …) — not a 401 (a
    signature, clock or replay problem), not 408/429, not 5xx, and not an answer whose signature
    did not check out."""
    return (
        400 <= exc.status < 500
        and exc.status not in (401, 408, 425, 429)
        and not exc.detail.startswith("answer rejected")
    )
