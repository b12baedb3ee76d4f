"""The portal's login asks J-LIS once (OCSP response + subscriber in one signed call) and never
caches the answer: a card stopped right after a good login is refused at the next one; J-LIS gives
the subscriber only to the portal and only for the certificate the OCSP request is about."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from kojinbango.card.reader import CardReader
from kojinbango.card.verify import load_certificate, ocsp_request
from kojinbango.common.signing import sign_request
from kojinbango.holder import Client, HolderError, issue_card, portal_login, suspend_card
from kojinbango.nation import Nation
from kojinbango.portal.records_models import SessionCertificate

ORG = "m131016"


def _card(client: Client, residents, tmp_path: Path, name: str) -> Path:  # type: ignore[no-untyped-def]
    out = tmp_path / f"{name}.json"
    issue_card(client, residents.take(ORG).resident_code, "1234", "ABC123", out)
    return out


def _login_check(nation: Nation, sender: str, serial: str, der: bytes) -> httpx.Response:
    path = "/api/jpki/login-check"
    body = json.dumps({"serial": serial, "ocsp_request": base64.b64encode(der).decode()}).encode()
    headers = sign_request(nation.topology.credentials(sender), "POST", path, "", body, "jlis")
    headers["content-type"] = "application/json"
    return httpx.post(nation.urls["jlis"] + path, content=body, headers=headers)


def test_a_card_stopped_right_after_a_good_login_is_refused_at_the_next(
    card_nation: Nation, client: Client, residents, tmp_path: Path
) -> None:
    card = _card(client, residents, tmp_path, "quick")
    first = portal_login(client, card, "1234")
    assert first["logged_in"]
    serial = str(load_certificate(CardReader(card).auth_certificate()).serial_number)
    with card_nation.runtime("portal").db.transaction() as s:  # written in the login's transaction
        assert serial in set(s.scalars(select(SessionCertificate.serial)))
    suspend_card(client, card)
    with pytest.raises(HolderError) as refused:
        portal_login(client, card, "1234")  # a moment later: no cached "good"
    assert refused.value.reason == "suspended"


def test_only_the_portal_may_ask_and_only_about_the_certificate_it_names(
    card_nation: Nation, client: Client, residents, tmp_path: Path
) -> None:
    from cryptography import x509

    card = _card(client, residents, tmp_path, "check")
    cert = load_certificate(CardReader(card).auth_certificate())
    ca = x509.load_pem_x509_certificate(httpx.get(card_nation.urls["jlis"] + "/jpki/ca.pem").content)
    der, _ = ocsp_request(cert, ca)
    ok = _login_check(card_nation, "portal", str(cert.serial_number), der)
    assert ok.status_code == 200, ok.text
    assert ok.json()["subscriber"]["subscriber_id"] and ok.json()["ocsp_response"]
    municipality = _login_check(card_nation, ORG, str(cert.serial_number), der)  # a trusted caller
    assert municipality.status_code == 401 and "only the portal" in municipality.json()["detail"]
    other = _login_check(card_nation, "portal", str(cert.serial_number + 1), der)
    assert other.status_code == 422 and "another certificate" in other.json()["detail"]
    suspend_card(client, card)
    held = _login_check(card_nation, "portal", str(cert.serial_number), der)
    assert held.status_code == 200 and held.json()["subscriber"] is None  # names nobody while stopped
