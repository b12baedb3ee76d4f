"""The JPKI CA and the relying party's checks without any server: expiry, OCSP freshness, nonces."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kojinbango.card.chip import Chip, pin_verifiers
from kojinbango.card.profile import KIND_AUTH, KIND_SIGN, four_info
from kojinbango.card.reader import write_card
from kojinbango.card.verify import JpkiError, check_ocsp_response, ocsp_request, verify_chain
from kojinbango.holder import HolderError, _check_expiry, _reader
from kojinbango.jlis.cards.jpki import CertStatus, JpkiCa

NOW = dt.datetime.now(dt.UTC)


def _pub() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> JpkiCa:
    return JpkiCa(tmp_path_factory.mktemp("jpki"))


def test_ca_is_kept_and_reloaded(ca: JpkiCa, tmp_path: Path) -> None:
    first = JpkiCa(tmp_path)
    again = JpkiCa(tmp_path)
    assert first.der() == again.der()
    assert (tmp_path / "jpki-ca.key").stat().st_mode & 0o077 == 0  # the CA key is J-LIS's alone


def test_expired_certificate_is_refused(ca: JpkiCa) -> None:
    cert = ca.issue(KIND_AUTH, _pub(), NOW + dt.timedelta(days=1), "http://x/crl.der")
    verify_chain(cert, ca.certificate, KIND_AUTH, NOW)
    with pytest.raises(JpkiError) as exc:
        verify_chain(cert, ca.certificate, KIND_AUTH, NOW + dt.timedelta(days=2))
    assert exc.value.reason == "expired"
    with pytest.raises(JpkiError) as exc:
        verify_chain(cert, ca.certificate, KIND_SIGN, NOW)
    assert exc.value.reason == "wrong_certificate"


def test_signing_certificate_needs_and_carries_four_info(ca: JpkiCa) -> None:
    with pytest.raises(ValueError, match="4情報"):
        ca.issue(KIND_SIGN, _pub(), NOW + dt.timedelta(days=1), "http://x/crl.der")
    four = {
        "name": "渡邉\u3000𠮷子",
        "address": "東京都新宿区西新宿二丁目8番1号",
        "birth_date": "1990-02-03",
        "sex": "2",
    }
    cert = ca.issue(KIND_SIGN, _pub(), NOW + dt.timedelta(days=1), "http://x/crl.der", four)
    assert four_info(cert) == four
    with pytest.raises(ValueError, match="RSA-2048"):
        small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
        ca.issue(
            KIND_AUTH,
            small.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode(),
            NOW,
            "u",
        )


def test_ocsp_answers(ca: JpkiCa) -> None:
    cert = ca.issue(KIND_AUTH, _pub(), NOW + dt.timedelta(days=1), "http://x/crl.der")
    statuses = {cert.serial_number: CertStatus("good")}
    der, nonce = ocsp_request(cert, ca.certificate, with_nonce=True)
    answer = ca.ocsp_response(der, lambda s: statuses.get(s, CertStatus("unknown")))
    assert check_ocsp_response(answer, cert, ca.certificate, nonce) == "good"
    with pytest.raises(JpkiError, match="nonce"):
        check_ocsp_response(answer, cert, ca.certificate, b"another nonce!!!")
    with pytest.raises(JpkiError, match="stale"):
        check_ocsp_response(answer, cert, ca.certificate, nonce, now=NOW + dt.timedelta(hours=1))
    plain, _ = ocsp_request(cert, ca.certificate)
    first = ca.ocsp_response(plain, lambda s: statuses[s])
    assert ca.ocsp_response(plain, lambda s: statuses[s]) == first  # pre-produced (RFC 5019)
    statuses[cert.serial_number] = CertStatus("suspended", "certificate_hold", NOW.replace(tzinfo=None))
    held = ca.ocsp_response(plain, lambda s: statuses[s])
    assert held != first and check_ocsp_response(held, cert, ca.certificate) == "suspended"
    other = JpkiCa.__new__(JpkiCa)
    other.key, other.certificate = JpkiCa._create()
    with pytest.raises(JpkiError, match="signature does not verify"):  # same name, another key
        check_ocsp_response(held, cert, other.certificate)


def test_expired_card_is_refused_before_any_signature(tmp_path: Path) -> None:
    face = {
        "name": "山田\u3000花子",
        "address": "東京都",
        "birth_date": "1980-01-01",
        "sex": "2",
        "expires_on": "2020-01-01",
    }
    chip = Chip.manufacture("9999000011112222", face, "123456789018", "12345678901", with_signing=False)
    chip.set_pin_verifiers(pin_verifiers("1234", None))
    path = tmp_path / "old.json"
    write_card(path, chip)
    with pytest.raises(HolderError) as exc:
        _check_expiry(_reader(path))
    assert exc.value.reason == "card_expired" and "2020-01-01" in exc.value.message
