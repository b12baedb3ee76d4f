"""What every JPKI relying party does: fetch the CA, check a certificate online, verify a signature.

Used by the portal (利用者証明検証者) and the bank (署名検証者).  The JPKI CA certificate is fetched
from J-LIS over the signed organisation API (so it is authentic), and certificate status is asked
of J-LIS's OCSP responder on every check.
"""

from __future__ import annotations

import base64
import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import httpx
from cryptography import x509

from kojinbango.card.verify import (
    JpkiError,
    check_ocsp_response,
    load_certificate,
    ocsp_request,
    refuse_unless_good,
    verify_chain,
    verify_signature,
)
from kojinbango.common.transport import http_client


def login_message(portal_id: str, challenge_id: str, challenge: str) -> bytes:
    """The bytes a card signs to log in: bound to this portal and this one challenge."""
    return f"kojinbango-login\n{portal_id}\n{challenge_id}\n{challenge}".encode()


def b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise JpkiError("malformed_request", f"the {what} is not base64") from None


class JpkiVerifier:
    """Chain, status and signature checks against J-LIS's JPKI CA."""

    def __init__(self, fetch_ca: Callable[[], str], ocsp_url: Callable[[], str], timeout: float = 10.0):
        self._fetch_ca = fetch_ca
        self._ocsp_url = ocsp_url
        self._ca: x509.Certificate | None = None
        self._lock = threading.Lock()
        self._http = http_client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    @property
    def ca(self) -> x509.Certificate:
        if self._ca is None:
            with self._lock:
                if self._ca is None:
                    self._ca = x509.load_pem_x509_certificate(self._fetch_ca().encode())
        return self._ca

    def status(self, cert: x509.Certificate) -> str:
        """good / suspended / revoked, asked of the OCSP responder now."""
        der, nonce = ocsp_request(cert, self.ca)
        try:
            resp = self._http.post(
                self._ocsp_url(), content=der, headers={"content-type": "application/ocsp-request"}
            )
        except httpx.TransportError as exc:
            raise JpkiError(
                "revocation_unknown", f"the OCSP responder could not be reached ({type(exc).__name__})"
            ) from None
        if resp.status_code != 200:
            raise JpkiError("revocation_unknown", f"the OCSP responder answered HTTP {resp.status_code}")
        return check_ocsp_response(resp.content, cert, self.ca, nonce)

    def check_offline(
        self, certificate: str, kind: str, data: bytes, signature: str, now: dt.datetime | None = None
    ) -> x509.Certificate:
        """The checks needing no responder: chain to the JPKI CA, kind, validity, the signature.

        A caller that gets the certificate's status another way (the portal: an OCSP response
        relayed in the same signed call as the subscriber lookup) must still refuse unless it is
        good — see ``status_from``."""
        cert = load_certificate(certificate)
        verify_chain(cert, self.ca, kind, now)
        verify_signature(cert, data, b64decode(signature, "signature"))
        return cert

    def status_from(self, ocsp_der: bytes, cert: x509.Certificate, nonce: bytes = b"") -> str:
        """good / suspended / revoked from an OCSP response obtained by the caller (checked as any)."""
        return check_ocsp_response(ocsp_der, cert, self.ca, nonce)

    def check(
        self, certificate: str, kind: str, data: bytes, signature: str, now: dt.datetime | None = None
    ) -> x509.Certificate:
        """Everything a relying party checks before it believes a signature; JpkiError otherwise."""
        cert = self.check_offline(certificate, kind, data, signature, now)
        refuse_unless_good(self.status(cert))
        return cert


def refusal(exc: JpkiError) -> dict[str, Any]:
    return {"reason": exc.reason, "detail": exc.message}
