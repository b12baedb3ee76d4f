"""The portal's own database: login challenges, sessions, its users and the login record."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kojinbango.common.db import NAMING, nonce_table


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


seen_nonces = nonce_table(Base.metadata)


class LoginChallenge(Base):
    """A random challenge for one login; used at most once, and only before it expires."""

    __tablename__ = "login_challenges"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    challenge: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, index=True)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class PortalUser(Base):
    """A person known to the portal by J-LIS's pseudonym for it (never the 住民票コード or number)."""

    __tablename__ = "portal_users"
    subscriber_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    kana: Mapped[str] = mapped_column(String(400), nullable=False, default="")
    first_login: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    last_login: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)


class PortalSession(Base):
    """A logged-in session; the token itself is only in the browser (its SHA-256 is kept)."""

    __tablename__ = "portal_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    subscriber_id: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class LoginRecord(Base):
    """Every login attempt and its outcome (the portal's access log)."""

    __tablename__ = "login_records"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, index=True)
    outcome: Mapped[str] = mapped_column(String(12), nullable=False)  # ok | refused
    reason: Mapped[str | None] = mapped_column(String(40))
    subscriber_id: Mapped[str | None] = mapped_column(String(32), index=True)
