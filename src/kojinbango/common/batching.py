"""Natural batching on an event loop: requests that arrive while a batch is on its way go together.

The exchange path sends one signed HTTP call per hop; under load most of a hop's cost is the call
itself (signatures, headers, a transaction's commit), not the query in it.  A ``Coalescer`` sends
the first request at once, alone — no waiting, so an idle system answers as fast as before — and
gathers those that arrive while ``in_flight`` batches are out into the next one.  Batches grow with
the load and shrink back when it falls.  Each request gets its own result or its own exception.
A batch whose call has been answered gives its place to the next one (``hand_over``) and finishes
its local work — writing the answers — while the next is out: the organisations of a chain then
work at once, not in turn.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from kojinbango.common.errors import BusinessError
from kojinbango.common.transport import RemoteError, Unreachable

log = logging.getLogger(__name__)
MAX_BATCH = 256  # items a batch endpoint takes in one call

T = TypeVar("T")
R = TypeVar("R")

# A batch's work: one outcome per item, the item's result or the exception it failed with.
Run = Callable[[list[T]], Awaitable[Sequence[R | BaseException]]]


class _Place:
    """A sender's place among a Coalescer's batches in flight, until it hands it over."""

    def __init__(self, coalescer: Coalescer[Any, Any]):
        self.coalescer = coalescer
        self.held = True


# the place of the batch whose ``run`` is executing (each sender task has its own context)
_PLACE: contextvars.ContextVar[_Place | None] = contextvars.ContextVar("kojinbango_batch_place", default=None)


async def hand_over() -> None:
    """Called inside a batch's ``run`` once the batch no longer needs its place among those in
    flight — its call answered, only local work left: the next batch (if any waits) leaves now and
    gets to its own call before this one goes on.  Outside a Coalescer's ``run``, or a second time,
    it does nothing."""
    place = _PLACE.get()
    if place is None or not place.held:
        return
    place.held = False
    if place.coalescer._release_place():
        await asyncio.sleep(0)  # let the next sender run up to its call


class Coalescer(Generic[T, R]):
    """Batches the ``submit`` calls of one event loop into calls of ``run`` (at most ``max_batch``
    items each, at most ``in_flight`` at once).

    ``run`` returns one outcome per item, in order: a result, or an exception for that item alone.
    An exception ``run`` raises fails every item of its batch.
    """

    def __init__(self, run: Run[T, R], max_batch: int = 64, in_flight: int = 1):
        if max_batch < 1 or in_flight < 1:
            raise ValueError("max_batch and in_flight must be at least 1")
        self.run = run
        self.max_batch = max_batch
        self.in_flight = in_flight
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._senders = 0
        self.batches = 0  # how many batches and items it has sent (tests read them)
        self.items = 0

    async def submit(self, item: T) -> R:
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, fut))
        self._start_sender()
        # A caller that gives up (cancelled) does not take its item out of a batch already formed:
        # the operation completes and its result is dropped, never half-done.
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            fut.add_done_callback(_consume)
            raise

    def _start_sender(self) -> bool:
        """A sender for what waits, if a place is free; whether one started."""
        if not self._waiting or self._senders >= self.in_flight:
            return False
        self._senders += 1
        asyncio.get_running_loop().create_task(self._send())
        return True

    def _release_place(self) -> bool:
        """A sender hands its place over (``hand_over``): free it; whether a next sender started."""
        self._senders -= 1
        return self._start_sender()

    async def _send(self) -> None:
        place = _Place(self)
        try:
            while self._waiting and place.held:
                batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
                self.batches += 1
                self.items += len(batch)
                try:
                    _PLACE.set(place)
                    outcomes = list(await self.run([item for item, _ in batch]))
                    if len(outcomes) != len(batch):
                        raise RuntimeError(f"a batch of {len(batch)} gave {len(outcomes)} outcomes")
                except Exception as exc:  # the whole batch failed: every item with it
                    outcomes = [exc] * len(batch)
                for (_, fut), outcome in zip(batch, outcomes, strict=True):
                    if fut.done():
                        continue
                    if isinstance(outcome, BaseException):
                        fut.set_exception(outcome)
                    else:
                        fut.set_result(outcome)
        finally:
            if place.held:  # else given to the next sender already
                self._senders -= 1


def _consume(fut: asyncio.Future[Any]) -> None:
    """Retrieve the outcome nobody waits for any more (asyncio would log it as never retrieved)."""
    if not fut.cancelled():
        fut.exception()


# --- a batch on the wire: one outcome per item, each a result or an error with its HTTP status ------
def encode_outcome(outcome: object) -> dict[str, Any]:
    """An item's outcome as a batch answer carries it: ``{"ok": result}`` or ``{"error": {"status",
    "detail"}}`` (a business refusal with its own status and words; anything else 500, unworded)."""
    if isinstance(outcome, BusinessError):
        return {"error": {"status": outcome.status, "detail": str(outcome)}}
    if isinstance(outcome, BaseException):
        log.error("an item of a batch failed", exc_info=outcome)
        return {"error": {"status": 500, "detail": "internal error"}}
    return {"ok": outcome}


def decode_outcomes(org_id: str, answer: Any, expected: int) -> list[Any]:
    """The outcomes of a batch answer from ``org_id``: results, or ``RemoteError`` for an item it
    refused or failed (as a single call would have raised)."""
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list) or len(results) != expected:
        raise RemoteError(org_id, 502, f"a batch answer without one result per item ({expected})")
    out: list[Any] = []
    for r in results:
        if isinstance(r, dict) and "ok" in r:
            out.append(r["ok"])
        elif isinstance(r, dict) and isinstance(r.get("error"), dict):
            err = r["error"]
            out.append(RemoteError(org_id, int(err.get("status", 500)), str(err.get("detail", ""))))
        else:
            out.append(RemoteError(org_id, 502, "a batch answer with an item neither result nor error"))
    return out


def only(outcomes: Sequence[R | BaseException]) -> R:
    """The outcome of a batch of one, as a single call gives it: its result, or its error raised."""
    (outcome,) = outcomes
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def together_or_alone(
    items: list[T], run: Callable[[list[T]], Sequence[R]], what: str
) -> list[R | Exception]:
    """``run`` (one transaction, one outcome per item) on all ``items`` at once; should it fail as a
    whole, on each item alone, so one bad item cannot sink the others (its exception is its outcome).
    A single item's failure is raised."""
    try:
        return list(run(items))
    except Exception:
        if len(items) == 1:
            raise
        log.warning("a batch of %d %s failed together; each is tried alone", len(items), what)
    out: list[R | Exception] = []
    for item in items:
        try:
            out.extend(run([item]))
        except Exception as exc:
            out.append(exc)
    return out


ACall = Callable[[str, str, str, Any], Awaitable[Any]]


async def call_batched(
    acall: ACall, org_id: str, single_path: str, batch_path: str, payloads: list[Any]
) -> list[Any]:
    """Each payload's outcome at ``org_id`` — its answer, or the ``RemoteError``/``Unreachable`` it
    met: alone over ``single_path``; several as one call to ``batch_path`` (``{"items": [...]}``)
    — or one by one, at once, where that organisation has no such route yet (404/405: it runs an
    older version; organisations are upgraded one at a time)."""

    async def one(payload: Any) -> Any:
        try:
            return await acall(org_id, "POST", single_path, payload)
        except (Unreachable, RemoteError) as exc:
            return exc

    if len(payloads) == 1:
        return [await one(payloads[0])]
    try:
        answer = await acall(org_id, "POST", batch_path, {"items": payloads})
        return decode_outcomes(org_id, answer, len(payloads))
    except RemoteError as exc:
        if exc.status in (404, 405):
            return list(await asyncio.gather(*(one(p) for p in payloads)))
        return [exc] * len(payloads)
    except Unreachable as exc:
        return [exc] * len(payloads)


class PerLoop(Generic[T, R]):
    """One ``Coalescer`` per event loop and key (a service may be driven from several loops: each
    server thread and each test client has its own, and futures cannot cross them)."""

    def __init__(self, make: Callable[[str], Coalescer[T, R]]):
        self._make = make
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Coalescer[T, R]]]
        self._by_loop = weakref.WeakKeyDictionary()

    def get(self, key: str = "") -> Coalescer[T, R]:
        mine = self._by_loop.setdefault(asyncio.get_running_loop(), {})
        if key not in mine:
            mine[key] = self._make(key)
        return mine[key]

    def all(self) -> list[Coalescer[T, R]]:
        return [c for mine in list(self._by_loop.values()) for c in mine.values()]
