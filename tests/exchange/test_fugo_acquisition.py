"""符号の取得 (DOMAIN.md §3), the one protocol both queriers run: 取得番号 in chunks, the
intermediate server told which 統合宛名番号 each is for, J-LIS given the 個人番号 — and the counts."""

from __future__ import annotations

import random
from typing import Any

import pytest
from sqlalchemy import select

from kojinbango.common.errors import BusinessError
from kojinbango.common.linkage import FUGO_CHUNK, acquire_fugo
from kojinbango.domain.identifiers import my_number_check_digit
from kojinbango.jlis.models import IssuedNumber
from kojinbango.nation import Nation


def _number(rng: random.Random) -> str:
    base = "".join(rng.choice("0123456789") for _ in range(11))
    return base + str(my_number_check_digit(base))


def test_chunks_reuse_earlier_acquisition_numbers_and_count_what_jlis_did_not_know() -> None:
    rng = random.Random(3)
    todo = [(pid, f"IN{pid:08d}", _number(rng)) for pid in range(FUGO_CHUNK * 2 + 5)]
    asked = {7: "AQ-earlier-7"}  # asked about before, never delivered: the same 取得番号 again
    calls: list[tuple[str, Any]] = []
    unknown = {todo[3][2], todo[FUGO_CHUNK + 1][2]}  # J-LIS knows no such 個人番号
    by_acq: dict[str, str] = {}

    def expect(items: list[dict[str, str]]) -> None:
        calls.append(("expect", items))

    def jlis(method: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        assert (method, path) == ("POST", "/api/fugo/acquire")
        items = payload["items"]
        calls.append(("acquire", items))
        by_acq.update({i["acquisition_number"]: i["my_number"] for i in items})
        return {"unknown": [i["acquisition_number"] for i in items if i["my_number"] in unknown]}

    recorded: list[tuple[int, str]] = []
    delivered: list[int] = []
    counts = acquire_fugo(todo, asked, expect, jlis, recorded.extend, delivered.extend)

    assert counts == {"requested": len(todo), "delivered": len(todo) - 2, "unknown": 2}
    assert [kind for kind, _ in calls] == ["expect", "acquire"] * 3  # three chunks, expected before asked
    assert [len(items) for kind, items in calls if kind == "acquire"] == [FUGO_CHUNK, FUGO_CHUNK, 5]
    # a new 取得番号 for everyone not asked before, written before anything is sent; the earlier one kept
    assert sorted(pid for pid, _ in recorded) == [pid for pid, _, _ in todo if pid != 7]
    assert 7 not in dict(recorded) and by_acq["AQ-earlier-7"] == todo[7][2]
    assert len(set(by_acq)) == len(todo)
    assert sorted(delivered) == [pid for pid, _, mn in todo if mn not in unknown]
    # the intermediate server hears each 取得番号 with the 統合宛名番号 only, J-LIS with the 個人番号 only
    integrated = {pid: number for pid, number, _ in todo}
    acq_of = {acq: pid for pid, acq in recorded} | {"AQ-earlier-7": 7}
    for kind, items in calls:
        for item in items:
            if kind == "expect":
                assert set(item) == {"acquisition_number", "integrated_number"}
                assert item["integrated_number"] == integrated[acq_of[item["acquisition_number"]]]
            else:
                assert set(item) == {"acquisition_number", "my_number"}


def test_nothing_new_and_nothing_delivered_writes_nothing() -> None:
    todo = [(1, "IN00000001", "x"), (2, "IN00000002", "y")]
    asked = {1: "AQ-1", 2: "AQ-2"}  # both asked about before; J-LIS knows neither
    writes: list[object] = []
    counts = acquire_fugo(
        todo, asked, lambda items: None,
        lambda method, path, payload: {"unknown": [i["acquisition_number"] for i in payload["items"]]},
        writes.append, writes.append,
    )  # fmt: skip
    assert counts == {"requested": 2, "delivered": 0, "unknown": 2}
    assert writes == []  # neither record called with an empty list


def test_an_agency_query_about_a_number_jlis_does_not_know_is_refused_and_not_delivered(
    nation: Nation,
) -> None:
    from kojinbango.agency.models import AgencyFugo, InsuredPerson

    agency = nation.runtime("agency").services["agency"]
    rng = random.Random(17)
    with nation.runtime("jlis").db.transaction() as s:
        issued = set(s.scalars(select(IssuedNumber.my_number)))
    number = next(n for n in iter(lambda: _number(rng), None) if n not in issued)
    with pytest.raises(BusinessError, match="J-LIS does not know this 個人番号"):
        agency.query(number, "131016", "pension-exemption", "地方税関係情報")
    with agency.db.transaction() as s:
        pid = s.scalar(select(InsuredPerson.id).where(InsuredPerson.my_number == number))
        rows = list(s.scalars(select(AgencyFugo).where(AgencyFugo.person_id == pid)))
    assert len(rows) == 1 and rows[0].delivered_at is None  # asked, and not delivered
    again = agency.ensure_fugo([pid])
    assert again == {"requested": 1, "delivered": 0, "unknown": 1}
    with agency.db.transaction() as s:
        assert (
            s.scalar(select(AgencyFugo.acquisition_number).where(AgencyFugo.person_id == pid))
            == rows[0].acquisition_number
        )
