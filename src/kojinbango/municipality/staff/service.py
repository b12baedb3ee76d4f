"""Staff accounts, login with a second factor, terminal sessions and the access log.

* Passwords are hashed with argon2id (``argon2-cffi``); the second factor is a TOTP code
  (RFC 6238, ``pyotp``), each code usable once.  The TOTP secrets are stored sealed with the
  municipality's key (AES-256-GCM, ``vault.py``).
* Five wrong logins lock the account for 15 minutes.
* A session locks itself after ``idle_seconds`` without a request (共用端末の放置対策); unlocking
  needs the same staff member's password, and the applicant context is cleared by the lock.
* Person data is shown only inside an applicant context (受付) opened with the password again and
  a declared purpose — one re-authentication per applicant, so the next person at the counter
  never inherits the previous one's screens.
* Every view or print of a person's data is written to the access log with who, when, which
  person (internal id) and the purpose.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import secrets
from dataclasses import dataclass
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select

from kojinbango.common.db import Database
from kojinbango.common.errors import BusinessError, Conflict, NotFound
from kojinbango.domain.clock import utc_now as now
from kojinbango.municipality.staff.models import AccessLog, StaffAccount, StaffSession
from kojinbango.municipality.staff.vault import open_sealed, seal

ROLES = {
    "resident_records": "住民記録",
    "tax": "税務",
    "welfare": "福祉",
    "admin": "管理者",
}
PURPOSES = (
    "住民票の写し等の交付",
    "住民異動届の受付",
    "個人番号カードの交付・手続",
    "税務（課税・証明）",
    "福祉（給付・手当）",
    "紐付け確認（事務処理）",
    "お知らせの対象確認",
    "本人からの開示請求",
)
MAX_FAILED = 5
LOCKOUT = dt.timedelta(minutes=15)
SESSION_TTL = dt.timedelta(hours=9)  # one working day
IDLE_ENV = "KOJINBANGO_STAFF_IDLE_SECONDS"
DEFAULT_IDLE_SECONDS = 300
RESERVED_LOGINS = ("matcher",)  # the 紐付け記録 name the automatic matcher's decisions

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against for an unknown login, so it costs the same as a known one (made on
    first use: an argon2 hash takes a fifth of a second, which every command would pay at import)."""
    return _hasher.hash(secrets.token_hex(16))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuthError(BusinessError):
    """Login or re-authentication refused; the message never says which factor was wrong."""

    status = 401


class Forbidden(BusinessError):
    status = 403


@dataclass(frozen=True)
class Terminal:
    """What a request knows about its terminal session."""

    token_hash: str
    staff_id: int
    login: str
    display_name: str
    roles: tuple[str, ...]
    locked: bool
    purpose: str | None

    def has(self, *roles: str) -> bool:
        return any(r in self.roles for r in roles)

    @property
    def role_labels(self) -> str:
        return "・".join(ROLES[r] for r in self.roles if r in ROLES)


class StaffService:
    def __init__(self, db: Database, totp_key: bytes, idle_seconds: int | None = None):
        """``totp_key``: the municipality's 32-byte key sealing the TOTP secrets at rest."""
        self.db = db
        self._totp_key = totp_key
        if idle_seconds is None:
            idle_seconds = int(os.environ.get(IDLE_ENV, DEFAULT_IDLE_SECONDS))
        self.idle = dt.timedelta(seconds=idle_seconds)

    # --- accounts ------------------------------------------------------------------------
    def create_account(
        self, login: str, display_name: str, roles: list[str], password: str, totp_secret: str | None = None
    ) -> dict[str, Any]:
        """職員の登録; returns the TOTP secret and its otpauth:// URI for the authenticator app."""
        login = login.strip()
        problems = []
        if not login or len(login) > 40 or not login.isascii() or not login.replace("-", "").isalnum():
            problems.append("the login must be 1–40 ASCII letters, digits or hyphens")
        elif login.lower() in RESERVED_LOGINS:
            problems.append(f"the login {login!r} is reserved")
        if not roles or any(r not in ROLES for r in roles):
            problems.append("roles must be some of " + ", ".join(ROLES))
        if len(password) < 12:
            problems.append("the password must have at least 12 characters")
        if not display_name.strip():
            problems.append("the display name is empty")
        if problems:
            raise BusinessError("; ".join(problems))
        secret = totp_secret or pyotp.random_base32()
        with self.db.transaction() as s:
            if s.scalar(select(StaffAccount.id).where(StaffAccount.login == login)) is not None:
                raise Conflict("this login is already taken")
            account = StaffAccount(
                login=login,
                display_name=display_name.strip(),
                roles=sorted(set(roles)),
                password_hash=_hasher.hash(password),
                totp_secret_sealed=seal(self._totp_key, login, secret),
                active=True,
                failed_logins=0,
                last_totp_step=0,
                created_at=now(),
            )
            s.add(account)
            s.flush()
            self._log(s, account.id, login, "account_created", screen="account", detail={"roles": roles})
        uri = pyotp.TOTP(secret).provisioning_uri(name=login, issuer_name="kojinbango")
        return {"login": login, "totp_secret": secret, "totp_uri": uri}

    def accounts(self) -> list[StaffAccount]:
        with self.db.transaction() as s:
            return list(s.scalars(select(StaffAccount).order_by(StaffAccount.id)))

    def set_active(self, admin: Terminal, staff_id: int, active: bool) -> None:
        with self.db.transaction() as s:
            account = s.get(StaffAccount, staff_id)
            if account is None:
                raise NotFound("no such staff account")
            if account.id == admin.staff_id and not active:
                raise BusinessError("an administrator cannot disable their own account")
            account.active = active
            if not active:
                for sess in s.scalars(select(StaffSession).where(StaffSession.staff_id == staff_id)):
                    sess.ended = True
            self._log(
                s,
                admin.staff_id,
                admin.login,
                "account_enabled" if active else "account_disabled",
                screen="admin/accounts",
                detail={"account": account.login},
            )

    # --- login ---------------------------------------------------------------------------
    def login(self, login: str, password: str, code: str) -> str:
        """Password and TOTP code → a new terminal session token.

        A refusal is committed (the failure counter and the log entry) before it is raised."""
        at = now()
        refused: AuthError | None = None
        token = secrets.token_urlsafe(32)
        with self.db.transaction() as s:
            account = s.scalar(select(StaffAccount).where(StaffAccount.login == login.strip()))
            if account is None:
                _verify_password(_dummy_hash(), password)
                self._log(s, None, login.strip()[:40], "login_failed", screen="login")
                refused = AuthError("the login, password or one-time code is not right")
            elif account.locked_until and account.locked_until > at:
                self._log(s, account.id, account.login, "login_refused", screen="login")
                refused = AuthError("this account is locked after too many failed logins; try again later")
            elif not account.active:
                self._log(s, account.id, account.login, "login_refused", screen="login")
                refused = AuthError("this account is disabled")
            else:
                password_ok = _verify_password(account.password_hash, password)
                step = self._totp_step(account, code, at)
                if not password_ok or step is None:
                    account.failed_logins += 1
                    if account.failed_logins >= MAX_FAILED:
                        account.locked_until = at + LOCKOUT
                        account.failed_logins = 0
                    self._log(s, account.id, account.login, "login_failed", screen="login")
                    refused = AuthError("the login, password or one-time code is not right")
                else:
                    account.failed_logins = 0
                    account.locked_until = None
                    account.last_totp_step = step
                    s.add(
                        StaffSession(
                            token_hash=token_hash(token),
                            staff_id=account.id,
                            created_at=at,
                            last_seen=at,
                            expires_at=at + SESSION_TTL,
                            locked=False,
                            ended=False,
                        )
                    )
                    self._log(s, account.id, account.login, "login", screen="login")
        if refused is not None:
            raise refused
        return token

    def _totp_step(self, account: StaffAccount, code: str, at: dt.datetime) -> int | None:
        """The time step a valid, not yet used code belongs to (±1 step of clock drift)."""
        code = code.strip()
        if not code.isdigit() or len(code) != 6:
            return None
        totp = pyotp.TOTP(open_sealed(self._totp_key, account.login, account.totp_secret_sealed))
        moment = at.replace(tzinfo=dt.UTC)
        for drift in (0, -1, 1):
            when = moment + dt.timedelta(seconds=30 * drift)
            step = totp.timecode(when)
            if step > account.last_totp_step and secrets.compare_digest(totp.at(when), code):
                return int(step)
        return None

    def logout(self, token: str) -> None:
        with self.db.transaction() as s:
            sess = s.get(StaffSession, token_hash(token))
            if sess is not None and not sess.ended:
                sess.ended = True
                sess.purpose = None
                account = s.get(StaffAccount, sess.staff_id)
                self._log(s, sess.staff_id, account.login if account else "?", "logout", screen="logout")

    # --- each request --------------------------------------------------------------------
    def terminal(self, token: str | None, touch: bool = True) -> Terminal | None:
        """The session of a request, locking it first if it sat idle too long."""
        if not token:
            return None
        at = now()
        with self.db.transaction() as s:
            sess = s.get(StaffSession, token_hash(token))
            if sess is None or sess.ended or sess.expires_at <= at:
                return None
            account = s.get(StaffAccount, sess.staff_id)
            if account is None or not account.active:
                return None
            if not sess.locked and at - sess.last_seen > self.idle:
                sess.locked = True
                sess.purpose = None
                sess.applicant_started_at = None
                self._log(s, account.id, account.login, "idle_lock", screen="lock")
            if touch and not sess.locked:
                sess.last_seen = at
            return Terminal(
                sess.token_hash,
                account.id,
                account.login,
                account.display_name,
                tuple(account.roles),
                sess.locked,
                sess.purpose,
            )

    def lock(self, token: str) -> None:
        """画面ロック by the staff member leaving the terminal."""
        with self.db.transaction() as s:
            sess = s.get(StaffSession, token_hash(token))
            if sess is not None and not sess.ended:
                sess.locked = True
                sess.purpose = None
                sess.applicant_started_at = None
                account = s.get(StaffAccount, sess.staff_id)
                self._log(s, sess.staff_id, account.login if account else "?", "lock", screen="lock")

    def unlock(self, token: str, password: str) -> None:
        """Only the staff member whose session it is can unlock it, with their password."""
        with self.db.transaction() as s:
            sess, account = self._live(s, token)
            ok = _verify_password(account.password_hash, password)
            if ok:
                sess.locked = False
                sess.last_seen = now()
            self._log(s, account.id, account.login, "unlock" if ok else "unlock_failed", screen="lock")
        if not ok:
            raise AuthError("the password is not right")

    def begin_applicant(self, token: str, password: str, purpose: str) -> None:
        """受付開始: re-authenticate for the next applicant and declare the purpose of the work."""
        if purpose not in PURPOSES:
            raise BusinessError("choose the purpose of this work from the list")
        with self.db.transaction() as s:
            sess, account = self._live(s, token)
            if sess.locked:
                raise AuthError("the terminal is locked; unlock it first")
            ok = _verify_password(account.password_hash, password)
            if ok:
                sess.purpose = purpose
                sess.applicant_started_at = now()
                sess.last_seen = now()
                self._log(
                    s, account.id, account.login, "applicant_begin", purpose=purpose, screen="applicant"
                )
            else:
                self._log(s, account.id, account.login, "reauth_failed", screen="applicant")
        if not ok:
            raise AuthError("the password is not right")

    def end_applicant(self, token: str) -> None:
        """受付終了: the screens of this applicant are closed; the next one needs re-authentication."""
        with self.db.transaction() as s:
            sess, account = self._live(s, token)
            purpose, sess.purpose, sess.applicant_started_at = sess.purpose, None, None
            self._log(s, account.id, account.login, "applicant_end", purpose=purpose, screen="applicant")

    def _live(self, s: Any, token: str) -> tuple[StaffSession, StaffAccount]:
        sess = s.get(StaffSession, token_hash(token))
        if sess is None or sess.ended or sess.expires_at <= now():
            raise AuthError("not logged in")
        account = s.get(StaffAccount, sess.staff_id)
        if account is None or not account.active:
            raise AuthError("not logged in")
        return sess, account

    # --- the access log --------------------------------------------------------------------
    def record(
        self,
        terminal: Terminal | None,
        action: str,
        screen: str,
        subject_kind: str | None = None,
        subject_id: int | str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        with self.db.transaction() as s:
            self._log(
                s,
                terminal.staff_id if terminal else None,
                terminal.login if terminal else "(not logged in)",
                action,
                subject_kind=subject_kind,
                subject_id=subject_id,
                purpose=terminal.purpose if terminal else None,
                screen=screen,
                detail=detail,
            )

    @staticmethod
    def _log(
        s: Any,
        staff_id: int | None,
        login: str,
        action: str,
        *,
        screen: str,
        subject_kind: str | None = None,
        subject_id: int | str | None = None,
        purpose: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        s.add(
            AccessLog(
                at=now(),
                staff_id=staff_id,
                staff_login=login,
                action=action,
                subject_kind=subject_kind,
                subject_id=None if subject_id is None else str(subject_id),
                purpose=purpose,
                screen=screen[:80],
                detail=detail or {},
            )
        )

    def access_log(
        self,
        staff_login: str = "",
        subject_kind: str = "",
        subject_id: str = "",
        action: str = "",
        limit: int = 200,
        offset: int = 0,
    ) -> tuple[int, list[AccessLog]]:
        q = select(AccessLog)
        if staff_login:
            q = q.where(AccessLog.staff_login == staff_login)
        if subject_kind:
            q = q.where(AccessLog.subject_kind == subject_kind)
        if subject_id:
            q = q.where(AccessLog.subject_id == subject_id)
        if action:
            q = q.where(AccessLog.action == action)
        with self.db.transaction() as s:
            total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
            rows = list(s.scalars(q.order_by(AccessLog.id.desc()).offset(offset).limit(limit)))
        return total, rows


def _verify_password(stored: str, password: str) -> bool:
    try:
        return bool(_hasher.verify(stored, password))
    except (VerificationError, InvalidHashError):
        return False
