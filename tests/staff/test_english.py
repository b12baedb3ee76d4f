"""The English toggle over HTTP on a running nation: the same page in Japanese by default and in
English after ``POST /lang``, on the portal, the kiosk and the staff terminal; data stays as it is."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from kojinbango.municipality.register.models import Resident
from kojinbango.nation import Nation, running


@pytest.fixture(scope="module")
def nation(small_nation_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("english") / "nation"
    shutil.copytree(small_nation_dir, d)
    with running(d) as n:
        yield n


def toggle(client: httpx.Client, lang: str, back_to: str) -> None:
    r = client.post("/lang", data={"lang": lang, "next": back_to}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == back_to


def test_portal_login_page_in_japanese_then_english(nation: Nation) -> None:
    portal = nation.urls[nation.topology.of_kind("portal")[0].id]
    with httpx.Client(base_url=portal) as client:
        ja = client.get("/").text
        assert '<html lang="ja">' in ja
        assert "マイナンバーカードでログイン" in ja and ">English</button>" in ja
        assert '<input type="hidden" name="next" value="/">' in ja
        toggle(client, "en", "/")
        en = client.get("/").text
        assert '<html lang="en">' in en
        assert "Log in with your My Number card" in en and "マイナンバーカードでログイン" not in en
        assert '"Wrong PIN ({n} tries left)"' in en  # the page's script speaks English too
        assert ">日本語</button>" in en
        toggle(client, "ja", "/")
        assert "マイナンバーカードでログイン" in client.get("/").text


def test_kiosk_in_english(nation: Nation) -> None:
    base = nation.urls[nation.municipalities()[0].org_id]
    with httpx.Client(base_url=base) as client:
        assert "本人のみ" in client.get("/kiosk/").text
        toggle(client, "en", "/kiosk/")
        en = client.get("/kiosk/").text
        assert '<html lang="en">' in en and "Myself only" in en and "本人のみ" not in en


def test_staff_terminal_in_english_with_data_untranslated(nation: Nation, staff_login) -> None:
    rt = nation.municipalities()[0]
    with rt.db.transaction() as s:
        r = s.scalar(select(Resident).where(Resident.status == "active").order_by(Resident.id).limit(1))
        assert r is not None
        rid, family, given = r.id, r.family_name, r.given_name
    client = staff_login(nation, rt.org_id, ["resident_records"], "住民票の写し等の交付")
    try:
        home = client.get("/staff/home").text
        assert '<html lang="ja">' in home and "住民記録: 検索・住民票" in home
        assert "受付中: 住民票の写し等の交付" in home
        toggle(client, "en", "/staff/home")
        home = client.get("/staff/home").text
        assert '<html lang="en">' in home
        assert "Resident records: search and resident record (住民票)" in home
        assert "（Resident records (住民記録)）" in home  # the role, from Python, through the label filter
        assert "Serving: Issuing copies of the resident record etc." in home
        assert "メニュー" not in home and "ログアウト" not in home
        # a register page: domain terms keep their Japanese beside the English; names stay Japanese
        page = client.get(f"/staff/residents/{rid}").text
        assert '<html lang="en">' in page
        assert "Resident record (住民票)" in page and f"{family}　{given}" in page
        assert "Change history (異動履歴)" in page
        assert f'<input type="hidden" name="next" value="/staff/residents/{rid}">' in page
        # the toggle on a page that answered a POST goes back to the page that sent it
        failed = client.post(
            "/staff/applicant",
            data={"password": "wrong", "purpose": "住民票の写し等の交付"},
            headers={"referer": f"{client.base_url}/staff/applicant"},
        ).text
        assert "Begin with an applicant" in failed
        assert '<input type="hidden" name="next" value="/staff/applicant">' in failed
    finally:
        client.close()


@pytest.mark.parametrize(
    ("path", "english"),
    [
        ("/staff/?q=ワ", "Search former names and addresses too"),
        ("/staff/residents/{rid}/events/move", "Move within the municipality (転居届)"),
        ("/staff/events/move-in", "Moving-out certificate (転出証明書, JSON)"),
        ("/staff/forms/residents/{rid}", "Copy of the resident record (住民票の写し)"),
        ("/staff/cards/", "Cards waiting for hand-over"),
        ("/staff/cards/pin-reset", "Reset a PIN (unlock)"),
        ("/staff/counter/", "Read the individual number and open the record"),
        ("/staff/counter/residents/{rid}", "Child allowance claim"),
        ("/staff/counter/waiting", "Queries waiting for their answer"),
        ("/staff/outreach/", "Write a new notice"),
        ("/staff/outreach/new", "Find the recipients (count and sample)"),
        ("/staff/links/", "To review"),
        ("/staff/admin/access-log", "Time (JST)"),
        ("/staff/admin/accounts", "Initial password (12 characters or more)"),
        ("/staff/admin/linkage", "Information linkage: registration status"),
        ("/documents/verify", "Verify a certificate issued by"),
    ],
)
def test_every_staff_screen_renders_in_english(nation: Nation, staff_login, path: str, english: str) -> None:
    rt = nation.municipalities()[0]
    with rt.db.transaction() as s:
        rid = s.scalar(select(Resident.id).where(Resident.status == "active").order_by(Resident.id).limit(1))
    client = staff_login(
        nation, rt.org_id, ["resident_records", "tax", "welfare", "admin"], "住民票の写し等の交付"
    )
    try:
        client.cookies.set("lang", "en")
        r = client.get(path.format(rid=rid))
        assert r.status_code == 200, r.text[:300]
        assert '<html lang="en">' in r.text and english in r.text
        assert 'id="lang-toggle"' in r.text
    finally:
        client.close()
