"""口座開設 with the 署名用電子証明書: verify the signature, the chain and the status online, and take
the 4情報 from the certificate — the bank never types them in."""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
from typing import Any

from sqlalchemy import func, select, update

from kojinbango.card.profile import KIND_SIGN, four_info
from kojinbango.card.relying import JpkiVerifier
from kojinbango.card.verify import JpkiError
from kojinbango.common.db import Database
from kojinbango.domain.clock import utc_now as now
from kojinbango.relying_party.models import Account, ApplicationChallenge

ACCOUNT_TYPES = ("普通預金", "貯蓄預金")
CHALLENGE_TTL = dt.timedelta(minutes=10)


def application_bytes(application: dict[str, Any]) -> bytes:
    """The exact bytes signed: canonical JSON (sorted keys, no spaces, UTF-8)."""
    return json.dumps(application, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class Refused(Exception):
    def __init__(self, reason: str, message: str, status: int = 403):
        super().__init__(message)
        self.reason, self.message, self.status = reason, message, status


class BankService:
    def __init__(self, db: Database, bank_id: str, verifier: JpkiVerifier):
        self.db = db
        self.bank_id = bank_id
        self.verifier = verifier

    def challenge(self) -> dict[str, Any]:
        cid, value = secrets.token_hex(16), secrets.token_urlsafe(24)
        with self.db.transaction() as s:
            s.add(ApplicationChallenge(id=cid, challenge=value, expires_at=now() + CHALLENGE_TTL))
        return {
            "challenge_id": cid,
            "challenge": value,
            "bank": self.bank_id,
            "account_types": list(ACCOUNT_TYPES),
        }

    def open_account(self, application: dict[str, Any], certificate: str, signature: str) -> dict[str, Any]:
        if application.get("bank") != self.bank_id:
            raise Refused("wrong_recipient", "this application is addressed to another bank", 422)
        if application.get("account_type") not in ACCOUNT_TYPES:
            raise Refused("bad_application", "account_type must be one of " + "、".join(ACCOUNT_TYPES), 422)
        cid = str(application.get("challenge_id", ""))
        t = now()
        with self.db.transaction() as s:
            row = s.get(ApplicationChallenge, cid)
            if row is None or row.challenge != application.get("challenge"):
                raise Refused(
                    "unknown_challenge", "the application does not carry a challenge from this bank", 401
                )
            if row.used_at is not None:
                raise Refused("replayed", "this application was already submitted (replayed)", 401)
            if row.expires_at < t:
                raise Refused("challenge_expired", "the application's challenge expired; start again", 401)
            s.execute(update(ApplicationChallenge).where(ApplicationChallenge.id == cid).values(used_at=t))
        try:
            cert = self.verifier.check(certificate, KIND_SIGN, application_bytes(application), signature)
        except JpkiError as exc:
            raise Refused(
                exc.reason, exc.message, 403 if exc.reason in ("revoked", "suspended", "expired") else 401
            ) from None
        four = four_info(cert)
        if set(four) != {"name", "address", "birth_date", "sex"}:
            raise Refused("wrong_certificate", "the 署名用電子証明書 does not carry the 4情報", 401)
        with self.db.transaction() as s:
            n = (s.scalar(select(func.max(Account.id))) or 0) + 1
            number = f"{1000000 + n:07d}"[-7:]
            s.add(
                Account(
                    account_number=number,
                    account_type=str(application["account_type"]),
                    name=four["name"],
                    address=four["address"],
                    birth_date=four["birth_date"],
                    sex=four["sex"],
                    certificate_serial=str(cert.serial_number),
                    application=application,
                    signature=base64.b64decode(signature),
                    opened_at=t,
                )
            )
        return {"account_number": number, "account_type": application["account_type"], **four}
