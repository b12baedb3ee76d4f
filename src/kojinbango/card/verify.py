"""Verifying JPKI certificates and signatures, as a relying party (署名検証者・利用者証明検証者) does.

Chain: the certificate must be issued directly by the JPKI CA and valid now.  Revocation: an OCSP
response signed by the CA, fresh, for this very certificate.  Signatures: RSA PKCS#1 v1.5 with
SHA-256, as the card makes them.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import ocsp

from kojinbango.card.profile import KIND_LABELS, certificate_kind

OCSP_MAX_AGE = dt.timedelta(minutes=15)
"""A pre-produced OCSP response older than this is not accepted."""
CLOCK_SKEW = dt.timedelta(minutes=5)


class JpkiError(Exception):
    """A certificate or signature is not acceptable; ``reason`` is a stable machine-readable word."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def load_certificate(data: bytes | str) -> x509.Certificate:
    """A certificate from DER, PEM, or base64 DER; JpkiError("malformed_certificate") otherwise."""
    try:
        if isinstance(data, str):
            text = data.strip()
            if text.startswith("-----BEGIN"):
                return x509.load_pem_x509_certificate(text.encode())
            return x509.load_der_x509_certificate(base64.b64decode(text, validate=True))
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except (ValueError, TypeError) as exc:
        raise JpkiError(
            "malformed_certificate", "the certificate is not a readable X.509 certificate"
        ) from exc


def verify_chain(
    cert: x509.Certificate, ca: x509.Certificate, expected_kind: str, now: dt.datetime | None = None
) -> None:
    """The certificate is issued by the JPKI CA, is of ``expected_kind`` and valid at ``now``."""
    if cert.issuer != ca.subject:
        raise JpkiError("unknown_ca", "the certificate is not issued by the JPKI certificate authority")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise JpkiError(
            "unknown_ca", "the certificate's signature does not verify against the JPKI CA"
        ) from None
    kind = certificate_kind(cert)
    if kind != expected_kind:
        raise JpkiError("wrong_certificate", f"a {KIND_LABELS[expected_kind]} is required")
    moment = now or dt.datetime.now(dt.UTC)
    if moment < cert.not_valid_before_utc - CLOCK_SKEW:
        raise JpkiError("not_yet_valid", "the certificate is not valid yet")
    if moment > cert.not_valid_after_utc:
        raise JpkiError("expired", "the certificate (and so the card's use of it) has expired")


def verify_signature(cert: x509.Certificate, data: bytes, signature: bytes) -> None:
    """RSA PKCS#1 v1.5 / SHA-256 signature by the certificate's key."""
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise JpkiError("malformed_certificate", "the certificate does not hold an RSA key")
    try:
        key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise JpkiError("bad_signature", "the signature does not verify with the certificate's key") from None


def ocsp_request(
    cert: x509.Certificate, ca: x509.Certificate, with_nonce: bool = False
) -> tuple[bytes, bytes]:
    """(DER OCSP request, nonce or b"") for ``cert``."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, ca, hashes.SHA1())
    nonce = b""
    if with_nonce:
        nonce = secrets.token_bytes(16)
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER), nonce


def check_ocsp_response(
    der: bytes,
    cert: x509.Certificate,
    ca: x509.Certificate,
    nonce: bytes = b"",
    now: dt.datetime | None = None,
) -> str:
    """``good``, ``suspended`` (certificateHold) or ``revoked`` from a genuine, fresh OCSP response."""
    try:
        resp = ocsp.load_der_ocsp_response(der)
    except ValueError:
        raise JpkiError("revocation_unknown", "the OCSP answer is not a readable OCSP response") from None
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise JpkiError("revocation_unknown", f"the OCSP responder answered {resp.response_status.name}")
    if resp.responder_name != ca.subject:
        raise JpkiError("revocation_unknown", "the OCSP response is not from the JPKI CA")
    ca_key = ca.public_key()
    assert isinstance(ca_key, rsa.RSAPublicKey)
    algorithm = resp.signature_hash_algorithm
    if algorithm is None:
        raise JpkiError("revocation_unknown", "the OCSP response names no signature hash")
    try:
        ca_key.verify(resp.signature, resp.tbs_response_bytes, padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise JpkiError("revocation_unknown", "the OCSP response's signature does not verify") from None
    if resp.serial_number != cert.serial_number:
        raise JpkiError("revocation_unknown", "the OCSP response is about another certificate")
    if nonce:
        try:
            got = resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            got = b""
        if got != nonce:
            raise JpkiError("revocation_unknown", "the OCSP response does not answer our request (nonce)")
    moment = now or dt.datetime.now(dt.UTC)
    this_update = resp.this_update_utc
    if this_update > moment + CLOCK_SKEW or this_update < moment - OCSP_MAX_AGE:
        raise JpkiError("revocation_unknown", "the OCSP response is stale")
    next_update = resp.next_update_utc
    if next_update is not None and next_update < moment - CLOCK_SKEW:
        raise JpkiError("revocation_unknown", "the OCSP response has passed its next update")
    status = resp.certificate_status
    if status == ocsp.OCSPCertStatus.GOOD:
        return "good"
    if status == ocsp.OCSPCertStatus.REVOKED:
        if resp.revocation_reason == x509.ReasonFlags.certificate_hold:
            return "suspended"
        return "revoked"
    raise JpkiError("revocation_unknown", "the OCSP responder does not know this certificate")


def refuse_unless_good(status: str) -> None:
    if status == "suspended":
        raise JpkiError("suspended", "the certificate is suspended (一時停止); lift it at the municipality")
    if status == "revoked":
        raise JpkiError("revoked", "the certificate has been revoked (失効)")
