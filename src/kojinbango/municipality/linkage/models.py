"""Information-linkage tables in the municipality's database (their own Alembic history)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kojinbango.common.db import NAMING

VERSION_TABLE = "alembic_version_linkage"
MIGRATIONS = "kojinbango.municipality.linkage:migrations"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class FugoRequest(Base):
    """符号取得要求 for one 統合宛名: the 取得番号 sent through J-LIS, and when the 符号 arrived."""

    __tablename__ = "linkage_fugo"
    addressee_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    acquisition_number: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)  # 取得番号
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class CopyState(Base):
    """What was last registered as 副本 for a person and category (a digest), to send only changes."""

    __tablename__ = "linkage_copy_state"
    addressee_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    category: Mapped[str] = mapped_column(String(40), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), nullable=False)
    sent_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)


class LinkageAnswer(Base):
    """A query this municipality made and the provider's signed answer (情報照会の結果), kept as evidence."""

    __tablename__ = "linkage_answers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    exchange_id: Mapped[str | None] = mapped_column(String(32), index=True)  # 処理通番
    addressee_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    provider: Mapped[str] = mapped_column(String(40), nullable=False)
    affair: Mapped[str] = mapped_column(String(40), nullable=False)
    info: Mapped[str] = mapped_column(String(40), nullable=False)
    staff: Mapped[str] = mapped_column(String(100), nullable=False)
    status: Mapped[str] = mapped_column(String(12), nullable=False)
    reason: Mapped[str] = mapped_column(String(400), nullable=False, default="")
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    answered_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    as_of: Mapped[dt.datetime | None] = mapped_column(DateTime)
    document: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    signature_valid: Mapped[bool | None] = mapped_column(Boolean)


class LinkageState(Base):
    """Small state of the linkage system: enabled, fingerprints of the sources, the last nightly run."""

    __tablename__ = "linkage_state"
    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[str] = mapped_column(String(400), nullable=False)
