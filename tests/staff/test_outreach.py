"""Seed 3-1 push notices, end to end: welfare staff target households with children under 3, see
the count and a sample, confirm and send; card holders read it in the portal inbox — as お知らせ that
travelled municipality → intermediate server → network → portal — the others get a printed letter;
read status comes back the same way to the staff screen.  Also 自己情報表示."""

from __future__ import annotations

import base64
import datetime as dt
import re
import shutil
import time
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from kojinbango.card.reader import CardReader
from kojinbango.card.relying import login_message
from kojinbango.demo import births
from kojinbango.domain.jst import today_jst
from kojinbango.holder import Client, issue_card
from kojinbango.intermediate.notices import IntermediateNotice
from kojinbango.municipality.addressee.models import Addressee
from kojinbango.municipality.outreach.models import NoticeDelivery, PortalUser
from kojinbango.municipality.outreach.service import Conditions, age_on
from kojinbango.municipality.register.models import Resident
from kojinbango.municipality.staff.client import create_staff, staff_client
from kojinbango.nation import Nation, running
from kojinbango.network.notices import NetworkNotice

ORG = "m131016"
PIN = "1234"
DIGITS = re.compile(rb"(?<![0-9])[0-9]{11,12}(?![0-9])")


@pytest.fixture(scope="module")
def nation(small_nation_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("outreach") / "nation"
    shutil.copytree(small_nation_dir, d)
    with running(d) as n:
        # young families whatever the synthetic draw holds: babies born today (flow 1-2)
        births(n, 5, today_jst())
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
    today = today_jst()
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

    # the send returned at once; the worker forwards the inbox copies: wait until the network has them
    _wait("the inbox copies at the network", lambda: len(_at_network(nation, notice_id)) == 2)
    with nation.runtimes[ORG].db.transaction() as s:
        rows = list(s.scalars(select(NoticeDelivery).where(NoticeDelivery.notice_id == notice_id)))
    assert {d.resident_id for d in rows} == heads  # exactly those residents
    channels = {d.resident_id: d.channel for d in rows}
    assert all(channels[rid] == "inbox" for rid in target_with_card)
    assert sum(1 for ch in channels.values() if ch == "letter") == len(heads) - 2
    # the inbox copies went through the intermediate server and the network, and only those
    inbox_refs = {f"D{d.id}" for d in rows if d.channel == "inbox"}
    assert all(d.forwarded_at is not None for d in rows if d.channel == "inbox")
    with nation.runtime("intermediate").db.transaction() as s:
        at_intermediate = list(s.scalars(select(IntermediateNotice).where(IntermediateNotice.tenant == ORG)))
    assert {n.ref for n in at_intermediate} == inbox_refs
    assert all(n.forwarded_at is not None for n in at_intermediate)
    with nation.runtime("network").db.transaction() as s:
        at_network = list(s.scalars(select(NetworkNotice).where(NetworkNotice.sender == ORG)))
    assert {n.sender_ref for n in at_network} == inbox_refs
    assert len({n.person_id for n in at_network}) == 2 and {n.title for n in at_network} == {
        "乳幼児健診のご案内"
    }

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

    # read status on the staff screen, carried back network → intermediate server → municipality
    with closing(staff_client(nation.urls[ORG], welfare, "お知らせの対象確認")) as c:
        page = c.get(detail_url).text
        assert page.count("既読</td>") == 1 and page.count("未読</td>") == len(heads) - 1
    with nation.runtime("network").db.transaction() as s:
        read = list(s.scalars(select(NetworkNotice).where(NetworkNotice.read_at.is_not(None))))
    assert len(read) == 1 and read[0].read_reported_at is not None
    with nation.runtime("intermediate").db.transaction() as s:
        collected = s.scalar(select(IntermediateNotice).where(IntermediateNotice.ref == read[0].sender_ref))
    assert collected is not None and collected.read_at is not None and collected.read_collected_at is not None

    # neither the intermediate server nor the network holds a 個人番号 or 住民票コード (files scanned)
    with nation.runtimes[ORG].db.transaction() as s:
        numbers = {r.my_number.encode() for r in s.scalars(select(Resident)) if r.my_number}
        numbers |= {r.resident_code.encode() for r in s.scalars(select(Resident))}
    assert len(numbers) > 100
    for org in ("intermediate", "network"):
        files = list(nation.topology.root.glob(f"{org}.db*"))
        assert files
        for f in files:
            assert not {m for m in DIGITS.findall(f.read_bytes()) if m in numbers}, f"a number in {f.name}"

    # 自己情報表示: the register's own view of the person, number masked
    me = httpx.get(portal + "/self", cookies={"kojinbango_portal": sessions[outsider]})
    with nation.runtimes[ORG].db.transaction() as s:
        person = s.get(Resident, outsider)
        assert person is not None and person.my_number
    assert person.family_name in me.text and "********" + person.my_number[-4:] in me.text
    assert person.my_number not in me.text
    client.close()


def _at_network(nation: Nation, notice_id: int) -> list[NetworkNotice]:
    """The copies of this municipality's notice the network holds (after the municipality's outbox
    recorded them as forwarded)."""
    with nation.runtimes[ORG].db.transaction() as s:
        refs = {
            f"D{d.id}"
            for d in s.scalars(select(NoticeDelivery).where(NoticeDelivery.notice_id == notice_id))
            if d.channel == "inbox" and d.forwarded_at is not None
        }
    with nation.runtime("network").db.transaction() as s:
        return list(
            s.scalars(
                select(NetworkNotice).where(NetworkNotice.sender == ORG, NetworkNotice.sender_ref.in_(refs))
            )
        )


def _network_reachable(nation: Nation, reachable: bool) -> None:
    """Take the network off the air for everyone who calls it (connections refused), or back."""
    dead = "http://127.0.0.1:9"  # discard port: nothing listens there
    for rt in nation.runtimes.values():
        for client in getattr(rt.client, "clients", [rt.client]):
            directory = getattr(client, "directory", None)
            if isinstance(directory, dict) and "network" in directory:
                directory["network"] = nation.urls["network"] if reachable else dead


def _wait(what: str, check, seconds: float = 90.0):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_notice_waits_while_the_network_is_down_and_arrives_after(nation: Nation, tmp_path: Path) -> None:
    """Store and forward: with the network unreachable the お知らせ stays pending at the intermediate
    server (retried, nothing lost); once it is back the resident finds it and reading it shows on the
    staff screen."""
    heads, _others = _expected_heads(nation)
    client = Client(nation.topology, nation.urls)
    with nation.runtimes[ORG].db.transaction() as s:
        # a head of a young family who got no card in the other test
        person = s.get(Resident, sorted(heads)[-1])
        assert person is not None
        code, address = person.resident_code, person.address
    card = tmp_path / "card.json"
    issue_card(client, code, PIN, None, card)
    session = portal_session(client, card, PIN)
    portal = nation.urls[nation.topology.of_kind("portal")[0].id]
    outreach = nation.runtimes[ORG].services["outreach"]
    conditions = Conditions(district=address, unit="person")
    # the resident already has this municipality's 符号 (the nightly batch would have got it)
    with nation.runtimes[ORG].db.transaction() as s:
        nation.runtimes[ORG].services["addressee"].sync_residents(s)
        aid = s.scalar(select(Addressee.id).where(Addressee.resident_id == person.id))
    assert nation.runtimes[ORG].services["linkage"].ensure_fugo([aid])["delivered"] == 1

    _network_reachable(nation, False)
    try:
        notice_id = outreach.draft(
            conditions, "ネットワーク停止中のお知らせ", "停止中に送られました。", "test"
        )
        result = outreach.send(notice_id, len(outreach.targets(conditions)), "test")
        assert result["inbox"] == 1
        with nation.runtimes[ORG].db.transaction() as s:
            mine = s.scalar(
                select(NoticeDelivery).where(
                    NoticeDelivery.notice_id == notice_id, NoticeDelivery.resident_id == person.id
                )
            )
        assert mine is not None and mine.channel == "inbox"
        ref = f"D{mine.id}"

        def retried_at_intermediate() -> IntermediateNotice | None:
            with nation.runtime("intermediate").db.transaction() as s:
                n = s.scalar(select(IntermediateNotice).where(IntermediateNotice.ref == ref))
            return n if n is not None and n.attempts >= 2 else None

        # the municipality handed it on; the intermediate server keeps it and keeps trying
        pending = _wait("a retried pending notice at the intermediate server", retried_at_intermediate)
        assert pending.forwarded_at is None and "network" in pending.last_error

        def forwarded_here() -> bool:
            with nation.runtimes[ORG].db.transaction() as s:
                d = s.get(NoticeDelivery, mine.id)
            return d is not None and d.forwarded_at is not None

        _wait("the municipality to record the copy as handed on", forwarded_here)
        with nation.runtime("network").db.transaction() as s:
            assert s.scalar(select(NetworkNotice).where(NetworkNotice.sender_ref == ref)) is None
        down = httpx.get(portal + "/inbox", cookies={"kojinbango_portal": session})
        assert down.status_code == 503 and 'id="unavailable"' in down.text
        with closing(staff_client(nation.urls[ORG], _welfare(nation), "お知らせの対象確認")) as c:
            staff_page = c.get(f"/staff/outreach/{notice_id}").text
            assert staff_page.count("未読</td>") == result["targets"]
            assert "送達待ち・中間サーバで再送中" in staff_page  # staff see where it waits
    finally:
        _network_reachable(nation, True)

    def arrived() -> str | None:
        page = httpx.get(portal + "/inbox", cookies={"kojinbango_portal": session})
        return page.text if page.status_code == 200 and "ネットワーク停止中のお知らせ" in page.text else None

    assert "未読" in _wait("the notice in the portal inbox", arrived)
    with nation.runtime("network").db.transaction() as s:
        held = s.scalar(select(NetworkNotice).where(NetworkNotice.sender_ref == ref))
    assert held is not None
    opened = httpx.get(f"{portal}/inbox/{ORG}/{held.id}", cookies={"kojinbango_portal": session})
    assert opened.status_code == 200 and "停止中に送られました" in opened.text

    with closing(staff_client(nation.urls[ORG], _welfare(nation), "お知らせの対象確認")) as c:
        page = _wait(
            "read status on the staff screen",
            lambda: (t := c.get(f"/staff/outreach/{notice_id}").text).count("既読</td>") == 1 and t,
        )
        assert "送達待ち" not in page
    client.close()


def _welfare(nation: Nation) -> dict[str, str]:
    import secrets

    return create_staff(
        nation.runtimes[ORG].services["staff"], "w-" + secrets.token_hex(3), "福祉 担当", ["welfare"]
    )


def test_pending_notice_survives_a_restart(small_nation_dir: Path, tmp_path: Path) -> None:
    """Every hop keeps what it has not handed on in its own database: stopping every organisation
    while the お知らせ waits at the intermediate server loses nothing; after the restart it arrives."""
    d = tmp_path / "nation"
    shutil.copytree(small_nation_dir, d)
    with running(d) as first:
        heads, _ = _expected_heads(first)
        client = Client(first.topology, first.urls)
        with first.runtimes[ORG].db.transaction() as s:
            person = s.get(Resident, sorted(heads)[0])
            assert person is not None
            code, address, rid = person.resident_code, person.address, person.id
        card = tmp_path / "card.json"
        issue_card(client, code, PIN, None, card)
        session = portal_session(client, card, PIN)
        client.close()
        outreach = first.runtimes[ORG].services["outreach"]
        conditions = Conditions(district=address, unit="person")
        with first.runtimes[ORG].db.transaction() as s:
            first.runtimes[ORG].services["addressee"].sync_residents(s)
            aid = s.scalar(select(Addressee.id).where(Addressee.resident_id == rid))
        assert first.runtimes[ORG].services["linkage"].ensure_fugo([aid])["delivered"] == 1
        _network_reachable(first, False)
        notice_id = outreach.draft(conditions, "再起動をまたぐお知らせ", "再起動の前に送られました。", "test")
        outreach.send(notice_id, len(outreach.targets(conditions)), "test")

        def pending() -> bool:
            with first.runtime("intermediate").db.transaction() as s:
                n = s.scalar(
                    select(IntermediateNotice).where(IntermediateNotice.title == "再起動をまたぐお知らせ")
                )
            return n is not None and n.forwarded_at is None and n.attempts >= 1

        _wait("the notice pending at the intermediate server", pending)

    with running(d) as second:  # every organisation started again, the network reachable
        portal = second.urls[second.topology.of_kind("portal")[0].id]

        def arrived() -> bool:
            page = httpx.get(portal + "/inbox", cookies={"kojinbango_portal": session})
            return page.status_code == 200 and "再起動をまたぐお知らせ" in page.text

        _wait("the notice in the portal inbox after the restart", arrived)
        with second.runtime("network").db.transaction() as s:
            assert (
                len(
                    list(
                        s.scalars(
                            select(NetworkNotice).where(NetworkNotice.title == "再起動をまたぐお知らせ")
                        )
                    )
                )
                == 1
            )


def test_only_the_right_parties_reach_the_notices(nation: Nation) -> None:
    """The network releases お知らせ only for the portal's own 符号, and takes them only from the
    intermediate server that serves the sender."""
    from kojinbango.common.transport import RemoteError, SignedClient
    from kojinbango.intermediate.models import FugoLink

    rt = nation.runtimes[ORG]
    with rt.db.transaction() as s:
        rt.services["addressee"].sync_residents(s)
        aid = s.scalar(select(Addressee.id).where(Addressee.my_number.is_not(None)).order_by(Addressee.id))
    rt.services["linkage"].ensure_fugo([aid])
    with nation.runtime("intermediate").db.transaction() as s:
        municipality_fugo = s.scalar(select(FugoLink.fugo).where(FugoLink.tenant == ORG))
    assert municipality_fugo
    topo = nation.topology
    portal_id = topo.of_kind("portal")[0].id
    as_portal = SignedClient(topo.credentials(portal_id), topo.trust_store(), nation.urls)
    try:
        with pytest.raises(RemoteError) as shown:  # a municipality's 符号 is not the portal's
            as_portal.call("network", "POST", "/api/portal/notices", {"fugo": municipality_fugo})
        assert (
            shown.value.status == 422 and "not issued to the organisation presenting it" in shown.value.detail
        )
        item = {
            "ref": "D1",
            "fugo": municipality_fugo,
            "title": "x",
            "body": "y",
            "sent_at": "2026-01-01T00:00:00Z",
        }
        with pytest.raises(RemoteError) as sent:  # only intermediate servers hand in お知らせ
            as_portal.call("network", "POST", "/api/if/notices", {"tenant": ORG, "items": [item]})
        assert sent.value.status == 401
    finally:
        as_portal.close()
    as_other = SignedClient(topo.credentials("m131041"), topo.trust_store(), nation.urls)
    try:  # a municipality cannot call the network at all
        with pytest.raises(RemoteError) as direct:
            as_other.call("network", "POST", "/api/if/notices", {"tenant": ORG, "items": [item]})
        assert direct.value.status == 401
    finally:
        as_other.close()


def _intermediate_at(nation: Nation, url: str) -> None:
    """Point the municipality's calls to its intermediate server at ``url``."""
    rt = nation.runtimes[ORG]
    for client in getattr(rt.client, "clients", [rt.client]):
        directory = getattr(client, "directory", None)
        if isinstance(directory, dict) and "intermediate" in directory:
            directory["intermediate"] = url


def _young_family_head_with_fugo(nation: Nation, index: int) -> Resident:
    """A head of a young family who reads the portal inbox and already has a 符号."""
    heads, _ = _expected_heads(nation)
    rid = sorted(heads)[index]
    rt = nation.runtimes[ORG]
    with rt.db.transaction() as s:
        person = s.get(Resident, rid)
        assert person is not None
        if s.get(PortalUser, rid) is None:  # has opened the portal inbox: gets お知らせ there
            s.add(
                PortalUser(
                    resident_id=rid, first_seen=dt.datetime(2026, 1, 1), last_seen=dt.datetime(2026, 1, 1)
                )
            )
        rt.services["addressee"].sync_residents(s)
        aid = s.scalar(select(Addressee.id).where(Addressee.resident_id == rid))
    assert aid is not None
    rt.services["linkage"].ensure_fugo([aid])
    return person


def test_send_returns_at_once_when_the_intermediate_server_hangs(nation: Nation) -> None:
    """An intermediate server that accepts connections but never answers does not hold the staff's
    send: the copies are saved, the page comes back within seconds showing them pending, and the
    worker hands them on once the server answers again."""
    import socket

    person = _young_family_head_with_fugo(nation, 0)
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)  # connections complete in the backlog; nothing ever accepts or answers them
    real = nation.urls["intermediate"]
    welfare = _welfare(nation)
    try:
        _intermediate_at(nation, f"http://127.0.0.1:{hung.getsockname()[1]}")
        with closing(staff_client(nation.urls[ORG], welfare, "お知らせの対象確認")) as c:
            conditions = {"district": person.address, "unit": "person"}
            made = c.post(
                "/staff/outreach/",
                data={**conditions, "title": "応答しない中間サーバ", "body": "送信はすぐに戻ります。"},
                follow_redirects=False,
            )
            assert made.status_code == 303
            detail_url = made.headers["location"]
            notice_id = int(detail_url.rsplit("/", 1)[1])
            count = len(
                nation.runtimes[ORG].services["outreach"].targets(Conditions(district=person.address))
            )
            started = time.monotonic()
            sent = c.post(f"{detail_url}/send", data={"confirmed_count": str(count), "confirm": "1"})
            took = time.monotonic() - started
            assert sent.status_code == 200 and 'id="sent"' in sent.text
            assert took < 8.0, f"the send took {took:.1f} s"
            assert "送達待ち・当団体で再送中" in sent.text
        with nation.runtimes[ORG].db.transaction() as s:
            mine = s.scalar(
                select(NoticeDelivery).where(
                    NoticeDelivery.notice_id == notice_id, NoticeDelivery.resident_id == person.id
                )
            )
        assert mine is not None and mine.channel == "inbox" and mine.forwarded_at is None
    finally:
        _intermediate_at(nation, real)
        hung.close()  # the connections waiting in its backlog are reset: the worker retries
    _wait("the copy at the network once the server answers", lambda: _at_network(nation, notice_id))


def test_a_notice_refused_for_good_goes_by_letter_and_is_not_retried(nation: Nation) -> None:
    """The network refuses a 符号 that was not made for this municipality (a 4xx answer that the
    next attempt would get again): the copy is marked failed — 送達不能 with the reason on the staff
    screen — the resident gets the printed letter instead, and no hop tries it again."""
    from kojinbango.intermediate.models import FugoLink

    person = _young_family_head_with_fugo(nation, 1)
    rt = nation.runtimes[ORG]
    with rt.db.transaction() as s:
        number = s.scalar(select(Addressee.integrated_number).where(Addressee.resident_id == person.id))
    im = nation.runtime("intermediate")
    with im.db.transaction() as s:  # this server's 符号 for the person now opens to no one's person
        link = s.get(FugoLink, (ORG, number))
        assert link is not None
        real_fugo, link.fugo = link.fugo, "0" * 32
    try:
        outreach = rt.services["outreach"]
        conditions = Conditions(district=person.address, unit="person")
        notice_id = outreach.draft(conditions, "届かないお知らせ", "符号が違います。", "test")
        outreach.send(notice_id, len(outreach.targets(conditions)), "test")
        with rt.db.transaction() as s:
            mine = s.scalar(
                select(NoticeDelivery).where(
                    NoticeDelivery.notice_id == notice_id, NoticeDelivery.resident_id == person.id
                )
            )
        assert mine is not None
        ref = f"D{mine.id}"

        def failed_here() -> NoticeDelivery | None:
            rt.services["outreach"].channel.collect()  # what the staff page does (the worker too)
            with rt.db.transaction() as s:
                d = s.get(NoticeDelivery, mine.id)
            return d if d is not None and d.failed_at is not None else None

        d = _wait("the copy marked failed at the municipality", failed_here)
        assert d.channel == "letter" and "not issued to the organisation" in d.last_error
        with im.db.transaction() as s:
            held = s.scalar(select(IntermediateNotice).where(IntermediateNotice.ref == ref))
        assert held is not None and held.failed_at is not None and held.forwarded_at is None
        assert held.attempts == 1 and held.next_attempt_at is None
        assert held.body == "" and held.read_collected_at is not None  # reported, text not kept
        # no hop tries it again
        im.services["notices"].forward()
        rt.services["outreach"].channel.forward()
        with im.db.transaction() as s:
            again = s.scalar(select(IntermediateNotice).where(IntermediateNotice.ref == ref))
        assert again is not None and again.attempts == 1 and again.failed_at == held.failed_at
        with rt.db.transaction() as s:
            here = s.get(NoticeDelivery, mine.id)
        assert here is not None and here.attempts == d.attempts and here.failed_at == d.failed_at
        with nation.runtime("network").db.transaction() as s:
            assert s.scalar(select(NetworkNotice).where(NetworkNotice.sender_ref == ref)) is None
        # the letter: the copy is among the printed ones; staff see 送達不能 and why
        assert outreach.letters_pdf(notice_id).startswith(b"%PDF")
        with closing(staff_client(nation.urls[ORG], _welfare(nation), "お知らせの対象確認")) as c:
            page = c.get(f"/staff/outreach/{notice_id}").text
        assert f'id="failed-{person.id}"' in page and "送達不能" in page
        assert "not issued to the organisation" in page
    finally:
        with im.db.transaction() as s:
            link = s.get(FugoLink, (ORG, number))
            assert link is not None
            link.fugo = real_fugo


def test_notice_texts_are_not_kept_longer_than_needed(nation: Nation) -> None:
    """The intermediate server keeps only the metadata of a notice the network took; the network
    erases the title and text once ``notice_retention_days`` have passed (the row stays)."""
    person = _young_family_head_with_fugo(nation, 0)
    rt = nation.runtimes[ORG]
    outreach = rt.services["outreach"]
    conditions = Conditions(district=person.address, unit="person")
    notice_id = outreach.draft(conditions, "保存期間のあるお知らせ", "いずれ消えます。", "test")
    outreach.send(notice_id, len(outreach.targets(conditions)), "test")
    held = _wait("the copy at the network", lambda: _at_network(nation, notice_id))
    assert len(held) == 1 and held[0].body == "いずれ消えます。"
    ref = held[0].sender_ref
    with nation.runtime("intermediate").db.transaction() as s:
        copy = s.scalar(select(IntermediateNotice).where(IntermediateNotice.ref == ref))
    assert copy is not None and copy.forwarded_at is not None and copy.tenant == ORG
    assert copy.title == "" and copy.body == ""  # handed on: only the metadata stays there

    network = nation.runtime("network")
    mail = network.services["notices"]
    days = mail.settings.notice_retention_days
    received = held[0].received_at
    # not yet: a day before the retention period ends nothing is erased
    assert mail.purge(received + dt.timedelta(days=days - 1)) == 0
    with network.db.transaction() as s:  # this notice arrived longer ago than the retention period
        n = s.get(NetworkNotice, held[0].id)
        assert n is not None
        n.received_at = received - dt.timedelta(days=days + 1)
    assert mail.purge() == 1
    assert mail.purge() == 0
    with network.db.transaction() as s:
        gone = s.get(NetworkNotice, held[0].id)
        others = list(s.scalars(select(NetworkNotice).where(NetworkNotice.id != held[0].id)))
    assert gone is not None and gone.purged_at is not None and gone.title == "" and gone.body == ""
    assert gone.sender_ref == ref and gone.person_id == held[0].person_id  # the row stays
    assert all(o.purged_at is None and o.body for o in others)  # the younger ones untouched
    with network.db.transaction() as s:  # the portal no longer lists it
        listed = {
            n.id
            for n in s.scalars(
                select(NetworkNotice).where(
                    NetworkNotice.person_id == gone.person_id, NetworkNotice.purged_at.is_(None)
                )
            )
        }
    assert gone.id not in listed


def test_a_copy_the_intermediate_server_refuses_goes_by_letter(nation: Nation) -> None:
    """The first hop refusing for good (422: the text breaks its limits) — failed at once, by
    letter, no further attempts; the intermediate server holds nothing of it."""
    from kojinbango.municipality.outreach.models import PushNotice

    person = _young_family_head_with_fugo(nation, 1)
    rt = nation.runtimes[ORG]
    outreach = rt.services["outreach"]
    conditions = Conditions(district=person.address, unit="person")
    notice_id = outreach.draft(conditions, "長すぎるお知らせ", "短い本文", "test")
    with rt.db.transaction() as s:  # a text longer than the intermediate server takes (4,000)
        notice = s.get(PushNotice, notice_id)
        assert notice is not None
        notice.body = "長" * 4001
    outreach.send(notice_id, len(outreach.targets(conditions)), "test")

    def failed() -> NoticeDelivery | None:
        with rt.db.transaction() as s:
            d = s.scalar(
                select(NoticeDelivery).where(
                    NoticeDelivery.notice_id == notice_id, NoticeDelivery.resident_id == person.id
                )
            )
        return d if d is not None and d.failed_at is not None else None

    d = _wait("the copy refused by the intermediate server", failed)
    assert d.channel == "letter" and d.attempts == 1 and "422" in d.last_error and d.forwarded_at is None
    rt.services["outreach"].channel.forward()
    with rt.db.transaction() as s:
        after = s.get(NoticeDelivery, d.id)
    assert after is not None and after.attempts == 1 and after.next_attempt_at is None
    with nation.runtime("intermediate").db.transaction() as s:
        assert s.scalar(select(IntermediateNotice).where(IntermediateNotice.ref == f"D{d.id}")) is None
