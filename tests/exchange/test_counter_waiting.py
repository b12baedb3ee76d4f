"""照会の回答待ち at the counter: a query the provider cannot answer yet stays listed for the
municipality's staff, by 処理通番, until their 結果取得要求 collects the answer."""

from __future__ import annotations

import time
from contextlib import closing
from typing import Any

import pytest
from exchange_helpers import args_of, scenarios
from sqlalchemy import select

from kojinbango.municipality.register.models import Resident
from kojinbango.municipality.staff.models import AccessLog
from kojinbango.nation import Nation

B = "m131041"
PURPOSE = "福祉（給付・手当）"


def test_a_query_left_waiting_is_listed_and_collected_later(
    nation: Nation, staff_login: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider's intermediate server fails every provision: B's counter query about the family
    that moved from A is left 回答待ち and listed on the waiting page (never with the number); once
    A's side provides again, the staff's 結果取得要求 from that page collects the answer."""
    a = args_of(scenarios(nation.topology.root)[0]["command"])  # B asks A about the moved family
    with nation.runtimes[B].db.transaction() as s:
        person = s.scalars(select(Resident).where(Resident.my_number == a["my-number"])).one()
    joint = nation.runtimes["intermediate"].services["intermediate"]

    def down(payloads: list[Any]) -> list[Any]:
        raise RuntimeError("the provider's system is down")

    with closing(staff_login(nation, B, ["welfare"], PURPOSE)) as c:
        assert 'id="none-waiting"' in c.get("/staff/counter/waiting").text
        opened = c.post("/staff/counter/open", json={"my_number": person.my_number,
                        "name": person.family_name + person.given_name, "birth_date": person.birth_date.isoformat()})  # fmt: skip
        assert opened.status_code == 200, opened.text
        monkeypatch.setattr(joint, "provide_many", down)
        page = c.post(opened.json()["url"] + "/query", data={"provider": a["provider"], "affair": a["affair"],
                                                              "info": a["info"]})  # fmt: skip
        assert page.status_code == 200 and 'data-status="pending"' in page.text, page.text[-800:]
        assert 'id="waiting-link"' in page.text
        exchange_id = page.text.split('id="answer-exchange">', 1)[1].split("<", 1)[0]
        listed = c.get("/staff/counter/waiting")
        assert f'data-exchange="{exchange_id}"' in listed.text and "回答待ち" in listed.text
        assert person.my_number not in listed.text
        still = c.post("/staff/counter/waiting")  # the provider is still down: nothing to collect
        assert 'id="collected"' in still.text and f'data-exchange="{exchange_id}"' in still.text
        monkeypatch.undo()  # the provider is back: the network's retry delivers the query again
        deadline = time.time() + 60
        while f'data-exchange="{exchange_id}"' in (after := c.post("/staff/counter/waiting")).text:
            assert time.time() < deadline, "the answer never came"
            time.sleep(1)
        assert 'id="none-waiting"' in after.text
        c.cookies.set("lang", "en")
        assert "No query is waiting for its answer." in c.get("/staff/counter/waiting").text
    with nation.runtimes[B].db.transaction() as s:
        collects = list(s.scalars(select(AccessLog).where(AccessLog.action == "collect")))
    assert collects and all(e.purpose == PURPOSE for e in collects)
