"""The English toggle in a real browser (Debian's chromium, headless, driven by Playwright): a
resident switches the portal to English and logs in with the card; a staff member switches the
staff terminal to English, logs in and begins with an applicant.  Screenshots go to
artifacts/screenshots/people/ (gitignored)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import select

from browser import ARGS, CHROMIUM, SHOTS, needs_chromium
from kojinbango.card.service import ReaderThread
from kojinbango.holder import Client, issue_card
from kojinbango.municipality.register.models import Resident
from kojinbango.municipality.staff.client import create_staff
from kojinbango.nation import running

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = needs_chromium
ORG = "m131016"
PIN = "2468"


@pytest.fixture(scope="module")
def world(small_nation_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("english-browser") / "nation"
    shutil.copytree(small_nation_dir, d)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with running(d) as nation:
        with nation.runtimes[ORG].db.transaction() as s:
            holder = s.scalar(
                select(Resident)
                .where(Resident.status == "active", Resident.relationship == "世帯主")
                .order_by(Resident.id)
                .limit(1)
            )
            assert holder is not None
        client = Client(nation.topology, nation.urls)
        card = d / "holder-card.json"
        issue_card(client, holder.resident_code, PIN, None, card)
        client.close()
        portal = nation.urls[nation.topology.of_kind("portal")[0].id]
        reader = ReaderThread([card], 0, [portal, nation.urls[ORG]])
        account = create_staff(
            nation.runtimes[ORG].services["staff"], "e-records", "英語 職員", ["resident_records"]
        )
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                yield {
                    "nation": nation,
                    "holder": holder,
                    "reader": reader,
                    "portal": portal,
                    "account": account,
                    "browser": browser,
                }
            finally:
                browser.close()
                reader.stop()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_resident_switches_the_portal_to_english_and_logs_in(world) -> None:
    portal = world["portal"]
    page = world["browser"].new_page()
    page.goto(f"{portal}/?reader_url={world['reader'].url}")
    assert page.locator("html").get_attribute("lang") == "ja"
    assert "マイナンバーカードでログイン" in page.content()
    page.click("#lang-toggle")
    page.wait_for_function("document.documentElement.lang === 'en'")
    assert page.url.startswith(portal + "/?reader_url=")  # back on the same page, reader kept
    assert page.locator("#login").text_content() == "Log in"
    page.wait_for_selector("#card option", state="attached")
    page.fill("#pin", "0000")
    page.click("#login")
    page.wait_for_function("document.getElementById('result').dataset.reason === 'wrong_pin'", timeout=20_000)
    assert "Wrong PIN (2 tries left)" in page.locator("#result").text_content()
    page.fill("#pin", PIN)
    page.click("#login")
    page.wait_for_function("document.getElementById('result').dataset.reason === 'ok'", timeout=20_000)
    holder = world["holder"]
    assert page.locator("#result").text_content().startswith("Logged in as ")
    assert holder.family_name in page.locator("#result").text_content()  # the name is not translated
    shot(page, "english-01-portal-login")
    page.goto(portal + "/self")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").text_content() == "My information (自己情報表示)"
    assert holder.family_name in page.content()
    shot(page, "english-02-portal-self")
    page.click("#lang-toggle")  # and back to Japanese, on the same page
    page.wait_for_function("document.documentElement.lang === 'ja'")
    assert page.url == portal + "/self" and page.locator("h1").text_content() == "自己情報表示"
    page.close()


def test_staff_member_switches_the_terminal_to_english(world) -> None:
    acc = world["account"]
    base = world["nation"].urls[ORG]
    page = world["browser"].new_page()
    page.goto(base + "/staff/home")
    assert "/staff/login" in page.url and page.locator("h1").text_content() == "職員ログイン"
    page.click("#lang-toggle")
    page.wait_for_function("document.documentElement.lang === 'en'")
    assert "/staff/login?next=" in page.url and page.locator("h1").text_content() == "Staff login"
    page.fill("#login", acc["login"])
    page.fill("#password", acc["password"])
    page.fill("#code", pyotp.TOTP(acc["totp_secret"]).now())
    shot(page, "english-03-staff-login")
    page.click("#submit")
    page.wait_for_url("**/staff/home")
    assert page.locator("h1").text_content() == "Menu"
    assert "Resident records (住民記録)" in page.locator("#who").text_content()
    page.click("#begin-link")
    page.select_option("#purpose", "住民票の写し等の交付")
    assert "Issuing copies of the resident record" in page.locator("#purpose option:checked").text_content()
    page.fill("#password", acc["password"])
    shot(page, "english-04-staff-applicant")
    page.click("#begin")
    holder = world["holder"]
    page.goto(base + "/staff/?q=" + holder.family_kana)
    page.click(f'a[href="/staff/residents/{holder.id}"]')
    assert page.locator("h1").text_content().startswith("Resident record (住民票)")
    assert holder.family_name in page.locator("h1").text_content()
    assert "Serving: Issuing copies" in page.locator("#applicant").text_content()
    shot(page, "english-05-staff-juminhyo")
    page.close()
