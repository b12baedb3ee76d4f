"""Natural batching (common.batching): what arrives while a batch is out goes in the next one, each
request with its own outcome; a batch on the wire keeps each item's error and status."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kojinbango.common.batching import (
    Coalescer,
    PerLoop,
    call_batched,
    decode_outcomes,
    encode_outcome,
    hand_over,
    only,
    together_or_alone,
)
from kojinbango.common.errors import Conflict, NotFound
from kojinbango.common.transport import RemoteError, Unreachable


class Recorder:
    """A batch's work that records each batch and lets the test decide when it finishes."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()

    async def run(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        await self.release.wait()
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]


def test_the_first_request_goes_alone_and_those_arriving_meanwhile_go_together() -> None:
    async def scenario() -> list[Any]:
        rec = Recorder()
        c: Coalescer[int, int] = Coalescer(rec.run, max_batch=3, in_flight=1)
        first = asyncio.ensure_future(c.submit(0))
        await asyncio.sleep(0)  # the first batch leaves with one item
        rest = [asyncio.ensure_future(c.submit(i)) for i in range(1, 6)]
        await asyncio.sleep(0)
        assert rec.batches == [[0]]  # the others wait for it: one batch in flight at most
        rec.release.set()
        outcomes = await asyncio.gather(first, *rest, return_exceptions=True)
        assert rec.batches == [[0], [1, 2, 3], [4, 5]]  # at most max_batch each, in arrival order
        assert (c.batches, c.items) == (3, 6)
        return outcomes

    outcomes = asyncio.run(scenario())
    assert outcomes[0::2] == [0, 20, 40]
    assert [str(e) for e in outcomes[1::2]] == ["odd 1", "odd 3", "odd 5"]  # each its own error


def test_with_two_in_flight_a_second_batch_leaves_at_once_and_a_third_waits() -> None:
    async def settle() -> None:
        for _ in range(3):
            await asyncio.sleep(0)

    async def scenario() -> None:
        rec = Recorder()
        c: Coalescer[int, int] = Coalescer(rec.run, max_batch=10, in_flight=2)
        tasks = [asyncio.ensure_future(c.submit(0))]
        await settle()
        tasks += [asyncio.ensure_future(c.submit(i)) for i in (2, 4)]
        await settle()
        assert rec.batches == [[0], [2, 4]]  # the second sender left while the first was out
        tasks += [asyncio.ensure_future(c.submit(i)) for i in (6, 8)]
        await settle()
        assert rec.batches == [[0], [2, 4]]  # two out: these wait
        rec.release.set()
        assert await asyncio.gather(*tasks) == [0, 20, 40, 60, 80]
        assert rec.batches == [[0], [2, 4], [6, 8]]

    asyncio.run(scenario())


class Handing:
    """A batch's work in two halves, as on the exchange path: the call (until ``answered``), then
    ``hand_over``, then local work (until ``written``); it records who was where when."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.answered: dict[int, asyncio.Event] = {}
        self.written: dict[int, asyncio.Event] = {}

    def gate(self, gates: dict[int, asyncio.Event], first: int) -> asyncio.Event:
        return gates.setdefault(first, asyncio.Event())

    async def run(self, items: list[int]) -> list[int | BaseException]:
        first = items[0]
        self.events.append(f"call {items}")
        await self.gate(self.answered, first).wait()
        await hand_over()
        await hand_over()  # a second time: nothing more
        self.events.append(f"write {items}")
        await self.gate(self.written, first).wait()
        if first < 0:
            raise RuntimeError("writing failed")
        return [i * 10 for i in items]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_batch_answered_hands_its_place_to_the_next_while_it_writes() -> None:
    async def scenario() -> None:
        h = Handing()
        c: Coalescer[int, int] = Coalescer(h.run, max_batch=10, in_flight=1)
        tasks = [asyncio.ensure_future(c.submit(1))]
        await _settle()
        tasks += [asyncio.ensure_future(c.submit(i)) for i in (2, 3)]
        await _settle()
        assert h.events == ["call [1]"]  # one in flight: 2 and 3 wait for its answer, not its writing
        h.gate(h.answered, 1).set()
        await _settle()
        assert h.events == ["call [1]", "call [2, 3]", "write [1]"]  # the next left before [1] wrote
        tasks.append(asyncio.ensure_future(c.submit(4)))
        await _settle()
        assert h.events[-1] == "write [1]"  # [2, 3] is out: 4 waits
        h.gate(h.written, 1).set()
        assert await tasks[0] == 10
        h.gate(h.answered, 2).set()
        await _settle()
        assert h.events[3:] == ["call [4]", "write [2, 3]"]
        for first in (2, 4):
            h.gate(h.written, first).set()
        h.gate(h.answered, 4).set()
        assert await asyncio.gather(*tasks) == [10, 20, 30, 40]
        assert c._senders == 0  # every place given back
        # and an idle coalescer sends the next request at once, alone
        late = asyncio.ensure_future(c.submit(5))
        await _settle()
        assert h.events[-1] == "call [5]"
        h.gate(h.answered, 5).set()
        h.gate(h.written, 5).set()
        assert await late == 50
        assert c._senders == 0

    asyncio.run(scenario())


def test_a_batch_that_fails_after_handing_over_fails_only_its_own_items() -> None:
    async def scenario() -> None:
        h = Handing()
        c: Coalescer[int, int] = Coalescer(h.run, max_batch=10, in_flight=1)
        bad = asyncio.ensure_future(c.submit(-1))
        await _settle()
        good = asyncio.ensure_future(c.submit(7))
        await _settle()
        h.gate(h.answered, -1).set()
        await _settle()
        h.gate(h.written, -1).set()
        with pytest.raises(RuntimeError, match="writing failed"):
            await bad
        h.gate(h.answered, 7).set()
        h.gate(h.written, 7).set()
        assert await good == 70
        assert c._senders == 0

    asyncio.run(scenario())


def test_hand_over_outside_a_batch_does_nothing() -> None:
    asyncio.run(hand_over())  # no batch, no coalescer: returns, raises nothing


def test_a_batch_that_raises_fails_each_of_its_items_and_the_next_batch_still_runs() -> None:
    calls: list[list[str]] = []

    async def run(items: list[str]) -> list[str | BaseException]:
        calls.append(items)
        if "boom" in items:
            raise RuntimeError("the batch failed")
        return [i.upper() for i in items]

    async def scenario() -> None:
        c: Coalescer[str, str] = Coalescer(run, max_batch=2)
        a = asyncio.ensure_future(c.submit("boom"))
        await asyncio.sleep(0)
        b = asyncio.ensure_future(c.submit("x"))
        with pytest.raises(RuntimeError, match="the batch failed"):
            await a
        assert await b == "X"

    asyncio.run(scenario())
    assert calls == [["boom"], ["x"]]


def test_a_batch_with_too_few_outcomes_fails_rather_than_mismatching() -> None:
    async def run(items: list[int]) -> list[int | BaseException]:
        return items[:-1]

    async def scenario() -> None:
        c: Coalescer[int, int] = Coalescer(run, max_batch=5)
        with pytest.raises(RuntimeError, match="a batch of 1 gave 0 outcomes"):
            await c.submit(1)

    asyncio.run(scenario())


def test_a_cancelled_caller_does_not_undo_its_item() -> None:
    done: list[int] = []

    async def run(items: list[int]) -> list[int | BaseException]:
        await asyncio.sleep(0.01)
        done.extend(items)
        return items

    async def scenario() -> None:
        c: Coalescer[int, int] = Coalescer(run)
        t = asyncio.ensure_future(c.submit(7))
        await asyncio.sleep(0)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        await asyncio.sleep(0.05)

    asyncio.run(scenario())
    assert done == [7]


def test_each_event_loop_has_its_own_coalescers() -> None:
    made: list[str] = []

    async def run(items: list[int]) -> list[int | BaseException]:
        return list(items)

    def make(key: str) -> Coalescer[int, int]:
        made.append(key)
        return Coalescer(run)

    per: PerLoop[int, int] = PerLoop(make)

    async def use() -> tuple[int, int]:
        a, b = per.get("x"), per.get("y")
        assert per.get("x") is a
        return await a.submit(1), await b.submit(2)

    assert asyncio.run(use()) == (1, 2)
    assert asyncio.run(use()) == (1, 2)
    assert made == ["x", "y", "x", "y"]


def test_bad_limits_are_refused() -> None:
    async def run(items: list[int]) -> list[int | BaseException]:
        return list(items)

    with pytest.raises(ValueError, match="at least 1"):
        Coalescer(run, max_batch=0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.integers(), st.sampled_from(["conflict", "missing", "crash"])), max_size=20))
def test_outcomes_cross_the_wire_as_results_or_errors_with_their_status(items: list[Any]) -> None:
    def outcome(i: Any) -> Any:
        return {"conflict": Conflict("in use"), "missing": NotFound("none"), "crash": KeyError("x")}.get(i, i)

    answer = {"results": [encode_outcome(outcome(i)) for i in items]}
    back = decode_outcomes("org", answer, len(items))
    for i, b in zip(items, back, strict=True):
        if isinstance(i, int):
            assert b == i
        else:
            assert isinstance(b, RemoteError) and b.org_id == "org"
            status, detail = {
                "conflict": (409, "in use"),
                "missing": (404, "none"),
                "crash": (500, "internal error"),
            }[i]
            assert (b.status, b.detail) == (status, detail)  # an unexpected failure is not worded out


def test_a_batch_answer_without_one_result_per_item_is_refused() -> None:
    with pytest.raises(RemoteError, match="one result per item"):
        decode_outcomes("org", {"results": [{"ok": 1}]}, 2)
    with pytest.raises(RemoteError, match="one result per item"):
        decode_outcomes("org", ["not", "a", "dict"], 3)
    assert isinstance(decode_outcomes("org", {"results": [{"neither": 1}]}, 1)[0], RemoteError)


class FakeOrg:
    """An organisation's routes as ``acall`` sees them: the single one, and the batch one unless it
    runs an older version (``batch_status``: the status its batch route answers, 200 = has it)."""

    def __init__(self, batch_status: int = 200, reachable: bool = True):
        self.batch_status = batch_status
        self.reachable = reachable
        self.calls: list[tuple[str, Any]] = []

    async def acall(self, org_id: str, method: str, path: str, payload: Any) -> Any:
        self.calls.append((path, payload))
        if not self.reachable:
            raise Unreachable(f"{org_id} could not be reached")
        if path == "/one":
            if payload == "refuse":
                raise RemoteError(org_id, 409, "not this one")
            return payload.upper()
        if self.batch_status != 200:
            raise RemoteError(org_id, self.batch_status, "Not Found")
        return {"results": [encode_outcome(Conflict("not this one") if p == "refuse" else p.upper())
                            for p in payload["items"]]}  # fmt: skip


def _batched(org: FakeOrg, payloads: list[str]) -> list[Any]:
    return asyncio.run(call_batched(org.acall, "nws", "/one", "/many", payloads))


def test_one_payload_takes_the_single_route_and_several_the_batch_route() -> None:
    org = FakeOrg()
    assert _batched(org, ["a"]) == ["A"]
    out = _batched(org, ["b", "refuse", "c"])
    assert out[0::2] == ["B", "C"] and isinstance(out[1], RemoteError) and out[1].status == 409
    assert [path for path, _ in org.calls] == ["/one", "/many"]


def test_an_organisation_without_the_batch_route_gets_the_items_one_by_one() -> None:
    for status in (404, 405):
        org = FakeOrg(batch_status=status)
        out = _batched(org, ["b", "refuse", "c"])
        assert out[0::2] == ["B", "C"] and isinstance(out[1], RemoteError) and out[1].status == 409
        assert sorted(path for path, _ in org.calls) == ["/many", "/one", "/one", "/one"]


def test_a_batch_refused_or_unreachable_as_a_whole_fails_every_item_with_that_error() -> None:
    out = _batched(FakeOrg(batch_status=503), ["a", "b"])
    assert all(isinstance(o, RemoteError) and o.status == 503 for o in out)
    out = _batched(FakeOrg(reachable=False), ["a", "b"])
    assert all(isinstance(o, Unreachable) for o in out)
    assert isinstance(_batched(FakeOrg(reachable=False), ["a"])[0], Unreachable)


def test_a_batch_that_fails_as_a_whole_is_tried_item_by_item() -> None:
    runs: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        runs.append(items)
        if 3 in items:
            raise ValueError("item 3 breaks its transaction")
        return [i * 2 for i in items]

    assert together_or_alone([1, 2], run, "things") == [2, 4]
    out = together_or_alone([1, 3, 5], run, "things")
    assert out[0] == 2 and out[2] == 10 and isinstance(out[1], ValueError)
    assert runs[1:] == [[1, 3, 5], [1], [3], [5]]
    with pytest.raises(ValueError):  # alone, its failure is raised as it is
        together_or_alone([3], run, "things")


def test_a_batch_of_one_gives_its_result_or_raises_its_error() -> None:
    assert only([7]) == 7
    with pytest.raises(Conflict, match="in use"):
        only([Conflict("in use")])
    with pytest.raises(ValueError):  # not a batch of one
        only([1, 2])
