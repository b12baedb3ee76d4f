"""情報連携の登録状況: the 管理者's screen of the municipality's side of information linkage — 符号
obtained, 副本 registered here and held at the intermediate server — and the nightly batch run from
it, recorded in the access log; counts and times only, never a person."""

from __future__ import annotations

import re
from contextlib import closing
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from kojinbango.municipality.addressee.models import Addressee
from kojinbango.municipality.linkage.models import CopyState, FugoRequest
from kojinbango.municipality.staff.models import AccessLog
from kojinbango.nation import Nation

A = "m131016"
TAX = "地方税関係情報"


def _cell(page: str, category: str, cls: str) -> str:
    row = re.search(rf'<tr class="category" data-category="{category}">(.*?)</tr>', page, re.S)
    assert row is not None, page[-1500:]
    cell = re.search(rf'<td class="{cls}[^"]*">([^<]*)</td>', row.group(1))
    assert cell is not None, row.group(1)
    return cell.group(1)


def _held(nation: Nation, category: str) -> int:
    joint = nation.runtime("intermediate").services["intermediate"]
    return int(joint.copy_counts(A).get(category, 0))


def test_the_status_page_shows_what_is_registered_and_the_batch_mends_a_gap(
    nation: Nation, staff_login: Any
) -> None:
    rt = nation.runtimes[A]
    with rt.db.transaction() as s:
        registered = s.scalar(select(func.count()).select_from(CopyState).where(CopyState.category == TAX))
        delivered = s.scalar(
            select(func.count()).select_from(FugoRequest).where(FugoRequest.delivered_at.is_not(None))
        )
        numbers = [n for n in s.scalars(select(Addressee.my_number).where(Addressee.my_number.is_not(None)))]
    assert registered and delivered
    with closing(staff_login(nation, A, ["admin"])) as c:
        assert 'id="linkage-status-link"' in c.get("/staff/home").text
        page = c.get("/staff/admin/linkage")
        assert page.status_code == 200, page.text[-800:]
        assert f'<td id="fugo-delivered">{delivered}</td>' in page.text
        joint = nation.topology.org("intermediate").name
        assert f"{joint}（intermediate）" in page.text  # where this municipality's 副本 are
        assert _cell(page.text, TAX, "registered") == str(registered)
        assert _cell(page.text, TAX, "held") == str(_held(nation, TAX)) == str(registered)
        assert not any(n in page.text for n in numbers)  # counts, never a person
        # one person's 副本 is lost on this side's books: the two counts disagree, and the page says so
        with rt.db.transaction() as s:
            aid = s.scalar(select(CopyState.addressee_id).where(CopyState.category == TAX).limit(1))
            s.execute(delete(CopyState).where(CopyState.addressee_id == aid, CopyState.category == TAX))
        page = c.get("/staff/admin/linkage").text
        assert _cell(page, TAX, "registered") == str(registered - 1)
        assert re.search(rf'data-category="{TAX}">.*?<td class="held error">', page, re.S)
        # the nightly batch, now: that person's 副本 is sent again and the books agree
        done = c.post("/staff/admin/linkage/refresh")
        assert done.status_code == 200 and 'id="refreshed"' in done.text, done.text[-800:]
        assert _cell(done.text, TAX, "registered") == str(registered)
        assert 'class="held error"' not in done.text
        c.cookies.set("lang", "en")
        english = c.get("/staff/admin/linkage").text
        assert "Information linkage: registration status" in english and "Persons registered" in english
    with rt.db.transaction() as s:
        entries = list(s.scalars(select(AccessLog).where(AccessLog.action == "refresh")))
    assert entries and entries[-1].screen == "/staff/admin/linkage"
    assert entries[-1].detail["changed"][TAX] == 1


def test_only_an_administrator_sees_it(nation: Nation, staff_login: Any) -> None:
    with closing(staff_login(nation, A, ["tax"], "税務（課税・証明）")) as c:
        assert c.get("/staff/admin/linkage").status_code == 403
        assert c.post("/staff/admin/linkage/refresh").status_code == 403


def test_an_unreachable_intermediate_server_is_said_not_hidden(
    nation: Nation, staff_login: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kojinbango.common.transport import Unreachable

    linkage = nation.runtimes[A].services["linkage"]

    def down(path: str, payload: Any = None) -> Any:
        raise Unreachable("intermediate: connection refused")

    monkeypatch.setattr(linkage, "_call", down)
    with closing(staff_login(nation, A, ["admin"])) as c:
        page = c.get("/staff/admin/linkage")
        assert page.status_code == 200 and 'id="intermediate-error"' in page.text
        assert "connection refused" in page.text and _cell(page.text, TAX, "held") == "—"
        failed = c.post("/staff/admin/linkage/refresh")
        assert 'id="refresh-error"' in failed.text and 'id="refreshed"' not in failed.text
