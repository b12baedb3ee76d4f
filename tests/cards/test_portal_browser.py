"""The portal's login page in a real browser (Debian's chromium, headless, driven by Playwright)
with the local card reader: a good login, a PIN locked by wrong tries, and a suspended card."""

from __future__ import annotations

import pytest

from browser import ARGS, CHROMIUM, needs_chromium
from kojinbango.card.service import ReaderThread
from kojinbango.holder import Client, issue_card, suspend_card
from kojinbango.nation import Nation

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = needs_chromium


@pytest.fixture(scope="module")
def reader(card_nation: Nation, client: Client, residents, tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("browser")
    good, held = d / "good.json", d / "held.json"
    issue_card(client, residents.take("m131016").resident_code, "1234", "ABC123", good)
    issue_card(client, residents.take("m131041").resident_code, "2468", "ABC123", held)
    suspend_card(client, held)
    portal = card_nation.urls["portal"]
    r = ReaderThread([good, held], 0, [portal])
    yield r
    r.stop()


def test_login_page_with_the_reader(card_nation: Nation, reader: ReaderThread) -> None:
    portal = card_nation.urls["portal"]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{portal}/?reader_url={reader.url}")
            page.wait_for_selector("#card option", state="attached")
            assert page.locator("#card option").count() == 2
            result = page.locator("#result")

            def login(slot: str, pin: str, reason: str) -> str:
                page.select_option("#card", slot)
                page.fill("#pin", pin)
                page.click("#login")
                page.wait_for_function(
                    "r => document.getElementById('result').dataset.reason === r", arg=reason, timeout=20_000
                )
                text = result.text_content() or ""
                page.evaluate("document.getElementById('result').dataset.reason = ''")
                return text

            assert "ログインしました" in login("0", "1234", "ok")
            assert page.context.cookies()[0]["name"] == "kojinbango_portal"  # the session
            assert "残り2回" in login("0", "0000", "wrong_pin")
            assert "残り1回" in login("0", "0000", "wrong_pin")
            assert "ロック" in login("0", "0000", "pin_locked")
            assert "ロック" in login("0", "1234", "pin_locked")  # the right PIN after the lock
            assert "一時停止" in login("1", "2468", "suspended")
        finally:
            browser.close()
