"""Flow 2 end to end over the organisations' HTTP APIs: both issuance options, the portal and the
bank as relying parties, the card's life, and register events revoking certificates."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from kojinbango.card.photo import synthetic_photo
from kojinbango.card.profile import POLICY_AUTH, four_info
from kojinbango.card.reader import CardReader
from kojinbango.card.relying import login_message
from kojinbango.domain.jst import today_jst
from kojinbango.holder import Client, HolderError, issue_card, open_bank_account, portal_login, suspend_card
from kojinbango.jlis.cards.models import Card, CardApplication, JpkiCertificate
from kojinbango.municipality.cards.models import CardInSafe, CounterRecord
from kojinbango.nation import Nation

FIRST, SECOND = "m131016", "m131041"  # 交付時来庁方式, 申請時来庁方式


def _issue(client: Client, residents, tmp_path: Path, org: str, name: str, **kw) -> tuple[Path, object]:
    r = residents.take(org, **kw)
    out = tmp_path / f"{name}.json"
    issue_card(client, r.resident_code, "1234", "ABC123", out)
    return out, r


def _refusal(fn, *args) -> HolderError:
    with pytest.raises(HolderError) as exc:
        fn(*args)
    return exc.value


def test_issuance_modes_are_per_municipality(card_nation: Nation) -> None:
    assert card_nation.topology.settings["card_issuance"] == {
        FIRST: "交付時来庁方式",
        SECOND: "申請時来庁方式",
    }


def test_kofu_ji_raicho_card_and_portal_login(
    card_nation: Nation, client: Client, residents, tmp_path: Path
) -> None:
    card, r = _issue(client, residents, tmp_path, FIRST, "a")
    info = CardReader(card).info()
    assert info["certificates"] == {"auth": True, "sign": True}
    assert info["face"]["name"] == f"{r.family_name}\u3000{r.given_name}"
    login = portal_login(client, card, "1234")
    assert login["logged_in"] and login["name"] == f"{r.family_name}\u3000{r.given_name}"
    # the municipality kept the card in its safe, then handed it over; the chip left with the holder
    with card_nation.runtimes[FIRST].db.transaction() as s:
        safe = s.get(CardInSafe, info["card_serial"])
        assert safe is not None and safe.status == "handed_over" and safe.chip is None
        assert safe.notice_sent_at is not None  # 交付通知書
        actions = list(
            s.scalars(select(CounterRecord.action).where(CounterRecord.card_serial == safe.card_serial))
        )
        assert actions == ["交付（暗証番号設定）"]
    with card_nation.runtime("jlis").db.transaction() as s:
        jc = s.get(Card, info["card_serial"])
        assert jc is not None and jc.status == "issued" and jc.chip is None  # J-LIS keeps no private key
        assert (
            s.scalar(
                select(func.count())
                .select_from(JpkiCertificate)
                .where(JpkiCertificate.card_serial == jc.card_serial)
            )
            == 2
        )


def test_shinsei_ji_raicho_card_is_mailed_ready(
    card_nation: Nation, client: Client, residents, tmp_path: Path
) -> None:
    card, r = _issue(client, residents, tmp_path, SECOND, "b")
    assert portal_login(client, card, "1234")["logged_in"]
    with card_nation.runtime("jlis").db.transaction() as s:
        app = s.scalar(select(CardApplication).where(CardApplication.resident_code == r.resident_code))
        assert app is not None and app.channel == "counter" and app.pin_verifiers is None  # PINs not kept
    with card_nation.runtimes[SECOND].db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(CardInSafe)) == 0  # never went to the municipality
        assert "交付申請（申請時来庁）" in s.scalars(select(CounterRecord.action)).all()


def test_wrong_pins_lock_and_only_the_counter_unlocks(client: Client, residents, tmp_path: Path) -> None:
    from kojinbango.holder import counter

    card, _ = _issue(client, residents, tmp_path, FIRST, "c")
    assert _refusal(portal_login, client, card, "1111").tries_left == 2
    assert _refusal(portal_login, client, card, "1111").tries_left == 1
    third = _refusal(portal_login, client, card, "1111")
    assert third.reason == "pin_locked"
    fourth = _refusal(portal_login, client, card, "1234")  # right PIN, still locked
    assert fourth.reason == "pin_locked"
    counter(client, card, "pin-reset", which="auth", new_pin="5678")
    assert portal_login(client, card, "5678")["logged_in"]


def test_suspension_by_the_24h_line_and_lifting_at_the_counter(
    client: Client, residents, tmp_path: Path
) -> None:
    from kojinbango.holder import counter

    card, _ = _issue(client, residents, tmp_path, SECOND, "d")
    assert suspend_card(client, card)["status"] == "suspended"
    assert _refusal(portal_login, client, card, "1234").reason == "suspended"
    assert _refusal(open_bank_account, client, card, "ABC123").reason == "suspended"
    counter(client, card, "resume")
    assert portal_login(client, card, "1234")["logged_in"]


def test_move_revokes_the_signing_certificate_only(
    card_nation: Nation, client: Client, residents, tmp_path: Path
) -> None:
    card, r = _issue(client, residents, tmp_path, FIRST, "e")
    opened = open_bank_account(client, card, "ABC123")
    assert (
        opened["name"] == f"{r.family_name}\u3000{r.given_name}"
        and opened["birth_date"] == r.birth_date.isoformat()
    )
    reg = card_nation.register(FIRST)
    reg.move_within(r.household_id, "1000005", "東京都千代田区丸の内一丁目9番1号", "", today_jst())
    reg.push()
    refused = _refusal(open_bank_account, client, card, "ABC123")
    assert refused.reason == "revoked"
    assert portal_login(client, card, "1234")["logged_in"]  # 利用者証明用 survives a move


def test_name_change_revokes_signing_and_death_revokes_both(
    card_nation: Nation, client: Client, residents, tmp_path: Path
) -> None:
    card, r = _issue(client, residents, tmp_path, SECOND, "f")
    reg = card_nation.register(SECOND)
    reg.change_name(r.id, "新姓", r.given_name, "シンセイ", r.given_kana, today_jst())
    reg.push()
    assert _refusal(open_bank_account, client, card, "ABC123").reason == "revoked"
    assert portal_login(client, card, "1234")["name"].startswith("新姓")  # the portal asks J-LIS today's name
    reg.record_death(r.id, today_jst())
    reg.push()
    assert _refusal(portal_login, client, card, "1234").reason == "revoked"
    with card_nation.runtime("jlis").db.transaction() as s:
        c = s.get(Card, CardReader(card).info()["card_serial"])
        assert c is not None and c.status == "abolished" and c.abolish_reason == "死亡"


def test_stale_application_is_caught(card_nation: Nation, client: Client, residents, tmp_path: Path) -> None:
    r = residents.take(FIRST)
    reg = card_nation.register(FIRST)
    reg.move_within(r.household_id, "1000005", "東京都千代田区丸の内二丁目1番1号", "", today_jst())
    reg.push()
    err = _refusal(issue_card, client, r.resident_code, "1234", "ABC123", tmp_path / "g.json")
    assert "stale application" in err.message and r.resident_code not in err.message


def test_change_after_application_stops_manufacture(card_nation: Nation, client: Client, residents) -> None:
    r = residents.take(FIRST)
    found = client.post(FIRST, "/staff/cards/api/find", {"resident_code": r.resident_code})
    photo = base64.b64encode(synthetic_photo(5)).decode()
    client.post(
        "jlis",
        "/cards/apply",
        {"lg_code": "131016", "application_id": found["application_id"], "photo": photo},
    )
    reg = card_nation.register(FIRST)
    reg.change_name(r.id, "変更", r.given_name, "ヘンコウ", r.given_kana, today_jst())
    reg.push()
    made = client.post("jlis", "/staff/cards/manufacture")
    assert made["stale"] >= 1
    with card_nation.runtime("jlis").db.transaction() as s:
        app = s.scalar(select(CardApplication).where(CardApplication.resident_code == r.resident_code))
        assert app is not None and app.status == "stale" and app.card_serial is None
        assert (
            s.scalar(select(func.count()).select_from(Card).where(Card.resident_code == r.resident_code)) == 0
        )


def test_bad_applications_get_clear_errors(client: Client, residents) -> None:
    r = residents.take(FIRST)
    found = client.post(FIRST, "/staff/cards/api/find", {"resident_code": r.resident_code})
    good = base64.b64encode(synthetic_photo(9)).decode()
    cases = [
        ({"photo": base64.b64encode(b"GIF89a" + b"\0" * 4000).decode()}, "not a readable JPEG or PNG"),
        ({"photo": "not base64!"}, "base64"),
        ({"application_id": "1" * 23}, "no 個人番号通知書 with this 申請書ID"),
        ({"lg_code": "131041"}, "counter"),  # the other municipality takes applications at the counter
    ]
    for change, why in cases:
        body = {"lg_code": "131016", "application_id": found["application_id"], "photo": good, **change}
        err = _refusal(client.post, "jlis", "/cards/apply", body)
        assert why in err.message, err.message
    client.post(
        "jlis",
        "/cards/apply",
        {"lg_code": "131016", "application_id": found["application_id"], "photo": good},
    )
    again = _refusal(
        client.post,
        "jlis",
        "/cards/apply",
        {"lg_code": "131016", "application_id": found["application_id"], "photo": good},
    )
    assert "already being processed" in again.message
    with pytest.raises(HolderError, match="4 digits"):
        issue_card(client, r.resident_code, "12345", "ABC123")


def test_no_signing_certificate_under_15(client: Client, residents, tmp_path: Path) -> None:
    card, _ = _issue(client, residents, tmp_path, FIRST, "h", min_age=5, max_age=13)
    info = CardReader(card).info()
    assert info["certificates"] == {"auth": True, "sign": False}
    assert portal_login(client, card, "1234")["logged_in"]
    assert _refusal(open_bank_account, client, card, "ABC123").reason in ("no_certificate",)


# --- attacks on the portal login ------------------------------------------------------------------
@pytest.fixture(scope="module")
def login_card(client: Client, residents, tmp_path_factory: pytest.TempPathFactory) -> Path:
    r = residents.take(FIRST)
    out = tmp_path_factory.mktemp("login") / "card.json"
    issue_card(client, r.resident_code, "1234", "ABC123", out)
    return out


def _signed_login(client: Client, card: Path, key=None, cert_der: bytes | None = None) -> tuple[dict, dict]:
    reader = CardReader(card)
    ch = client.post("portal", "/login/challenge")
    msg = login_message(ch["portal"], ch["challenge_id"], ch["challenge"])
    sig = key.sign(msg, padding.PKCS1v15(), hashes.SHA256()) if key else reader.sign_auth("1234", msg)
    body = {
        "challenge_id": ch["challenge_id"],
        "certificate": base64.b64encode(cert_der or reader.auth_certificate()).decode(),
        "signature": base64.b64encode(sig).decode(),
    }
    return ch, body


def test_replayed_login_is_refused(client: Client, login_card: Path) -> None:
    _, body = _signed_login(client, login_card)
    assert client.post("portal", "/login", body)["name"]
    assert _refusal(client.post, "portal", "/login", body).reason == "replayed"


def test_forged_signature_is_refused(client: Client, login_card: Path) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _, body = _signed_login(client, login_card, key=other)  # the card's certificate, someone else's key
    assert _refusal(client.post, "portal", "/login", body).reason == "bad_signature"
    _, good = _signed_login(client, login_card)
    raw = bytearray(base64.b64decode(good["signature"]))
    raw[10] ^= 1
    good["signature"] = base64.b64encode(bytes(raw)).decode()
    assert _refusal(client.post, "portal", "/login", good).reason == "bad_signature"


def test_certificate_from_another_ca_is_refused(client: Client, login_card: Path) -> None:
    genuine = x509.load_der_x509_certificate(CardReader(login_card).auth_certificate())
    rogue_ca = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    forged = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "forged")]))
        .issuer_name(genuine.issuer)  # claims the JPKI CA's name
        .public_key(key.public_key())
        .serial_number(genuine.serial_number)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.CertificatePolicies([x509.PolicyInformation(POLICY_AUTH, None)]), False)
        .sign(rogue_ca, hashes.SHA256())
    )
    from cryptography.hazmat.primitives.serialization import Encoding

    _, body = _signed_login(client, login_card, key=key, cert_der=forged.public_bytes(Encoding.DER))
    assert _refusal(client.post, "portal", "/login", body).reason == "unknown_ca"


def test_signing_certificate_is_not_a_login(client: Client, login_card: Path) -> None:
    reader = CardReader(login_card)
    ch = client.post("portal", "/login/challenge")
    sig, cert = reader.sign_with_signing_key(
        "ABC123", login_message(ch["portal"], ch["challenge_id"], ch["challenge"])
    )
    body = {
        "challenge_id": ch["challenge_id"],
        "certificate": base64.b64encode(cert).decode(),
        "signature": base64.b64encode(sig).decode(),
    }
    assert _refusal(client.post, "portal", "/login", body).reason == "wrong_certificate"


def test_session_and_signing_certificate_contents(
    client: Client, login_card: Path, card_nation: Nation
) -> None:
    _, body = _signed_login(client, login_card)
    result = client.post("portal", "/login", body)
    me = httpx.get(
        card_nation.urls["portal"] + "/me", headers={"authorization": "Bearer " + result["session"]}
    )
    assert me.status_code == 200 and me.json()["name"] == result["name"]
    assert httpx.get(card_nation.urls["portal"] + "/me").status_code == 401
    auth = x509.load_der_x509_certificate(CardReader(login_card).auth_certificate())
    assert four_info(auth) == {}  # 利用者証明用 carries no 4情報
    sign = x509.load_der_x509_certificate(CardReader(login_card).signing_certificate("ABC123"))
    assert set(four_info(sign)) == {"name", "address", "birth_date", "sex"}
    assert sign.public_key().key_size == 2048 and isinstance(sign.signature_hash_algorithm, hashes.SHA256)


def test_serial_to_resident_code_for_the_own_municipality_only(card_nation: Nation, login_card: Path) -> None:
    serial = str(x509.load_der_x509_certificate(CardReader(login_card).auth_certificate()).serial_number)
    own = card_nation.runtimes[FIRST].client.call("jlis", "POST", "/api/jpki/holder", {"serial": serial})
    assert own["kind"] == "auth" and len(own["resident_code"]) == 11
    from kojinbango.common.transport import RemoteError

    with pytest.raises(RemoteError) as exc:
        card_nation.runtimes[SECOND].client.call("jlis", "POST", "/api/jpki/holder", {"serial": serial})
    assert exc.value.status == 404
    with pytest.raises(RemoteError) as exc:
        card_nation.runtimes["portal"].client.clients[0].call(
            "jlis", "POST", "/api/jpki/holder", {"serial": serial}
        )
    assert exc.value.status == 401


def test_counter_work_asks_each_municipality_but_a_refused_signature_is_an_error(
    card_nation: Nation, residents, tmp_path: Path
) -> None:
    """`card resume` looks for the card's municipality: one that does not know the card (404) or
    whose key this machine does not hold is passed over; one that refuses the call's signature (401)
    is a fault to report, not "not this municipality"."""
    from kojinbango.common.topology import TopologyError
    from kojinbango.common.transport import SignedClient
    from kojinbango.holder import counter

    client = Client(card_nation.topology, card_nation.urls)
    try:
        card, _ = _issue(client, residents, tmp_path, SECOND, "k")
        assert suspend_card(client, card)["status"] == "suspended"

        real_credentials = card_nation.topology.credentials

        def only_second(org_id: str):  # this machine holds only 新宿区's key
            if org_id == FIRST:
                raise TopologyError(f"no private key for {org_id} here")
            return real_credentials(org_id)

        client.topology.credentials = only_second  # type: ignore[method-assign]
        try:
            assert counter(client, card, "resume")["card_serial"]
        finally:
            del client.topology.credentials
        assert portal_login(client, card, "1234")["logged_in"]

        # the first municipality's interface is called with another organisation's signature
        assert suspend_card(client, card)["status"] == "suspended"
        client._signed[FIRST] = SignedClient(
            card_nation.topology.credentials(SECOND),
            card_nation.topology.trust_store(),
            {FIRST: card_nation.urls[FIRST]},
        )
        refused = _refusal(counter, client, card, "resume")
        assert refused.reason == "http_401"
        assert _refusal(portal_login, client, card, "1234").reason == "suspended"  # nothing was lifted
    finally:
        client.close()
