"""Seed 3-1 push notices, end to end: welfare staff target households with children under 3, see
the count and a sample, confirm and send; card holders read it in the portal inbox, the others get a
printed letter; read status shows on the staff screen.  Also 自己情報表示."""

from __future__ import annotations

import base64
import datetime as dt
import shutil
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from kojinbango.card.reader import CardReader
from kojinbango.card.relying import login_message
from kojinbango.holder import Client, issue_card
from kojinbango.municipality.outreach.models import NoticeDelivery
from kojinbango.municipality.outreach.service import age_on
from kojinbango.municipality.register.models import Resident
from kojinbango.municipality.staff.client import create_staff, staff_client
from kojinbango.nation import Nation, running

ORG = "m131016"
PIN = "1234"


@pytest.fixture(scope="module")
def nation(small_nation_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("outreach") / "nation"
    shutil.copytree(small_nation_dir, d)
    with running(d) as n:
        yield n


def portal_session(client: Client, card: Path, pin: str) -> str:
    """Log in to the portal with the card and keep the session token (the browser's cookie)."""
    reader = CardReader(card)
    portal = client.portal()
    ch = client.post(portal, "/login/challenge")
    sig = reader.sign_auth(pin, login_message(ch["portal"], ch["challenge_id"], ch["challenge"]))
    result = client.post(
        portal,
        "/login",
        {
            "challenge_id": ch["challenge_id"],
            "certificate": base64.b64encode(reader.auth_certificate()).decode(),
            "signature": base64.b64encode(sig).decode(),
        },
    )
    return str(result["session"])


def _expected_heads(nation: Nation) -> tuple[set[int], set[int]]:
    """(heads of households with a child under 3, adults outside those households) — computed here."""
    today = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=9)).date()
    with nation.runtimes[ORG].db.transaction() as s:
        people = list(s.scalars(select(Resident).where(Resident.status == "active")))
    by_household: dict[int, list[Resident]] = {}
    for p in people:
        by_household.setdefault(p.household_id, []).append(p)
    heads, others = set(), set()
    for members in by_household.values():
        if any(age_on(m.birth_date, today) < 3 for m in members):
            heads.add(next(m for m in members if m.relationship == "世帯主").id)
        else:
            others.update(m.id for m in members if age_on(m.birth_date, today) >= 20)
    return heads, others


def test_notice_to_households_with_children_under_3(nation: Nation, tmp_path: Path) -> None:
    heads, others = _expected_heads(nation)
    assert len(heads) >= 2, "the synthetic nation should hold young families"
    portal = nation.urls[nation.topology.of_kind("portal")[0].id]
    client = Client(nation.topology, nation.urls)
    with nation.runtimes[ORG].db.transaction() as s:
        codes = {r.id: r.resident_code for r in s.scalars(select(Resident))}
    # two parents in the target and one adult outside it hold cards and use the portal
    target_with_card, outsider = sorted(heads)[:2], sorted(others)[0]
    sessions = {}
    for rid in [*target_with_card, outsider]:
        card = tmp_path / f"card-{rid}.json"
        issue_card(client, codes[rid], PIN, None, card)
        sessions[rid] = portal_session(client, card, PIN)
        empty = httpx.get(portal + "/inbox", cookies={"kojinbango_portal": sessions[rid]})
        assert empty.status_code == 200 and 'id="empty"' in empty.text

    welfare = create_staff(nation.runtimes[ORG].services["staff"], "fukushi-push", "福祉 担当", ["welfare"])
    tax = create_staff(nation.runtimes[ORG].services["staff"], "zeimu-push", "税務 担当", ["tax"])
    with closing(staff_client(nation.urls[ORG], tax, "税務（課税・証明）")) as c:
        assert c.get("/staff/outreach/").status_code == 403
    with closing(staff_client(nation.urls[ORG], welfare, "お知らせの対象確認")) as c:
        bad = c.post("/staff/outreach/preview", data={"min_age": "50", "max_age": "20"})
        assert bad.status_code == 422 and "上限" in bad.text
        nothing = c.post("/staff/outreach/preview", data={"unit": "person"})
        assert nothing.status_code == 422 and "at least one target condition" in nothing.text
        conditions = {"child_under": "3", "unit": "household"}
        preview = c.post("/staff/outreach/preview", data=conditions)
        assert preview.status_code == 200
        assert f"<strong>{len(heads)}</strong>" in preview.text and 'id="sample"' in preview.text
        made = c.post(
            "/staff/outreach/",
            data={
                **conditions,
                "title": "乳幼児健診のご案内",
                "body": "3歳未満のお子さまの健診日程をお知らせします。",
            },
            follow_redirects=False,
        )
        assert made.status_code == 303
        detail_url = made.headers["location"]
        notice_id = int(detail_url.rsplit("/", 1)[1])
        unconfirmed = c.post(f"{detail_url}/send", data={"confirmed_count": str(len(heads))})
        assert unconfirmed.status_code == 422
        stale = c.post(f"{detail_url}/send", data={"confirmed_count": str(len(heads) + 1), "confirm": "1"})
        assert stale.status_code == 409 and "changed" in stale.text
        sent = c.post(f"{detail_url}/send", data={"confirmed_count": str(len(heads)), "confirm": "1"})
        assert sent.status_code == 200 and 'id="sent"' in sent.text
        again = c.post(f"{detail_url}/send", data={"confirmed_count": str(len(heads)), "confirm": "1"})
        assert again.status_code == 409
        letters = c.get(f"{detail_url}/letters.pdf")
        assert letters.status_code == 200 and letters.content.startswith(b"%PDF")

    with nation.runtimes[ORG].db.transaction() as s:
        rows = list(s.scalars(select(NoticeDelivery).where(NoticeDelivery.notice_id == notice_id)))
    assert {d.resident_id for d in rows} == heads  # exactly those residents
    channels = {d.resident_id: d.channel for d in rows}
    assert all(channels[rid] == "inbox" for rid in target_with_card)
    assert sum(1 for ch in channels.values() if ch == "letter") == len(heads) - 2

    # the parents read it in the portal; the outsider sees nothing
    for rid in target_with_card:
        inbox = httpx.get(portal + "/inbox", cookies={"kojinbango_portal": sessions[rid]})
        assert "乳幼児健診のご案内" in inbox.text and "未読" in inbox.text
    opened = httpx.get(
        f"{portal}/inbox/{ORG}/{notice_id}", cookies={"kojinbango_portal": sessions[target_with_card[0]]}
    )
    assert opened.status_code == 200 and "健診日程" in opened.text
    outsider_inbox = httpx.get(portal + "/inbox", cookies={"kojinbango_portal": sessions[outsider]})
    assert "乳幼児健診のご案内" not in outsider_inbox.text
    assert (
        httpx.get(
            f"{portal}/inbox/{ORG}/{notice_id}", cookies={"kojinbango_portal": sessions[outsider]}
        ).status_code
        == 404
    )
    assert httpx.get(portal + "/inbox").status_code == 401

    # read status on the staff screen
    with closing(staff_client(nation.urls[ORG], welfare, "お知らせの対象確認")) as c:
        page = c.get(detail_url).text
        assert page.count("既読</td>") == 1 and page.count("未読</td>") == len(heads) - 1

    # 自己情報表示: the register's own view of the person, number masked
    me = httpx.get(portal + "/self", cookies={"kojinbango_portal": sessions[outsider]})
    with nation.runtimes[ORG].db.transaction() as s:
        person = s.get(Resident, outsider)
        assert person is not None and person.my_number
    assert person.family_name in me.text and "********" + person.my_number[-4:] in me.text
    assert person.my_number not in me.text
    client.close()
