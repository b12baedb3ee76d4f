"""The kiosk's certificate service (証明書交付サービス), mounted on the municipality.

One request = one person = one document, with nothing shared between requests:

1. ``challenge`` hands out a one-time challenge (HMAC-bound to its id and time; no state kept).
2. ``issue`` receives the card's 利用者証明用 signature over that challenge: the certificate's chain,
   its OCSP status at J-LIS and the signature are checked; the challenge is used once (the
   municipality's nonce table); J-LIS's 証明書情報連携 maps the certificate to the resident; the
   document is rendered, signed and returned **in the same response**, in memory — no print queue,
   no file, no lock to release on a timeout (DOMAIN.md §9.4).  The response names the request it
   answers (``kiosk_request``) so the kiosk refuses to print anything else.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from kojinbango.card.profile import KIND_AUTH
from kojinbango.card.relying import JpkiError, JpkiVerifier, login_message
from kojinbango.common.errors import BusinessError
from kojinbango.common.transport import RemoteError
from kojinbango.municipality.forms.service import FormsService, Issued
from kojinbango.municipality.register.models import Resident

CHALLENGE_TTL = 120


class KioskRefused(BusinessError):
    def __init__(self, reason: str, message: str, status: int = 403):
        super().__init__(message)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class KioskDocument:
    issued: Issued
    request_id: str


class KioskService:
    def __init__(
        self,
        org_id: str,
        forms: FormsService,
        verifier: JpkiVerifier,
        holder_of: Callable[[str], dict[str, Any]],
        once: Callable[[str, str, int], bool],
        key: bytes,
    ):
        self.org_id = org_id
        self.relying_party = f"kiosk:{org_id}"
        self.forms = forms
        self.verifier = verifier
        self.holder_of = holder_of
        self.once = once
        self.key = key

    def _challenge_of(self, challenge_id: str, created: int) -> str:
        return hmac.new(self.key, f"{challenge_id}|{created}".encode(), hashlib.sha256).hexdigest()

    def challenge(self) -> dict[str, Any]:
        cid, created = secrets.token_hex(16), int(time.time())
        return {
            "relying_party": self.relying_party,
            "challenge_id": cid,
            "created": created,
            "challenge": self._challenge_of(cid, created),
        }

    def issue(
        self,
        challenge_id: str,
        created: int,
        certificate: str,
        signature: str,
        scope: str = "self",
        with_my_number: bool = False,
    ) -> KioskDocument:
        age = time.time() - created
        if not (0 <= age <= CHALLENGE_TTL):
            raise KioskRefused("challenge_expired", "the request took too long; insert the card again", 401)
        challenge = self._challenge_of(challenge_id, created)
        message = login_message(self.relying_party, challenge_id, challenge)
        try:
            cert = self.verifier.check(certificate, KIND_AUTH, message, signature)
        except JpkiError as exc:
            raise KioskRefused(exc.reason, exc.message) from None
        if not self.once("kiosk", challenge_id, created):
            raise KioskRefused("replayed", "this request was already used", 401)
        try:
            holder = self.holder_of(str(cert.serial_number))
        except RemoteError as exc:
            if exc.status == 404:
                raise KioskRefused(
                    "not_resident", "this card's holder is not a resident of this municipality", 404
                ) from None
            raise
        with self.forms.db.transaction() as s:
            rid = s.scalar(
                select(Resident.id).where(
                    Resident.resident_code == holder["resident_code"], Resident.status == "active"
                )
            )
        if rid is None:
            raise KioskRefused(
                "not_resident", "this card's holder is not a resident of this municipality", 404
            )
        issued = self.forms.resident_certificate(
            int(rid),
            kind="copy",
            scope=scope,
            requester="self",
            with_my_number=with_my_number,
            channel="kiosk",
            issued_by=f"kiosk:{challenge_id[:8]}",
            requester_id=int(rid),
        )
        return KioskDocument(issued, challenge_id)
