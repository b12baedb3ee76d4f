"""Signed messages: what verifies and, above all, what must not."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kojinbango.common.documents import sign_document, verify_document
from kojinbango.common.pki import CertificateError, create_ca, issue_org_certificate, verify_org_certificate
from kojinbango.common.signing import (
    InternalKey,
    SignatureError,
    TrustStore,
    sign_request,
    sign_response,
    verify_request,
    verify_response,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrustStore, dict]:
    d = tmp_path_factory.mktemp("pki")
    _, ca = create_ca(d)
    creds = {oid: issue_org_certificate(d, oid, oid) for oid in ("jlis", "m131016", "m131041")}
    trust = TrustStore(ca, {oid: c.certificate for oid, c in creds.items()})
    return d, trust, creds


def test_request_round_trip(pki):
    _, trust, creds = pki
    body = b'{"resident_codes": []}'
    h = sign_request(creds["m131016"], "POST", "/api/numbers/generate", "", body, "jlis")
    v = verify_request(h, "POST", "/api/numbers/generate", "", body, "jlis", trust)
    assert v.signer == "m131016"


@pytest.mark.parametrize(
    "change",
    ["body", "path", "method", "query", "recipient", "signature"],
)
def test_any_alteration_is_refused(pki, change):
    _, trust, creds = pki
    body = b'{"count": 10}'
    h = sign_request(creds["m131016"], "POST", "/api/code-bundles", "a=1", body, "jlis")
    args = {"method": "POST", "path": "/api/code-bundles", "query": "a=1", "body": body, "me": "jlis"}
    if change == "body":
        args["body"] = b'{"count": 99}'
    elif change == "path":
        args["path"] = "/api/numbers/generate"
    elif change == "method":
        args["method"] = "PUT"
    elif change == "query":
        args["query"] = "a=2"
    elif change == "recipient":
        args["me"] = "m131041"
    elif change == "signature":
        sig = h["signature"]
        h = {**h, "signature": sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]}
    with pytest.raises(SignatureError):
        verify_request(h, args["method"], args["path"], args["query"], args["body"], args["me"], trust)


def test_unsigned_and_stale_and_unknown_signer(pki, tmp_path):
    _, trust, creds = pki
    with pytest.raises(SignatureError, match="not signed"):
        verify_request({}, "POST", "/api/x", "", b"", "jlis", trust)
    h = sign_request(creds["m131016"], "POST", "/api/x", "", b"", "jlis")
    with pytest.raises(SignatureError, match="too old"):
        verify_request(h, "POST", "/api/x", "", b"", "jlis", trust, now=time.time() + 3600)
    # A key pair from another deployment's CA is not trusted even with the same organisation id.
    stranger = issue_org_certificate(tmp_path, "m131016", "impostor")
    h = sign_request(stranger, "POST", "/api/x", "", b"", "jlis")
    with pytest.raises(SignatureError, match="does not verify"):
        verify_request(h, "POST", "/api/x", "", b"", "jlis", trust)


def test_foreign_certificate_rejected(pki, tmp_path):
    d, trust, _ = pki
    other = issue_org_certificate(tmp_path, "jlis", "other")
    with pytest.raises(CertificateError):
        verify_org_certificate(other.certificate, trust.ca_cert, "jlis")


def test_response_bound_to_request_and_signer(pki):
    _, trust, creds = pki
    h = sign_response(creds["jlis"], 200, b"{}", "nonce-1")
    assert verify_response(h, 200, b"{}", "jlis", "nonce-1", trust).signer == "jlis"
    with pytest.raises(SignatureError):
        verify_response(h, 200, b"{}", "jlis", "nonce-2", trust)
    with pytest.raises(SignatureError):
        verify_response(h, 200, b"{}", "m131016", "nonce-1", trust)
    with pytest.raises(SignatureError):
        verify_response(h, 500, b"{}", "jlis", "nonce-1", trust)


def test_signed_document(pki):
    _, trust, creds = pki
    doc = sign_document(creds["m131016"], "転出証明書", {"persons": [{"name": "髙橋　一郎"}]})
    assert verify_document(doc, trust, "転出証明書") == ("m131016", {"persons": [{"name": "髙橋　一郎"}]})
    forged = {**doc, "payload": {"persons": [{"name": "高橋　一郎"}]}}
    with pytest.raises(SignatureError):
        verify_document(forged, trust, "転出証明書")
    with pytest.raises(SignatureError):
        verify_document(doc, trust, "個人番号通知書")


def test_an_internal_interface_takes_the_organisations_own_mac_and_nothing_else_does(pki, tmp_path):
    """An organisation's own systems may call its internal interfaces with an HMAC (RFC 9421
    hmac-sha256) under a key derived from its private key: accepted only where the receiver is
    told so (its internal interfaces), only under its own key, and never altered."""
    d, trust, creds = pki
    jlis = creds["jlis"]
    mine = InternalKey.of(jlis)
    body = b'{"count": 1}'
    h = sign_request(jlis, "POST", "/staff/x", "", body, "jlis", mine)
    assert 'alg="hmac-sha256"' in h["signature-input"]
    v = verify_request(h, "POST", "/staff/x", "", body, "jlis", trust, internal=mine)
    assert v.signer == "jlis" and v.mac is True
    # not where the receiver takes signatures only (an /api/ route between organisations)
    with pytest.raises(SignatureError, match="internal interfaces"):
        verify_request(h, "POST", "/staff/x", "", body, "jlis", trust)
    # altered in any signed part
    for change in ({"body": b'{"count": 2}'}, {"path": "/staff/y"}, {"method": "PUT"}):
        args = {"method": "POST", "path": "/staff/x", "body": body} | change
        with pytest.raises(SignatureError):
            verify_request(h, args["method"], args["path"], "", args["body"], "jlis", trust, internal=mine)
    # another organisation's MAC key, or a key that is not this organisation's
    theirs = InternalKey.of(creds["m131016"])
    with pytest.raises(SignatureError, match="internal interfaces"):
        verify_request(
            sign_request(creds["m131016"], "POST", "/staff/x", "", body, "jlis", theirs),
            "POST", "/staff/x", "", body, "jlis", trust, internal=mine,
        )  # fmt: skip
    forged = sign_request(jlis, "POST", "/staff/x", "", body, "jlis", InternalKey("jlis", bytes(32)))
    with pytest.raises(SignatureError, match="does not verify"):
        verify_request(forged, "POST", "/staff/x", "", body, "jlis", trust, internal=mine)
    with pytest.raises(ValueError):
        sign_request(jlis, "POST", "/staff/x", "", body, "jlis", theirs)  # not its own key
    # the answer to such a call comes with the MAC too, and only the organisation itself takes it
    r = sign_response(jlis, 200, b"{}", v.nonce, mine)
    assert verify_response(r, 200, b"{}", "jlis", v.nonce, trust, internal=mine).mac is True
    with pytest.raises(SignatureError):
        verify_response(r, 200, b"{}", "jlis", v.nonce, trust)
    with pytest.raises(SignatureError):
        verify_response(r, 201, b"{}", "jlis", v.nonce, trust, internal=mine)


def test_the_internal_key_follows_the_organisations_private_key(pki, tmp_path):
    d, _, creds = pki
    again = issue_org_certificate(d, "jlis", "jlis")  # the key files read again, as a command does
    assert again.key is not creds["jlis"].key
    assert InternalKey.of(again).secret == InternalKey.of(creds["jlis"]).secret
    assert InternalKey.of(creds["m131016"]).secret != InternalKey.of(creds["jlis"]).secret
    renewed = issue_org_certificate(tmp_path, "jlis", "jlis")  # a new key pair: a new MAC key
    assert InternalKey.of(renewed).secret != InternalKey.of(creds["jlis"]).secret
    assert len(InternalKey.of(renewed).secret) == 32 and "secret" not in repr(InternalKey.of(renewed))
