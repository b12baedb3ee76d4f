"""The issuance desk's counter screens and the card's later life: loss, 廃止, reissue with its fee."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from PIL import Image
from sqlalchemy import select

from kojinbango.card.face import face_lines, render_face
from kojinbango.card.photo import synthetic_photo
from kojinbango.card.reader import CardReader
from kojinbango.common.errors import NotFound, UpstreamRefused
from kojinbango.common.pki import OrgCredentials
from kojinbango.common.transport import SignedClient
from kojinbango.documents.fonts import missing_glyphs
from kojinbango.holder import Client, HolderError, issue_card, portal_login, suspend_card
from kojinbango.municipality.cards.models import CounterRecord
from kojinbango.municipality.staff.client import create_staff, staff_client
from kojinbango.nation import Nation

FIRST = "m131016"


def _waiting_card(client: Client, residents) -> tuple[str, str]:
    """A card made and delivered to the municipality, not yet handed over (交付時来庁方式)."""
    r = residents.take(FIRST)
    found = client.post(FIRST, "/staff/cards/api/find", {"resident_code": r.resident_code})
    photo = base64.b64encode(synthetic_photo(r.id)).decode()
    client.post(
        "jlis",
        "/cards/apply",
        {"lg_code": "131016", "application_id": found["application_id"], "photo": photo},
    )
    client.post("jlis", "/staff/cards/manufacture")
    serial = client.post(FIRST, "/staff/cards/api/waiting", {"resident_code": r.resident_code})["card_serial"]
    assert serial
    return serial, f"{r.family_name}\u3000{r.given_name}"


def test_counter_screens_hand_over(card_nation: Nation, client: Client, residents, tmp_path: Path) -> None:
    serial, name = _waiting_card(client, residents)
    base = card_nation.urls[FIRST]
    account = create_staff(
        card_nation.runtimes[FIRST].services["staff"], "madoguchi-a", "窓口 一郎", ["resident_records"]
    )
    staff = staff_client(base, account, "個人番号カードの交付・手続")
    listing = staff.get(base + "/staff/cards/")
    assert listing.status_code == 200 and name in listing.text and f">…{serial[-4:]}<" in listing.text
    page = staff.get(f"{base}/staff/cards/{serial}")
    assert page.status_code == 200 and f"/staff/cards/{serial}/face.png" in page.text
    png = staff.get(f"{base}/staff/cards/{serial}/face.png")
    assert png.headers["content-type"] == "image/png" and Image.open(io.BytesIO(png.content)).size == (
        1012,
        638,
    )
    assert 'name="staff"' not in page.text and "窓口 一郎（madoguchi-a）" in page.text  # no typed name
    # a name typed into the form anyway is ignored: the record names the logged-in account
    form = {"identity_document": "運転免許証", "staff": "窓口A", "auth_pin": "1234", "sign_pin": "ABC123"}
    refused = staff.post(f"{base}/staff/cards/{serial}/hand-over", data=form)
    assert refused.status_code == 422 and "photo matches" in refused.text
    bad_pin = staff.post(
        f"{base}/staff/cards/{serial}/hand-over", data={**form, "photo_checked": "1", "sign_pin": "abc"}
    )
    assert bad_pin.status_code == 422 and "署名用電子証明書 PIN" in bad_pin.text
    done = staff.post(f"{base}/staff/cards/{serial}/hand-over", data={**form, "photo_checked": "1"})
    assert done.status_code == 200 and "attachment" in done.headers["content-disposition"]
    card = tmp_path / "handed.json"
    card.write_text(done.text)
    assert portal_login(client, card, "1234")["name"] == name
    # lock the PIN, then reset it at the counter screen with the card file
    for _ in range(3):
        with pytest.raises(HolderError):
            portal_login(client, card, "0000")
    reset = staff.post(
        base + "/staff/cards/pin-reset",
        data={"which": "auth", "new_pin": "9876", "identity_document": "パスポート"},
        files={"card": ("card.json", card.read_bytes(), "application/json")},
    )
    assert reset.status_code == 200
    card.write_text(reset.text)
    assert portal_login(client, card, "9876")["logged_in"]
    suspend_card(client, card)
    form = {"card_serial": serial, "identity_document": "運転免許証"}
    lifted = staff.post(base + "/staff/cards/resume", data=form)
    assert lifted.status_code == 200 and "解除しました" in lifted.text
    assert portal_login(client, card, "9876")["logged_in"]
    with card_nation.runtimes[FIRST].db.transaction() as s:
        rows = list(
            s.execute(
                select(CounterRecord.action, CounterRecord.staff)
                .where(CounterRecord.card_serial == serial)
                .order_by(CounterRecord.id)
            )
        )
    assert [a for a, _ in rows] == ["交付（暗証番号設定）", "暗証番号再設定（auth）", "一時停止解除"]
    assert {who for _, who in rows} == {"madoguchi-a"}
    listing = staff.get(base + "/staff/cards/").text
    assert "<td>madoguchi-a</td>" in listing
    staff.close()


def test_loss_abolish_and_reissue(card_nation: Nation, client: Client, residents, tmp_path: Path) -> None:
    r = residents.take(FIRST)
    card = tmp_path / "lost.json"
    issue_card(client, r.resident_code, "1234", "ABC123", card)
    serial = CardReader(card).info()["card_serial"]
    suspend_card(client, card)  # lost: the 24-hour line first
    desk = card_nation.runtimes[FIRST].services["cards"]
    desk.abolish(serial, "紛失", "窓口C")
    found = desk.find(r.resident_code)
    with pytest.raises(Exception, match="abolished"):
        desk.lift_suspension(serial, "運転免許証", "窓口C")  # a found card is never revived
    with pytest.raises(HolderError) as exc:
        portal_login(client, card, "1234")
    assert exc.value.reason == "revoked"
    answer = desk.apply_at_counter(
        found["application_id"], synthetic_photo(3), "運転免許証", "窓口C", reissue=True
    )
    assert answer["fee_yen"] == 1000  # ¥800 card + ¥200 certificates
    client.post("jlis", "/staff/cards/manufacture")
    new_serial = desk.waiting_card(found["resident_id"])
    assert new_serial and new_serial != serial


def test_card_face_text_is_printable() -> None:
    face = {
        "name": "髙橋\u3000𠮷男",
        "address": "東京都千代田区丸の内一丁目1番1号\u3000丸の内ビル101号室",
        "birth_date": "1970-04-01",
        "sex": "1",
        "expires_on": "2036-04-01",
        "municipality_name": "千代田区",
        "photo": base64.b64encode(synthetic_photo(1)).decode(),
    }
    lines = dict(face_lines(face))
    assert lines["生年月日"] == "昭和45年4月1日生" and lines["有効期限"] == "2036年04月01日まで有効"
    for text in lines.values():
        assert missing_glyphs(text) == []  # IPAmj明朝 has every character, 𠮷 and 髙 included
    front = Image.open(io.BytesIO(render_face(face)))
    back = Image.open(io.BytesIO(render_face(face, back=True, my_number="123456789018")))
    assert front.size == back.size == (1012, 638)
    assert (
        json.dumps(face_lines(face), ensure_ascii=False).count("123456789018") == 0
    )  # no number on the front


def test_jlis_refusing_the_municipality_is_a_502_not_the_callers_401(
    card_nation: Nation, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """J-LIS refusing the municipality's own signed call (here: signed with a key J-LIS does not
    hold for it) is not a refusal of the desk's caller: the desk answers 502 and says so."""
    desk = card_nation.runtimes[FIRST].services["cards"]
    real = desk.client
    forged = SignedClient(
        OrgCredentials(FIRST, ec.generate_private_key(ec.SECP256R1()), real.creds.certificate),
        real.trust,
        real.directory,
    )
    monkeypatch.setattr(desk, "client", forged)
    said = "J-LIS refused this municipality's signed request"
    serial = "9" * 16  # not in the safe: the desk asks J-LIS whose card it is
    try:
        with pytest.raises(UpstreamRefused, match=said) as raised:
            desk.lift_suspension(serial, "運転免許証", "窓口C")
        assert raised.value.status == 502
        # the CLI's path (kojinbango/holder.py): its own signature was accepted, so not http_401
        with pytest.raises(HolderError) as refused:
            client.post(
                FIRST,
                "/staff/cards/api/resume",
                {"card_serial": serial, "identity_document": "運転免許証", "staff": "窓口C"},
            )
        assert refused.value.reason == "http_502" and said in refused.value.message
        assert serial not in refused.value.message
        # the counter screen shows the same
        account = create_staff(
            card_nation.runtimes[FIRST].services["staff"], "madoguchi-j", "窓口 二郎", ["resident_records"]
        )
        staff = staff_client(card_nation.urls[FIRST], account, "個人番号カードの交付・手続")
        try:
            page = staff.post(
                card_nation.urls[FIRST] + "/staff/cards/resume",
                data={"card_serial": serial, "identity_document": "運転免許証"},
            )
        finally:
            staff.close()
        assert page.status_code == 502 and "J-LIS refused this municipality" in page.text
    finally:
        forged.close()
    monkeypatch.undo()
    # with its own key the desk is answered again (J-LIS knows no such card)
    with pytest.raises(NotFound):
        desk.lift_suspension(serial, "運転免許証", "窓口C")
