"""Issue 3: an under-15 holder's PINs are set (and reset) by the 法定代理人 — a parent in the household,
identified at the counter — and the counter record names who it was (DOMAIN.md §6.2)."""

from __future__ import annotations

import base64
import datetime as dt
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import select

from kojinbango.card.photo import synthetic_photo
from kojinbango.domain.guardians import is_parent, parents_of, pin_needs_legal_representative
from kojinbango.domain.jst import today_jst
from kojinbango.holder import Client, counter, issue_card, portal_login
from kojinbango.municipality.cards.models import CounterRecord
from kojinbango.municipality.cards.service import LegalRepresentative
from kojinbango.municipality.register.models import Resident
from kojinbango.municipality.staff.client import create_staff, staff_client
from kojinbango.nation import Nation

FIRST = "m131016"  # 交付時来庁方式
SECOND = "m131041"  # 申請時来庁方式


def test_who_is_a_parent_by_relationship() -> None:
    assert parents_of("子") == {"世帯主", "夫", "妻", "夫（未届）", "妻（未届）"}
    assert is_parent("子の子", "子") and is_parent("子の子", "子の妻") and is_parent("子の子", "子（子の妻）")
    assert is_parent("妻の子", "妻") and not is_parent("妻の子", "世帯主")  # a step-parent is not
    assert is_parent("世帯主", "母") and is_parent("弟", "父")
    assert not is_parent("子", "子") and not is_parent("子", "同居人") and not is_parent("子", "祖父")
    assert not is_parent("同居人", "世帯主") and parents_of("縁故者") == frozenset()
    born = dt.date(2012, 5, 10)
    assert pin_needs_legal_representative(born, dt.date(2027, 5, 9))
    assert not pin_needs_legal_representative(born, dt.date(2027, 5, 10))  # 15 on the birthday


def _child_with_parents(nation: Nation, org_id: str, used: set[int]) -> tuple[Resident, Resident, Resident]:
    """(a child of 1–13 whose 続柄 is 子, their 世帯主 parent, a household member who is not a parent)."""
    today = today_jst()
    with nation.runtimes[org_id].db.transaction() as s:
        for child in s.scalars(
            select(Resident)
            .where(
                Resident.status == "active",
                Resident.relationship == "子",
                Resident.birth_date.between(
                    today.replace(year=today.year - 13), today.replace(year=today.year - 1)
                ),
            )
            .order_by(Resident.id)
        ):
            if child.household_id in used:
                continue
            members = list(
                s.scalars(
                    select(Resident).where(
                        Resident.household_id == child.household_id,
                        Resident.status == "active",
                        Resident.id != child.id,
                    )
                )
            )
            head = next((m for m in members if m.relationship == "世帯主"), None)
            other = next((m for m in members if not is_parent("子", m.relationship)), None)
            if head is not None and other is not None:
                used.add(child.household_id)
                return child, head, other
    raise LookupError("no child with a 世帯主 parent and a non-parent member in the household")


def test_hand_over_and_pin_reset_of_an_under_15_need_the_legal_representative(
    card_nation: Nation, client: Client, residents, tmp_path: Path
) -> None:
    child, head, sibling = _child_with_parents(card_nation, FIRST, residents.used)
    found = client.post(FIRST, "/staff/cards/api/find", {"resident_code": child.resident_code})
    assert found["legal_representatives"]["required"]
    assert head.id in {c["resident_id"] for c in found["legal_representatives"]["candidates"]}
    photo = base64.b64encode(synthetic_photo(child.id)).decode()
    client.post(
        "jlis",
        "/cards/apply",
        {"lg_code": "131016", "application_id": found["application_id"], "photo": photo},
    )
    client.post("jlis", "/staff/cards/manufacture")
    serial = client.post(FIRST, "/staff/cards/api/waiting", {"resident_code": child.resident_code})[
        "card_serial"
    ]
    base = card_nation.urls[FIRST]
    account = create_staff(
        card_nation.runtimes[FIRST].services["staff"], "madoguchi-h", "窓口 保護", ["resident_records"]
    )
    form = {"identity_document": "パスポート", "auth_pin": "4321", "photo_checked": "1"}
    with closing(staff_client(base, account, "個人番号カードの交付・手続")) as staff:
        page = staff.get(f"{base}/staff/cards/{serial}").text
        assert 'id="legal-representative"' in page and f'value="{head.id}"' in page
        assert f'value="{sibling.id}"' not in page
        missing = staff.post(f"{base}/staff/cards/{serial}/hand-over", data=form)
        assert missing.status_code == 422 and "法定代理人" in missing.text
        not_parent = staff.post(
            f"{base}/staff/cards/{serial}/hand-over",
            data={**form, "representative_id": str(sibling.id), "representative_document": "運転免許証"},
        )
        assert not_parent.status_code == 422 and "parent of the holder" in not_parent.text
        no_document = staff.post(
            f"{base}/staff/cards/{serial}/hand-over", data={**form, "representative_id": str(head.id)}
        )
        assert no_document.status_code == 422 and "本人確認書類" in no_document.text
        done = staff.post(
            f"{base}/staff/cards/{serial}/hand-over",
            data={**form, "representative_id": str(head.id), "representative_document": "運転免許証"},
        )
        assert done.status_code == 200, done.text
        card = tmp_path / "child.json"
        card.write_text(done.text)
        assert portal_login(client, card, "4321")["logged_in"]
        # PIN reset at the counter: the screen asks for the 法定代理人 once it sees an under-15's card
        files = {"card": ("card.json", card.read_bytes(), "application/json")}
        reset = {"which": "auth", "new_pin": "8765", "identity_document": "パスポート"}
        asked = staff.post(base + "/staff/cards/pin-reset", data=reset, files=files)
        assert asked.status_code == 422 and f'value="{head.id}"' in asked.text
        ok = staff.post(
            base + "/staff/cards/pin-reset",
            data={**reset, "representative_id": str(head.id), "representative_document": "運転免許証"},
            files=files,
        )
        assert ok.status_code == 200
    card.write_text(ok.text)
    assert portal_login(client, card, "8765")["logged_in"]
    with card_nation.runtimes[FIRST].db.transaction() as s:
        records = list(
            s.scalars(
                select(CounterRecord).where(CounterRecord.card_serial == serial).order_by(CounterRecord.id)
            )
        )
    assert [(x.action, x.staff) for x in records] == [
        ("交付（暗証番号設定）", "madoguchi-h"),
        ("暗証番号再設定（auth）", "madoguchi-h"),
    ]
    for x in records:
        rep = x.detail["legal_representative"]
        assert rep["resident_id"] == head.id and rep["relationship"] == "世帯主"
        assert rep["identity_document"] == "運転免許証" and x.identity_document == "パスポート"


def test_counter_application_of_an_under_15_needs_the_legal_representative(
    card_nation: Nation, client: Client, residents, tmp_path: Path
) -> None:
    """申請時来庁方式: the PINs are given with the application, so the 法定代理人 is there then."""
    child, head, _ = _child_with_parents(card_nation, SECOND, residents.used)
    desk = card_nation.runtimes[SECOND].services["cards"]
    found = desk.find(child.resident_code)
    photo = synthetic_photo(child.id)
    with pytest.raises(Exception, match="法定代理人"):
        desk.apply_at_counter(found["application_id"], photo, "パスポート", "madoguchi-s", "1234")
    desk.apply_at_counter(
        found["application_id"],
        photo,
        "パスポート",
        "madoguchi-s",
        "1234",
        legal_representative=LegalRepresentative(head.id, "運転免許証"),
    )
    with card_nation.runtimes[SECOND].db.transaction() as s:
        record = s.scalar(select(CounterRecord).where(CounterRecord.resident_id == child.id))
        assert record is not None and record.detail["legal_representative"]["resident_id"] == head.id


def test_the_card_command_plays_the_parent_for_a_child(
    card_nation: Nation, client: Client, residents, tmp_path: Path
) -> None:
    child, head, _ = _child_with_parents(card_nation, FIRST, residents.used)
    out = issue_card(client, child.resident_code, "1111", None, tmp_path / "c.json")
    assert out["certificates"] == ["auth"]
    counter(client, tmp_path / "c.json", "pin-reset", which="auth", new_pin="2222")  # `card reset-pin`
    assert portal_login(client, tmp_path / "c.json", "2222")["logged_in"]
    with card_nation.runtimes[FIRST].db.transaction() as s:
        records = list(
            s.scalars(select(CounterRecord).where(CounterRecord.card_serial == out["card_serial"]))
        )
    assert [x.action for x in records] == ["交付（暗証番号設定）", "暗証番号再設定（auth）"]
    assert all(x.detail["legal_representative"]["resident_id"] == head.id for x in records)
