"""Logging in to the portal by challenge–response with the 利用者証明用電子証明書.

1. The browser (or CLI) asks for a challenge: random, single-use, valid for two minutes.
2. The card signs ``login_message(portal, challenge id, challenge)`` with the 利用者証明用 key after
   the reader checks the 4-digit PIN.
3. The portal consumes the challenge (a second use is a replay), checks the certificate chains to
   the JPKI CA and is a 利用者証明用 one, valid now, verifies the signature, then asks J-LIS in one
   signed call for the certificate's OCSP response and who the serial belongs to (氏名 and a
   pseudonym for this portal); it checks the OCSP response itself (CA signature, this certificate,
   fresh — suspended and revoked are refused) and opens a session.  The status is asked on every
   login, never cached, so a card stopped on the 24-hour line cannot log in a moment later.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, select, update

from kojinbango.card.profile import KIND_AUTH
from kojinbango.card.relying import JpkiVerifier, b64decode, login_message
from kojinbango.card.verify import JpkiError, ocsp_request, refuse_unless_good
from kojinbango.common.db import Database
from kojinbango.common.transport import RemoteError, Unreachable
from kojinbango.domain.clock import utc_now as now
from kojinbango.portal.models import LoginChallenge, LoginRecord, PortalSession, PortalUser
from kojinbango.portal.records_models import SessionCertificate

log = logging.getLogger(__name__)

CHALLENGE_TTL = dt.timedelta(minutes=2)
_RECORDS: Table = LoginRecord.__table__  # type: ignore[assignment]
_CHALLENGES: Table = LoginChallenge.__table__  # type: ignore[assignment]
_USERS: Table = PortalUser.__table__  # type: ignore[assignment]
# Statements built once: a login is a handful of small writes, and building SQL each time cost
# more than the RSA signature (measured with bench/portal_logins.py).
_INSERT_CHALLENGE = insert(_CHALLENGES)
_CONSUME = (
    update(_CHALLENGES)
    .where(
        _CHALLENGES.c.id == bindparam("cid"),
        _CHALLENGES.c.used_at.is_(None),
        _CHALLENGES.c.expires_at >= bindparam("t"),
    )
    .values(used_at=bindparam("t"))
    .returning(_CHALLENGES.c.challenge)
)
_UPDATE_USER = (
    update(_USERS)
    .where(_USERS.c.subscriber_id == bindparam("sid"))
    .values(name=bindparam("p_name"), kana=bindparam("p_kana"), last_login=bindparam("t"))
)
_INSERT_USER = insert(_USERS)
_SESSIONS: Table = PortalSession.__table__  # type: ignore[assignment]
_INSERT_SESSION = insert(_SESSIONS)
_INSERT_RECORD = insert(_RECORDS)
_SESSION_CERTS: Table = SessionCertificate.__table__  # type: ignore[assignment]
_INSERT_SESSION_CERT = insert(_SESSION_CERTS)
SESSION_TTL = dt.timedelta(minutes=30)


class LoginRefused(Exception):
    def __init__(self, reason: str, message: str, status: int = 401):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


LoginCheck = Callable[[str, bytes], dict[str, Any]]
"""(serial, DER OCSP request) -> J-LIS's ``{"ocsp_response": base64 DER, "subscriber": {...} | None}``."""


class PortalService:
    def __init__(self, db: Database, portal_id: str, verifier: JpkiVerifier, login_check: LoginCheck):
        self.db = db
        self.portal_id = portal_id
        self.verifier = verifier
        self.login_check = login_check
        self._last_prune = 0.0

    def challenge(self) -> dict[str, Any]:
        cid, challenge = secrets.token_hex(16), secrets.token_urlsafe(32)
        created = now()
        with self.db.engine.begin() as conn:
            conn.execute(
                _INSERT_CHALLENGE,
                {
                    "id": cid,
                    "challenge": challenge,
                    "created_at": created,
                    "expires_at": created + CHALLENGE_TTL,
                },
            )
            if created.timestamp() - self._last_prune > 60:
                self._last_prune = created.timestamp()
                conn.execute(
                    delete(_CHALLENGES).where(_CHALLENGES.c.expires_at < created - dt.timedelta(hours=1))
                )
        return {
            "challenge_id": cid,
            "challenge": challenge,
            "portal": self.portal_id,
            "expires_at": (created + CHALLENGE_TTL).isoformat() + "Z",
        }

    def login(self, challenge_id: str, certificate: str, signature: str) -> dict[str, Any]:
        try:
            return self._login(challenge_id, certificate, signature)
        except LoginRefused as exc:
            with self.db.engine.begin() as conn:
                conn.execute(
                    _INSERT_RECORD,
                    {"at": now(), "outcome": "refused", "reason": exc.reason, "subscriber_id": None},
                )
            raise

    def _consume(self, challenge_id: str) -> str:
        """Use the challenge once: the first login with it wins, any later one is a replay."""
        with self.db.engine.begin() as conn:
            row = conn.execute(_CONSUME, {"cid": challenge_id, "t": now()}).first()
            if row is not None:
                return str(row[0])
            found = conn.execute(
                select(_CHALLENGES.c.used_at).where(_CHALLENGES.c.id == challenge_id)
            ).first()
        if found is None:
            raise LoginRefused("unknown_challenge", "this login challenge was not issued by the portal")
        if found[0] is not None:
            raise LoginRefused("replayed", "this login challenge was already used (a replayed login)")
        raise LoginRefused("challenge_expired", "the login challenge expired; start again")

    def _login(self, challenge_id: str, certificate: str, signature: str) -> dict[str, Any]:
        challenge = self._consume(challenge_id)
        try:
            cert = self.verifier.check_offline(
                certificate, KIND_AUTH, login_message(self.portal_id, challenge_id, challenge), signature
            )
            request, nonce = ocsp_request(cert, self.verifier.ca)
            try:
                answer = self.login_check(str(cert.serial_number), request)
            except (Unreachable, RemoteError) as exc:
                raise JpkiError(
                    "revocation_unknown", f"J-LIS could not be asked for the status: {exc}"
                ) from None
            ocsp_der = b64decode(str(answer.get("ocsp_response", "")), "OCSP response")
            refuse_unless_good(self.verifier.status_from(ocsp_der, cert, nonce))
        except JpkiError as exc:
            status = 403 if exc.reason in ("revoked", "suspended", "expired") else 401
            raise LoginRefused(exc.reason, exc.message, status) from None
        who = answer.get("subscriber")
        if not isinstance(who, dict):
            raise LoginRefused("unknown_subscriber", "J-LIS knows no holder of this certificate", 403)
        token = secrets.token_urlsafe(32)
        t = now()
        sid, name, kana = who["subscriber_id"], who["name"], who.get("kana", "")
        # One transaction: the user, the session, the certificate it used (for やりとり履歴 and the
        # inbox), the login record.
        with self.db.engine.begin() as conn:
            changed = conn.execute(_UPDATE_USER, {"sid": sid, "p_name": name, "p_kana": kana, "t": t})
            if changed.rowcount == 0:
                conn.execute(
                    _INSERT_USER,
                    {"subscriber_id": sid, "name": name, "kana": kana, "first_login": t, "last_login": t},
                )
            conn.execute(
                _INSERT_SESSION,
                {
                    "token_hash": _hash(token),
                    "subscriber_id": sid,
                    "created_at": t,
                    "expires_at": t + SESSION_TTL,
                },
            )
            conn.execute(
                _INSERT_SESSION_CERT,
                {"token_hash": _hash(token), "serial": str(cert.serial_number), "created_at": t},
            )
            conn.execute(_INSERT_RECORD, {"at": t, "outcome": "ok", "reason": None, "subscriber_id": sid})
        return {
            "name": name,
            "kana": kana,
            "subscriber_id": sid,
            "session": token,
            "session_expires_at": (t + SESSION_TTL).isoformat() + "Z",
        }

    def me(self, token: str) -> dict[str, Any]:
        with self.db.transaction() as s:
            sess = s.get(PortalSession, _hash(token))
            if sess is None or sess.ended_at is not None or sess.expires_at < now():
                raise LoginRefused("not_logged_in", "not logged in (or the session ended)")
            user = s.get(PortalUser, sess.subscriber_id)
            assert user is not None
            return {
                "name": user.name,
                "kana": user.kana,
                "session_expires_at": sess.expires_at.isoformat() + "Z",
            }

    def logout(self, token: str) -> None:
        with self.db.transaction() as s:
            s.execute(
                update(PortalSession).where(PortalSession.token_hash == _hash(token)).values(ended_at=now())
            )

    def login_counts(self) -> dict[str, int]:
        with self.db.transaction() as s:
            rows = s.execute(select(LoginRecord.outcome)).scalars().all()
        return {"ok": sum(1 for r in rows if r == "ok"), "refused": sum(1 for r in rows if r != "ok")}


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
