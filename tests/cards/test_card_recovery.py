"""Issue 3: a hand-over interrupted between J-LIS issuing the certificates and the municipality
saving the card is finished by doing it again — one card, one pair of certificates, a working login."""

from __future__ import annotations

import base64
from contextlib import closing
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import func, select

from kojinbango.card.chip import Chip
from kojinbango.card.photo import synthetic_photo
from kojinbango.common.errors import Conflict
from kojinbango.holder import Client, portal_login
from kojinbango.jlis.cards.models import Card, CardEvent, JpkiCertificate
from kojinbango.municipality.cards.models import CardInSafe, CounterRecord
from kojinbango.municipality.staff.client import create_staff, staff_client
from kojinbango.nation import Nation

FIRST = "m131016"


class ProcessDied(Exception):
    """Stands for the municipality's process dying at the injected point."""


def _waiting_card(client: Client, resident) -> str:
    found = client.post(FIRST, "/staff/cards/api/find", {"resident_code": resident.resident_code})
    photo = base64.b64encode(synthetic_photo(resident.id)).decode()
    client.post(
        "jlis",
        "/cards/apply",
        {"lg_code": "131016", "application_id": found["application_id"], "photo": photo},
    )
    client.post("jlis", "/staff/cards/manufacture")
    serial = client.post(FIRST, "/staff/cards/api/waiting", {"resident_code": resident.resident_code})[
        "card_serial"
    ]
    assert serial
    return str(serial)


def test_hand_over_interrupted_after_the_certificates_is_finished_by_a_retry(
    card_nation: Nation, client: Client, residents, tmp_path: Path
) -> None:
    r = residents.take(FIRST)
    serial = _waiting_card(client, r)
    desk = card_nation.runtimes[FIRST].services["cards"]
    jlis_db = card_nation.runtimes["jlis"].db

    def die(card_serial: str) -> None:
        assert card_serial == serial
        raise ProcessDied

    desk.after_certificates = die  # the documented seam between J-LIS's answer and saving the card
    try:
        with pytest.raises(ProcessDied):
            desk.hand_over(serial, "運転免許証", "madoguchi-r", "1234", "ABC123")
    finally:
        desk.after_certificates = None

    # the stranded state of issue 3: J-LIS issued, the municipality still holds the card
    with jlis_db.transaction() as s:
        assert s.get(Card, serial).status == "issued"
        first_serials = set(
            s.scalars(select(JpkiCertificate.serial).where(JpkiCertificate.card_serial == serial))
        )
    assert len(first_serials) == 2
    with card_nation.runtimes[FIRST].db.transaction() as s:
        kept = s.get(CardInSafe, serial)
        assert kept.status == "issuing" and kept.chip is not None and kept.issue_key
    assert desk.interrupted_hand_overs() == [serial]

    # the counter sees it and does the hand-over again, logged in (the holder sets the PINs again)
    base = card_nation.urls[FIRST]
    account = create_staff(
        card_nation.runtimes[FIRST].services["staff"], "madoguchi-r", "窓口 再開", ["resident_records"]
    )
    with closing(staff_client(base, account, "個人番号カードの交付・手続")) as staff:
        assert "交付処理中断" in staff.get(base + "/staff/cards/").text
        page = staff.get(f"{base}/staff/cards/{serial}")
        assert page.status_code == 200 and 'id="interrupted"' in page.text
        no_sign = staff.post(
            f"{base}/staff/cards/{serial}/hand-over",
            data={"identity_document": "運転免許証", "auth_pin": "1234", "photo_checked": "1"},
        )
        assert no_sign.status_code == 422 and "署名用 PIN again" in no_sign.text
        done = staff.post(
            f"{base}/staff/cards/{serial}/hand-over",
            data={
                "identity_document": "運転免許証",
                "auth_pin": "1234",
                "sign_pin": "ABC123",
                "photo_checked": "1",
            },
        )
        assert done.status_code == 200, done.text
        again = staff.post(
            f"{base}/staff/cards/{serial}/hand-over",
            data={
                "identity_document": "運転免許証",
                "auth_pin": "1234",
                "sign_pin": "ABC123",
                "photo_checked": "1",
            },
        )
        assert again.status_code == 409  # handed over: never a second time
    card = tmp_path / "recovered.json"
    card.write_text(done.text)

    # exactly one card and one pair of certificates, and they are the ones on the chip
    with jlis_db.transaction() as s:
        assert (
            s.scalar(select(func.count()).select_from(Card).where(Card.resident_code == r.resident_code)) == 1
        )
        certs = list(
            s.scalars(select(JpkiCertificate).where(JpkiCertificate.resident_code == r.resident_code))
        )
        events = list(s.scalars(select(CardEvent.event).where(CardEvent.card_serial == serial)))
    assert sorted(c.kind for c in certs) == ["auth", "sign"]
    assert {c.serial for c in certs} == first_serials
    chip = Chip.loads(card.read_text())
    on_chip = {
        str(x509.load_der_x509_certificate(chip.certificate_der(k)).serial_number) for k in ("auth", "sign")
    }
    assert on_chip == first_serials
    assert events.count("電子証明書発行") == 1 and "交付（再要求）" in events
    with card_nation.runtimes[FIRST].db.transaction() as s:
        records = list(s.scalars(select(CounterRecord).where(CounterRecord.card_serial == serial)))
        assert s.get(CardInSafe, serial).status == "handed_over"
    assert [(x.action, x.staff, x.detail.get("certificates_repeated")) for x in records] == [
        ("交付（暗証番号設定）", "madoguchi-r", True)
    ]
    assert desk.interrupted_hand_overs() == []
    assert portal_login(client, card, "1234")["name"] == f"{r.family_name}\u3000{r.given_name}"


def test_jlis_answers_a_repeat_only_for_the_same_key_and_keys(
    card_nation: Nation, client: Client, residents
) -> None:
    r = residents.take(FIRST)
    serial = _waiting_card(client, r)
    centre = card_nation.runtimes["jlis"].services["cards"]
    with card_nation.runtimes[FIRST].db.transaction() as s:
        chip = Chip.loads(s.get(CardInSafe, serial).chip)
    auth, sign = chip.public_key_pem("auth"), chip.public_key_pem("sign")
    key = "k" * 32
    first = centre.issue_at_counter("131016", serial, auth, sign, key)
    assert centre.issue_at_counter("131016", serial, auth, sign, key) == {**first, "repeated": True}
    with pytest.raises(Conflict, match="not waiting"):  # no key, or another key: no certificates
        centre.issue_at_counter("131016", serial, auth, sign, None)
    with pytest.raises(Conflict, match="not waiting"):
        centre.issue_at_counter("131016", serial, auth, sign, "x" * 32)
    with pytest.raises(Conflict, match="other keys"):  # the key alone does not fetch another's keys
        centre.issue_at_counter("131016", serial, sign, auth, key)
    with card_nation.runtimes["jlis"].db.transaction() as s:
        assert (
            s.scalar(
                select(func.count()).select_from(JpkiCertificate).where(JpkiCertificate.card_serial == serial)
            )
            == 2
        )
