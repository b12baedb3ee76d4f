"""The staff terminal: login with password and TOTP, roles and least privilege, per-applicant
re-authentication, the idle lock, and the access log an administrator reviews."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from contextlib import closing
from pathlib import Path

import httpx
import pyotp
import pytest
from sqlalchemy import select

from kojinbango.municipality.register.models import Resident
from kojinbango.municipality.staff.client import create_staff, log_in, staff_client
from kojinbango.municipality.staff.models import AccessLog
from kojinbango.nation import Nation, running

ORG = "m131016"


@pytest.fixture(scope="module")
def nation(small_nation_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("terminal") / "nation"
    shutil.copytree(small_nation_dir, d)
    with running(d) as n:
        yield n


def _staff(nation: Nation, login: str, roles: list[str]) -> dict:
    return create_staff(nation.runtimes[ORG].services["staff"], login, f"{login} さん", roles)


def _resident_id(nation: Nation) -> int:
    with nation.runtimes[ORG].db.transaction() as s:
        rid = s.scalar(select(Resident.id).where(Resident.status == "active").order_by(Resident.id).limit(1))
    assert rid is not None
    return int(rid)


def _log(nation: Nation, **where: object) -> list[AccessLog]:
    with nation.runtimes[ORG].db.transaction() as s:
        q = select(AccessLog).order_by(AccessLog.id)
        for k, v in where.items():
            q = q.where(getattr(AccessLog, k) == v)
        return list(s.scalars(q))


def test_pages_need_a_login(nation: Nation) -> None:
    base = nation.urls[ORG]
    for path in (
        "/staff/",
        "/staff/residents/1",
        "/staff/links/",
        "/staff/cards/",
        "/staff/admin/access-log",
    ):
        r = httpx.get(base + path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/staff/login"), path
    assert httpx.post(base + "/staff/residents/1/notice").status_code == 401
    assert "ワンタイムコード" in httpx.get(base + "/staff/login").text


def test_login_needs_password_and_a_fresh_code(nation: Nation) -> None:
    base = nation.urls[ORG]
    acc = _staff(nation, "login-test", ["resident_records"])
    totp = pyotp.TOTP(acc["totp_secret"])
    with httpx.Client(base_url=base) as c:
        wrong_code = c.post(
            "/staff/login", data={"login": acc["login"], "password": acc["password"], "code": "000000"}
        )
        assert wrong_code.status_code == 401 and "正しくありません" in wrong_code.text
        wrong_pw = c.post(
            "/staff/login", data={"login": acc["login"], "password": "x" * 16, "code": totp.now()}
        )
        assert wrong_pw.status_code == 401
        empty = c.post("/staff/login", data={"login": acc["login"], "password": "", "code": ""})
        assert empty.status_code == 422 and "パスワード" in empty.text and "ワンタイムコード" in empty.text
        code = totp.now()
        ok = c.post("/staff/login", data={"login": acc["login"], "password": acc["password"], "code": code})
        assert ok.status_code == 303 and "kojinbango_staff" in c.cookies
    with httpx.Client(base_url=base) as c:  # the same code again (a replayed code) is refused
        again = c.post(
            "/staff/login", data={"login": acc["login"], "password": acc["password"], "code": code}
        )
        assert again.status_code == 401


def test_five_failures_lock_the_account(nation: Nation) -> None:
    base = nation.urls[ORG]
    acc = _staff(nation, "lockout-test", ["tax"])
    with httpx.Client(base_url=base) as c:
        for _ in range(5):
            c.post(
                "/staff/login", data={"login": acc["login"], "password": "wrong-password!", "code": "123456"}
            )
        code = pyotp.TOTP(acc["totp_secret"]).now()
        r = c.post("/staff/login", data={"login": acc["login"], "password": acc["password"], "code": code})
        assert r.status_code == 401 and "ロック" in r.text


def test_tax_staff_cannot_open_resident_records(nation: Nation) -> None:
    rid = _resident_id(nation)
    acc = _staff(nation, "zeimu-1", ["tax"])
    with closing(staff_client(nation.urls[ORG], acc, "税務（課税・証明）")) as c:
        for path in ("/staff/", f"/staff/residents/{rid}", "/staff/cards/", "/staff/admin/access-log"):
            r = c.get(path)
            assert r.status_code == 403 and "権限がありません" in r.text, path
        assert c.post(f"/staff/residents/{rid}/notice").status_code == 403
        assert c.get("/staff/links/").status_code == 200  # the business system's own review queue
    denied = _log(nation, staff_login="zeimu-1", action="denied")
    assert len(denied) == 5 and {e.screen for e in denied} >= {"/staff/residents/{id}", "/staff/"}


@pytest.mark.parametrize(
    ("role", "purpose", "cards", "links"),
    [
        ("resident_records", "個人番号カードの交付・手続", 200, 403),  # the card desk is 住民記録's
        ("tax", "紐付け確認（事務処理）", 403, 200),  # 紐付け確認 is the business systems' (税務, 福祉)
        ("welfare", "紐付け確認（事務処理）", 403, 200),
    ],
)
def test_card_desk_and_link_review_by_role(
    nation: Nation, role: str, purpose: str, cards: int, links: int
) -> None:
    acc = _staff(nation, f"roles-{role.replace('_', '-')}", [role])
    with closing(staff_client(nation.urls[ORG], acc, purpose)) as c:
        assert c.get("/staff/cards/").status_code == cards
        assert c.get("/staff/links/").status_code == links
        assert c.get("/staff/cards/pin-reset").status_code == cards


def test_person_data_needs_an_applicant_and_every_view_is_logged(nation: Nation) -> None:
    rid = _resident_id(nation)
    acc = _staff(nation, "juki-1", ["resident_records"])
    with closing(staff_client(nation.urls[ORG], acc)) as c:
        r = c.get(f"/staff/residents/{rid}", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/staff/applicant")
        bad = c.post("/staff/applicant", data={"password": "not-my-password", "purpose": "住民異動届の受付"})
        assert bad.status_code == 401
        no_purpose = c.post("/staff/applicant", data={"password": acc["password"], "purpose": "なんとなく"})
        assert no_purpose.status_code == 422 and "目的" in no_purpose.text
        ok = c.post(
            "/staff/applicant",
            data={"password": acc["password"], "purpose": "住民異動届の受付"},
            follow_redirects=False,
        )
        assert ok.status_code == 303
        page = c.get(f"/staff/residents/{rid}")
        assert page.status_code == 200 and "受付中: 住民異動届の受付" in page.text
        assert c.post(f"/staff/residents/{rid}/notice").content.startswith(b"%PDF")
        # 受付終了: the next applicant needs the password again
        c.post("/staff/applicant/end")
        assert c.get(f"/staff/residents/{rid}", follow_redirects=False).status_code == 303
    entries = _log(nation, staff_login="juki-1", subject_kind="resident", subject_id=str(rid))
    assert [(e.action, e.purpose) for e in entries] == [
        ("view", "住民異動届の受付"),
        ("print", "住民異動届の受付"),
    ]
    assert all(e.at <= dt.datetime.now(dt.UTC).replace(tzinfo=None) for e in entries)
    # the administrator reviews them; other staff cannot
    admin = _staff(nation, "kanri-1", ["admin"])
    with closing(staff_client(nation.urls[ORG], admin)) as c:
        review = c.get("/staff/admin/access-log", params={"kind": "resident", "subject": str(rid)})
        assert review.status_code == 200
        assert review.text.count('class="entry action-') == 2 and "juki-1" in review.text
        assert "住民異動届の受付" in review.text
        assert c.get(f"/staff/residents/{rid}").status_code == 403  # least privilege: no register


def test_idle_terminal_locks_and_only_its_owner_unlocks(nation: Nation) -> None:
    rid = _resident_id(nation)
    service = nation.runtimes[ORG].services["staff"]
    acc = _staff(nation, "juki-idle", ["resident_records"])
    with closing(staff_client(nation.urls[ORG], acc, "住民票の写し等の交付")) as c:
        assert c.get(f"/staff/residents/{rid}").status_code == 200
        saved, service.idle = service.idle, dt.timedelta(seconds=1)
        try:
            time.sleep(1.5)
            r = c.get(f"/staff/residents/{rid}", follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/staff/unlock"
            assert c.post(f"/staff/residents/{rid}/notice").status_code == 423
            wrong = c.post("/staff/unlock", data={"password": "someone-elses-password"})
            assert wrong.status_code == 401
        finally:
            service.idle = saved
        assert (
            c.post("/staff/unlock", data={"password": acc["password"]}, follow_redirects=False).status_code
            == 303
        )
        # the lock closed the applicant's screens: re-authenticate for the applicant
        assert (
            c.get(f"/staff/residents/{rid}", follow_redirects=False)
            .headers["location"]
            .startswith("/staff/applicant")
        )
    assert [e.action for e in _log(nation, staff_login="juki-idle") if "lock" in e.action] == [
        "idle_lock",
        "unlock_failed",
        "unlock",
    ]


def test_logout_ends_the_session(nation: Nation) -> None:
    acc = _staff(nation, "juki-out", ["resident_records"])
    with httpx.Client(base_url=nation.urls[ORG]) as c:
        log_in(c, acc)
        assert c.get("/staff/home").status_code == 200
        token = c.cookies["kojinbango_staff"]
        c.post("/staff/logout")
        c.cookies.set("kojinbango_staff", token, path="/staff")  # a copied cookie is dead too
        assert c.get("/staff/home", follow_redirects=False).status_code == 303


def test_admin_creates_accounts_with_clear_errors(nation: Nation) -> None:
    admin = _staff(nation, "kanri-2", ["admin"])
    with closing(staff_client(nation.urls[ORG], admin)) as c:
        bad = c.post("/staff/admin/accounts", data={"login": "x y", "display_name": "", "password": "short"})
        assert bad.status_code == 422
        for words in ("login", "roles", "12 characters", "display name"):
            assert words in bad.text
        ok = c.post(
            "/staff/admin/accounts",
            data={
                "login": "fukushi-9",
                "display_name": "福祉 九",
                "password": "a-long-password",
                "roles": ["welfare"],
            },
        )
        assert ok.status_code == 200 and 'id="created"' in ok.text


def test_counter_opens_a_record_only_when_the_card_agrees(nation: Nation) -> None:
    with nation.runtimes[ORG].db.transaction() as s:
        r = s.scalar(
            select(Resident).where(Resident.status == "active", Resident.my_number.is_not(None)).limit(1)
        )
    assert r is not None and r.my_number
    acc = _staff(nation, "zeimu-counter", ["tax"])
    card = {
        "my_number": r.my_number,
        "name": f"{r.family_name}　{r.given_name}",
        "birth_date": r.birth_date.isoformat(),
    }
    with closing(staff_client(nation.urls[ORG], acc, "税務（課税・証明）")) as c:
        ok = c.post("/staff/counter/open", json=card)
        assert ok.status_code == 200 and ok.json()["url"] == f"/staff/counter/residents/{r.id}"
        page = c.get(ok.json()["url"])
        assert (
            page.status_code == 200
            and r.my_number not in page.text
            and "********" + r.my_number[-4:] in page.text
        )
        other = c.post("/staff/counter/open", json={**card, "birth_date": "1900-01-01"})
        assert other.status_code == 409 and r.my_number not in other.text
        bad = c.post("/staff/counter/open", json={**card, "my_number": "12345"})
        assert bad.status_code == 422 and "12345" not in bad.text
    actions = [(e.action, e.subject_id) for e in _log(nation, staff_login="zeimu-counter") if e.subject_kind]
    assert actions == [("view", str(r.id)), ("mismatch", str(r.id))]


def test_counter_query_through_the_network(nation: Nation) -> None:
    """3-3 from the counter: the number comes from the register, never from the browser."""
    with nation.runtimes[ORG].db.transaction() as s:
        r = s.scalar(
            select(Resident).where(Resident.status == "active", Resident.my_number.is_not(None)).limit(1)
        )
    assert r is not None and r.my_number
    acc = _staff(nation, "fukushi-query", ["welfare"])
    with closing(staff_client(nation.urls[ORG], acc, "福祉（給付・手当）")) as c:
        url = f"/staff/counter/residents/{r.id}/query"
        empty = c.post(url, data={"provider": "", "affair": "", "info": ""})
        assert empty.status_code == 422 and "情報提供者" in empty.text
        unknown = c.post(url, data={"provider": "131041", "affair": "child-allowance", "info": "なにか"})
        assert unknown.status_code == 422 and "unknown information category" in unknown.text
        asked = c.post(
            url, data={"provider": "131041", "affair": "child-allowance", "info": "地方税関係情報"}
        )
        assert r.my_number not in asked.text
        assert asked.status_code == 200 and 'id="answer"' in asked.text, asked.text[-800:]
