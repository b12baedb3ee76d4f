"""Staff terminal database: accounts (職員), terminal sessions and the access log (アクセスログ).

The access log names the person by the register's internal id only, never by 個人番号 or
住民票コード; it is append-only from the application's side.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kojinbango.common.db import NAMING

VERSION_TABLE = "alembic_version_staff"
MIGRATIONS = "kojinbango.municipality.staff:migrations"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class StaffAccount(Base):
    """職員アカウント: login, roles, argon2id password hash and the TOTP secret of the second factor,
    sealed with the municipality's key (``vault.py``) — the database never holds it in clear."""

    __tablename__ = "staff_accounts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    login: Mapped[str] = mapped_column(String(40), nullable=False, unique=True)
    display_name: Mapped[str] = mapped_column(String(80), nullable=False)
    roles: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(200), nullable=False)
    totp_secret_sealed: Mapped[str] = mapped_column(String(200), nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime)
    last_totp_step: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)


class StaffSession(Base):
    """端末セッション: a logged-in terminal; the cookie holds a random token, this table its SHA-256.

    ``purpose`` is the business the staff member declared for the applicant now served
    (申請者ごとの再認証で開始); cleared at 受付終了, at the idle lock and at logout.
    """

    __tablename__ = "staff_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id"), nullable=False, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    locked: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    ended: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    purpose: Mapped[str | None] = mapped_column(String(80))
    applicant_started_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class AccessLog(Base):
    """アクセスログ: every view or print of a person's data, every refusal and every login event."""

    __tablename__ = "staff_access_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, index=True)
    staff_id: Mapped[int | None] = mapped_column(Integer, index=True)
    staff_login: Mapped[str] = mapped_column(String(40), nullable=False)
    action: Mapped[str] = mapped_column(
        String(20), nullable=False
    )  # view | print | search | denied | login …
    subject_kind: Mapped[str | None] = mapped_column(String(30))  # resident | business_record | card
    subject_id: Mapped[str | None] = mapped_column(String(40), index=True)  # an internal id
    purpose: Mapped[str | None] = mapped_column(String(80))
    screen: Mapped[str] = mapped_column(String(80), nullable=False)  # the route template, no values
    detail: Mapped[dict[str, object]] = mapped_column(JSON, nullable=False, default=dict)
