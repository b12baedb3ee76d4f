"""The people's side in a real browser (Debian's chromium, headless, driven by Playwright): staff log
in with password and TOTP, open an applicant, search, issue a signed 住民票の写し, read a card at
the counter, send a push notice; a resident reads it in the portal, sees 自己情報 and uses the
コンビニ交付 kiosk.  Screenshots of every step go to artifacts/screenshots/people/ (gitignored)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import select

from browser import ARGS, CHROMIUM, SHOTS, needs_chromium
from kojinbango.card.service import ReaderThread
from kojinbango.holder import Client, issue_card
from kojinbango.municipality.outreach.service import age_on
from kojinbango.municipality.register.models import Resident
from kojinbango.municipality.staff.client import create_staff
from kojinbango.nation import running

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = needs_chromium
ORG = "m131016"
PIN = "1357"


@pytest.fixture(scope="module")
def world(small_nation_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("people-browser") / "nation"
    shutil.copytree(small_nation_dir, d)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with running(d) as nation:
        today = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=9)).date()
        with nation.runtimes[ORG].db.transaction() as s:
            people = list(
                s.scalars(select(Resident).where(Resident.status == "active").order_by(Resident.id))
            )
        by_household: dict[int, list[Resident]] = {}
        for p in people:
            by_household.setdefault(p.household_id, []).append(p)
        parent = next(
            next(m for m in ms if m.relationship == "世帯主")
            for ms in by_household.values()
            if any(age_on(m.birth_date, today) < 3 for m in ms)
        )
        client = Client(nation.topology, nation.urls)
        card = d / "parent-card.json"
        issue_card(client, parent.resident_code, PIN, None, card)
        client.close()
        portal = nation.urls[nation.topology.of_kind("portal")[0].id]
        reader = ReaderThread([card], 0, [portal, nation.urls[ORG]])
        staff = nation.runtimes[ORG].services["staff"]
        accounts = {
            role: create_staff(staff, f"b-{role[:6]}", f"{role} 職員", [role])
            for role in ("resident_records", "tax", "welfare", "admin")
        }
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                yield {
                    "nation": nation,
                    "parent": parent,
                    "reader": reader,
                    "portal": portal,
                    "accounts": accounts,
                    "browser": browser,
                }
            finally:
                browser.close()
                reader.stop()


def _until(what: str, check, seconds: float = 60.0) -> None:  # noqa: ANN001
    import time

    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def staff_login(world, role: str, purpose: str | None = None):
    acc = world["accounts"][role]
    page = world["browser"].new_page()
    base = world["nation"].urls[ORG]
    page.goto(base + "/staff/")
    assert "/staff/login" in page.url
    page.fill("#login", acc["login"])
    page.fill("#password", acc["password"])
    totp = pyotp.TOTP(acc["totp_secret"])
    page.fill("#code", totp.now())
    shot(page, f"{role}-01-login")
    page.click("#submit")
    if "/staff/login" in page.url:  # this 30-s step's code was used by another login: take the next
        import time

        time.sleep(30 - time.time() % 30 + 0.5)
        page.fill("#password", acc["password"])
        page.fill("#code", totp.now())
        page.click("#submit")
    if purpose:
        if "/staff/applicant" not in page.url:
            page.goto(base + "/staff/applicant")
        page.select_option("#purpose", purpose)
        page.fill("#password", acc["password"])
        shot(page, f"{role}-02-applicant")
        page.click("#begin")
    return page, base


def test_resident_records_staff_issue_a_certificate(world) -> None:
    page, base = staff_login(world, "resident_records", "住民票の写し等の交付")
    parent = world["parent"]
    page.goto(base + "/staff/?q=" + parent.family_kana)
    assert page.locator(f'a[href="/staff/residents/{parent.id}"]').count() >= 1
    shot(page, "resident_records-03-search")
    page.click(f'a[href="/staff/residents/{parent.id}"]')
    assert "受付中: 住民票の写し等の交付" in page.content()
    shot(page, "resident_records-04-juminhyo")
    page.click("#forms-link")
    page.check("input[name=kind][value=copy]")
    page.select_option("#requester", "agent")
    page.check("#with_my_number")
    page.click("#issue")
    assert "本人又は同一世帯" in page.locator("#error").text_content()
    shot(page, "resident_records-05-refused-number-for-agent")
    page.select_option("#requester", "self")
    with page.expect_download() as dl:
        page.click("#issue")
    pdf = Path(dl.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF") and b"/ByteRange" in pdf  # signed
    page.click("#end-applicant")
    page.goto(base + f"/staff/residents/{parent.id}")
    assert "/staff/applicant" in page.url  # the next applicant needs re-authentication
    page.close()


def test_tax_staff_are_refused_and_admin_sees_the_log(world) -> None:
    page, base = staff_login(world, "tax", "税務（課税・証明）")
    page.goto(base + f"/staff/residents/{world['parent'].id}")
    assert "権限がありません" in page.content()
    shot(page, "tax-03-forbidden")
    page.close()
    page, base = staff_login(world, "admin")
    page.goto(base + "/staff/admin/access-log?kind=resident&subject=" + str(world["parent"].id))
    rows = page.locator("#log tr.entry")
    assert rows.count() >= 2 and "b-reside" in page.content()
    shot(page, "admin-03-access-log")
    page.close()


def test_counter_reads_the_card(world) -> None:
    page, base = staff_login(world, "resident_records", "住民異動届の受付")
    page.goto(base + "/staff/counter/?reader=" + world["reader"].url)
    page.wait_for_selector("#card option", state="attached")
    page.click("#read-face")
    page.wait_for_function("document.getElementById('cert').dataset.reason === 'good'", timeout=20_000)
    assert "有効" in page.locator("#cert").text_content()
    page.fill("#pin", "0000")
    page.click("#read-number")
    page.wait_for_function("document.getElementById('result').dataset.reason === 'wrong_pin'", timeout=20_000)
    shot(page, "counter-01-card-and-wrong-pin")
    page.fill("#pin", PIN)
    page.click("#read-number")
    page.wait_for_url("**/staff/counter/residents/*", timeout=20_000)
    assert world["parent"].family_name in page.locator("#person").text_content()
    shot(page, "counter-02-record")
    page.close()


def test_welfare_counter_writes_a_claim_and_sends_a_query(world) -> None:
    """3-2: the record opened with the card, 福祉 staff write a 児童手当 認定請求 to the 児童手当
    system and see the answer of a 3-3 query sent from the record."""
    page, base = staff_login(world, "welfare", "福祉（給付・手当）")
    page.goto(base + "/staff/counter/?reader=" + world["reader"].url)
    page.wait_for_selector("#card option", state="attached")
    page.fill("#pin", PIN)
    page.click("#read-number")
    page.wait_for_url("**/staff/counter/residents/*", timeout=20_000)
    page.fill("#bank_code", "0005")
    page.fill("#branch_code", "12")  # one digit short
    page.fill("#account_number", "1234567")
    page.fill("#holder_kana", "ヤマダ タロウ")
    page.fill("#declared_income", "4200000")
    page.click("#claim")
    assert "店番は3桁" in page.locator("#claim-error").text_content()
    shot(page, "counter-03-claim-refused")
    page.fill("#branch_code", "123")
    page.click("#claim")
    assert "児童手当を登録しました" in page.locator("#claim-done").text_content()
    shot(page, "counter-04-claim-written")
    page.fill("#provider", "131041")
    page.fill("#affair", "child-allowance")
    page.select_option("#info", "地方税関係情報")
    page.click("#query")
    page.wait_for_selector("#answer", timeout=30_000)
    assert page.locator("#answer").get_attribute("data-status") == "not_held"
    assert "該当なし" in page.locator("#answer-status").text_content()
    shot(page, "counter-05-query-answer")
    page.close()


def test_push_notice_reaches_the_portal_and_the_kiosk_issues(world) -> None:
    portal = world["portal"]
    resident = world["browser"].new_page()
    resident.goto(f"{portal}/?reader_url={world['reader'].url}")
    resident.wait_for_selector("#card option", state="attached")
    resident.fill("#pin", PIN)
    resident.click("#login")
    resident.wait_for_function("document.getElementById('result').dataset.reason === 'ok'", timeout=20_000)
    resident.goto(portal + "/inbox")  # the first visit: this resident reads notices in the portal
    assert resident.locator("#empty").count() == 1

    page, base = staff_login(world, "welfare", "お知らせの対象確認")
    page.goto(base + "/staff/outreach/new")
    page.fill("#child_under", "3")
    page.select_option("#unit", "household")
    page.click("#preview")
    assert page.locator("#count strong").count() == 1
    shot(page, "welfare-03-targets")
    page.fill("#title", "乳幼児健診のご案内")
    page.fill("#body", "3歳未満のお子さまの健診日程をお知らせします。")
    page.click("#save")
    page.check("#confirm")
    shot(page, "welfare-04-confirm")
    page.click("#send")
    assert page.locator("#sent").count() == 1
    shot(page, "welfare-05-sent")

    # the send returns at once; the municipality's worker carries the notice on: wait for it
    _until(
        "the notice in the portal inbox",
        lambda: resident.goto(portal + "/inbox") and "乳幼児健診のご案内" in resident.content(),
    )
    shot(resident, "resident-01-inbox")
    resident.click("text=乳幼児健診のご案内")
    assert "健診日程" in resident.locator("#body").text_content()
    shot(resident, "resident-02-notice")
    resident.goto(portal + "/self")
    assert world["parent"].family_name in resident.content() and "********" in resident.content()
    shot(resident, "resident-03-self")

    _until("read status on the staff screen", lambda: page.reload() and "既読" in page.content())
    shot(page, "welfare-06-read-status")
    page.close()

    kiosk = world["browser"].new_page()
    kiosk.goto(world["nation"].urls[ORG] + "/kiosk/?reader=" + world["reader"].url)
    kiosk.wait_for_selector("#card option", state="attached")
    kiosk.fill("#pin", PIN)
    kiosk.click("#issue")
    kiosk.wait_for_function("document.getElementById('result').dataset.reason === 'ok'", timeout=30_000)
    assert kiosk.locator("#download").is_visible()
    shot(kiosk, "resident-04-kiosk")
    kiosk.close()
    resident.close()
