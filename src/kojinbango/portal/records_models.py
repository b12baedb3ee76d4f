"""The portal's やりとり履歴 tables: which certificate a session logged in with, the portal's 符号 of
each user, the network tree heads the portal has verified (to check the log only ever grows), and
the newest record each user was shown (to check it is still in their list)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kojinbango.common.db import NAMING

VERSION_TABLE = "alembic_version_portal_records"
MIGRATIONS = "kojinbango.portal:records_migrations"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class SessionCertificate(Base):
    """The serial of the 利用者証明用電子証明書 a session logged in with (J-LIS maps it to the person)."""

    __tablename__ = "portal_session_certificates"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    serial: Mapped[str] = mapped_column(String(50), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, index=True)


class PortalFugo(Base):
    """The portal's own 符号 for a user: what it shows the network to ask for that user's records."""

    __tablename__ = "portal_fugo"
    subscriber_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    fugo: Mapped[str] = mapped_column(String(64), nullable=False)
    acquired_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)


class SeenTreeHead(Base):
    """A signed tree head of the network's log that the portal verified."""

    __tablename__ = "portal_seen_tree_heads"
    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    document: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    seen_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)


class SeenRecord(Base):
    """The newest provision record a user was shown in a verified list: every later list must still
    hold it (with the chain of ``prev`` hashes, so all the records before it too)."""

    __tablename__ = "portal_seen_records"
    subscriber_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_index: Mapped[int] = mapped_column(BigInteger, nullable=False)
    leaf_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    seen_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
