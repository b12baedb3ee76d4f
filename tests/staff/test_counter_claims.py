"""Seed 3-2 at the counter: the record opened with the card, 福祉 staff enter a 児童手当 認定請求 (the
child, the account, the income declaration) and it is written to the 児童手当 system in one
transaction with its access-log entry; a 3-3 query sent from the record shows its answer."""

from __future__ import annotations

import datetime as dt
import inspect
import shutil
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from kojinbango.domain.jst import today_jst
from kojinbango.municipality.addressee.models import Addressee, RecordLink
from kojinbango.municipality.business.models import (
    BankAccount,
    BusinessRecord,
    ChildAllowance,
    ChildAllowanceClaim,
    FormNumber,
)
from kojinbango.municipality.counter import views as counter_views
from kojinbango.municipality.linkage.service import QUERIES_PATH
from kojinbango.municipality.outreach.service import age_on
from kojinbango.municipality.register.models import Resident
from kojinbango.municipality.staff.models import AccessLog
from kojinbango.nation import Nation, running

ORG = "m131016"
PURPOSE = "福祉（給付・手当）"
TABLES = (BusinessRecord, ChildAllowance, BankAccount, FormNumber, ChildAllowanceClaim, RecordLink)


@pytest.fixture(scope="module")
def nation(small_nation_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("counter-claims") / "nation"
    shutil.copytree(small_nation_dir, d)
    with running(d) as n:
        yield n


def _family(nation: Nation) -> tuple[Resident, Resident]:
    """A 世帯主 and their child under 3."""
    today = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=9)).date()
    with nation.runtimes[ORG].db.transaction() as s:
        people = list(s.scalars(select(Resident).where(Resident.status == "active").order_by(Resident.id)))
    by_household: dict[int, list[Resident]] = {}
    for p in people:
        by_household.setdefault(p.household_id, []).append(p)
    for members in by_household.values():
        young = [m for m in members if age_on(m.birth_date, today) < 3]
        if young:
            return next(m for m in members if m.relationship == "世帯主"), young[0]
    raise AssertionError("the synthetic nation should hold young families")


def _counts(nation: Nation) -> dict[str, int]:
    with nation.runtimes[ORG].db.transaction() as s:
        return {t.__tablename__: int(s.scalar(select(func.count()).select_from(t)) or 0) for t in TABLES}


def _open(c: Any, parent: Resident) -> str:
    """What the counter page does after the reader returned the card's number and 4情報."""
    opened = c.post(
        "/staff/counter/open",
        json={
            "my_number": parent.my_number,
            "name": parent.family_name + parent.given_name,
            "birth_date": parent.birth_date.isoformat(),
        },
    )
    assert opened.status_code == 200, opened.text
    return str(opened.json()["url"])


GOOD = {
    "bank_code": "0005",
    "branch_code": "123",
    "account_type": "1",
    "account_number": "1234567",
    "holder_kana": "ヤマダ タロウ",
    "income_year": str(today_jst().year - 1),
    "declared_income": "4,200,000",
}


def test_child_allowance_claim_is_written_in_one_transaction(
    nation: Nation, staff_login: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent, child = _family(nation)
    with closing(staff_login(nation, ORG, ["resident_records"], "住民票の写し等の交付")) as c:
        url = _open(c, parent)
        refused = c.post(url + "/child-allowance", data={**GOOD, "child": str(child.id)})
        assert refused.status_code == 403 and "福祉の職員" in refused.text
    before = _counts(nation)

    # a failure after the rows are written (here: right before the access-log entry) leaves nothing
    real = counter_views.receive_child_allowance_claim

    def then_fail(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise RuntimeError("the disk filled up")

    monkeypatch.setattr(counter_views, "receive_child_allowance_claim", then_fail)
    with closing(staff_login(nation, ORG, ["welfare"], PURPOSE)) as c:
        url = _open(c, parent)
        try:
            status: int | None = c.post(
                url + "/child-allowance", data={**GOOD, "child": str(child.id)}
            ).status_code
        except httpx.HTTPError:  # the server dropped the connection on the unhandled error
            status = None
        assert status in (500, None)
    monkeypatch.undo()
    assert _counts(nation) == before

    with closing(staff_login(nation, ORG, ["welfare"], PURPOSE)) as c:
        url = _open(c, parent)
        page = c.get(url)
        assert 'id="claim-form"' in page.text and f'value="{child.id}"' in page.text

        bad = c.post(url + "/child-allowance", data={**GOOD, "child": str(child.id), "bank_code": "12",
                                                     "holder_kana": "yamada", "declared_income": "-5"})  # fmt: skip
        assert bad.status_code == 422
        assert "金融機関コードは4桁" in bad.text and "口座名義はカタカナ" in bad.text and "所得額" in bad.text
        assert _counts(nation) == before

        done = c.post(url + "/child-allowance", data={**GOOD, "child": str(child.id)})
        assert done.status_code == 200 and 'id="claim-done"' in done.text
        assert "15,000 円" in done.text  # under 3
        again = c.post(url + "/child-allowance", data={**GOOD, "child": str(child.id)})
        assert again.status_code == 409 and "すでに支給" in again.text

    after = _counts(nation)
    assert after["child_allowance_claims"] == before["child_allowance_claims"] + 1
    assert after["child_allowances"] == before["child_allowances"] + 1
    with nation.runtimes[ORG].db.transaction() as s:
        claim = s.scalar(select(ChildAllowanceClaim).order_by(ChildAllowanceClaim.id.desc()))
        assert claim is not None and claim.declared_income == 4_200_000 and claim.purpose == PURPOSE
        recipient = s.get(BusinessRecord, claim.recipient_record_id)
        kid = s.get(BusinessRecord, claim.child_record_id)
        assert recipient is not None and kid is not None and recipient.system == "welfare"
        assert recipient.name == f"{parent.family_name}\u3000{parent.given_name}"  # as the register holds it
        assert kid.birth_date == child.birth_date
        links = {
            link.record_id: link
            for link in s.scalars(select(RecordLink).where(RecordLink.record_id.in_([recipient.id, kid.id])))
        }
        aids = dict(s.execute(select(Addressee.id, Addressee.resident_id)).all())
        assert aids[links[recipient.id].addressee_id] == parent.id and links[recipient.id].status == "linked"
        assert aids[links[kid.id].addressee_id] == child.id
        allowance = s.scalar(select(ChildAllowance).where(ChildAllowance.recipient_id == recipient.id))
        assert allowance is not None and allowance.child_id == kid.id and allowance.monthly_amount == 15_000
        account = s.get(BankAccount, claim.bank_account_id)
        assert account is not None and (account.bank_code, account.account_number) == ("0005", "1234567")
        form = s.scalar(select(FormNumber).where(FormNumber.record_id == recipient.id))
        assert form is not None and form.my_number == parent.my_number and form.form == "児童手当認定請求書"
        log = list(
            s.scalars(
                select(AccessLog).where(AccessLog.action == "update", AccessLog.subject_id == str(parent.id))
            )
        )
    assert len(log) == 1 and log[0].purpose == PURPOSE and log[0].detail["claim"] == claim.id
    assert parent.my_number not in str(log[0].detail)


def test_query_from_the_record_shows_the_answer(nation: Nation, staff_login: Any) -> None:
    parent, _child = _family(nation)
    with closing(staff_login(nation, ORG, ["welfare"], PURPOSE)) as c:
        url = _open(c, parent)
        empty = c.post(url + "/query", data={"provider": "", "affair": "", "info": "地方税関係情報"})
        assert empty.status_code == 422 and "情報提供者" in empty.text
        page = c.post(
            url + "/query", data={"provider": "131041", "affair": "child-allowance", "info": "地方税関係情報"}
        )
        assert page.status_code == 200, page.text
        # the person never lived in 新宿区: its intermediate server holds nothing (該当なし), signed
        assert 'data-status="not_held"' in page.text and "該当なし" in page.text
        refused = c.post(url + "/query", data={"provider": "131041", "affair": "pension-exemption",
                                               "info": "地方税関係情報"})  # fmt: skip
        assert refused.status_code == 200 and 'data-status="refused"' in refused.text
    with nation.runtimes[ORG].db.transaction() as s:
        logged = list(s.scalars(select(AccessLog).where(AccessLog.action == "query")))
    assert len(logged) == 2 and all(e.purpose == PURPOSE for e in logged)


def _routes(routes: list[Any]) -> list[Any]:
    """The app's routes, those of included routers too (FastAPI may keep an included router whole)."""
    out: list[Any] = []
    for r in routes:
        inner = getattr(r, "original_router", None)
        out.extend(_routes(list(inner.routes)) if inner is not None else [r])
    return out


def _queries_logged(nation: Nation) -> int:
    with nation.runtimes[ORG].db.transaction() as s:
        return int(
            s.scalar(select(func.count()).select_from(AccessLog).where(AccessLog.action == "query")) or 0
        )


def test_counter_query_waits_for_the_exchange_on_the_event_loop(
    nation: Nation, staff_login: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The counter's 3-3 query is an async route: the query goes to the intermediate server over
    the client's event-loop path (``acall``), so no worker thread is held while the network
    answers, and the answer is still shown and logged."""
    rt = nation.runtimes[ORG]
    endpoints = [
        getattr(r, "endpoint", None)
        for r in _routes(rt.app.routes)
        if getattr(r, "path", "") == "/staff/counter/residents/{resident_id}/query"
    ]
    assert len(endpoints) == 1 and inspect.iscoroutinefunction(endpoints[0])

    linkage: Any = rt.services["linkage"]
    client = linkage.client
    real_acall, real_call = client.acall, client.call
    sent: list[tuple[str, str]] = []

    async def acall(org_id: str, method: str, path: str, payload: Any = None) -> Any:
        sent.append(("acall", path))
        return await real_acall(org_id, method, path, payload)

    def call(org_id: str, method: str, path: str, payload: Any = None) -> Any:
        sent.append(("call", path))
        return real_call(org_id, method, path, payload)

    monkeypatch.setattr(client, "acall", acall)
    monkeypatch.setattr(client, "call", call)
    parent, _child = _family(nation)
    before = _queries_logged(nation)
    with closing(staff_login(nation, ORG, ["welfare"], PURPOSE)) as c:
        url = _open(c, parent)
        page = c.post(
            url + "/query", data={"provider": "131041", "affair": "child-allowance", "info": "地方税関係情報"}
        )
    monkeypatch.undo()
    assert page.status_code == 200, page.text
    assert 'data-status="not_held"' in page.text and parent.my_number not in page.text
    assert ("acall", QUERIES_PATH) in sent and ("call", QUERIES_PATH) not in sent
    assert _queries_logged(nation) == before + 1
