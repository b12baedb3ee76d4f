"""The intermediate server's database.  Every table is keyed by ``tenant`` (an organisation id)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kojinbango.common.db import NAMING, nonce_table

VERSION_TABLE = "alembic_version_intermediate"
MIGRATIONS = "kojinbango.intermediate:migrations"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


seen_nonces = nonce_table(Base.metadata)


class FugoLink(Base):
    """符号 ↔ 統合宛名番号 (or the agency's own person id) of one tenant."""

    __tablename__ = "im_fugo"
    __table_args__ = (UniqueConstraint("tenant", "fugo"),)
    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    integrated_number: Mapped[str] = mapped_column(String(20), primary_key=True)
    fugo: Mapped[str] = mapped_column(String(64), nullable=False)
    stored_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)


class FugoExpectation(Base):
    """A 取得番号 the tenant announced before asking J-LIS, so the delivered 符号 finds its person."""

    __tablename__ = "im_fugo_expected"
    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    acquisition_number: Mapped[str] = mapped_column(String(64), primary_key=True)
    integrated_number: Mapped[str] = mapped_column(String(20), nullable=False)
    expected_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class Copy(Base):
    """副本: one person's information of one category, as the tenant's business system registered it."""

    __tablename__ = "im_copies"
    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    integrated_number: Mapped[str] = mapped_column(String(20), primary_key=True)
    category: Mapped[str] = mapped_column(String(40), primary_key=True)
    layout_version: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    as_of: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    registered_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)


class CategoryConfirmation(Base):
    """The last full refresh of a category: every 副本 of it was confirmed current at ``as_of``."""

    __tablename__ = "im_category_confirmations"
    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    category: Mapped[str] = mapped_column(String(40), primary_key=True)
    as_of: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)


class OutgoingQuery(Base):
    """情報照会: a query a tenant sent (or is about to send).  status: unsent → pending → answered |
    not_held | refused | failed."""

    __tablename__ = "im_queries"
    __table_args__ = (
        UniqueConstraint("tenant", "request_id"),
        Index("ix_im_queries_tenant_status", "tenant", "status"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(40), nullable=False)
    request_id: Mapped[str] = mapped_column(String(64), nullable=False)
    exchange_id: Mapped[str | None] = mapped_column(String(32), index=True)  # 処理通番
    integrated_number: Mapped[str] = mapped_column(String(20), nullable=False)
    provider: Mapped[str] = mapped_column(String(40), nullable=False)
    affair: Mapped[str] = mapped_column(String(40), nullable=False)
    info: Mapped[str] = mapped_column(String(40), nullable=False)
    status: Mapped[str] = mapped_column(String(12), nullable=False)
    reason: Mapped[str] = mapped_column(String(400), nullable=False, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    requested_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    answered_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    answer: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Provision(Base):
    """情報提供: an answer the tenant gave, kept so a repeated delivery gets the same answer."""

    __tablename__ = "im_provisions"
    tenant: Mapped[str] = mapped_column(String(40), primary_key=True)
    exchange_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    integrated_number: Mapped[str | None] = mapped_column(String(20))
    document: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    provided_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)


class ProvisionRecord(Base):
    """情報提供等記録 (番号法23条1項) of the tenant, as 情報照会者 (role querier) or 情報提供者 (provider)."""

    __tablename__ = "im_records"
    __table_args__ = (
        UniqueConstraint("tenant", "role", "exchange_id"),
        Index("ix_im_records_tenant_person", "tenant", "integrated_number"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(40), nullable=False)
    role: Mapped[str] = mapped_column(String(10), nullable=False)  # querier | provider
    exchange_id: Mapped[str] = mapped_column(String(32), nullable=False)
    querier: Mapped[str] = mapped_column(String(40), nullable=False)
    provider: Mapped[str] = mapped_column(String(40), nullable=False)
    affair: Mapped[str] = mapped_column(String(40), nullable=False)
    info: Mapped[str] = mapped_column(String(40), nullable=False)
    integrated_number: Mapped[str | None] = mapped_column(String(20))
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    provided_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    outcome: Mapped[str] = mapped_column(
        String(12), nullable=False
    )  # pending|provided|not_held|refused|failed
    reason: Mapped[str] = mapped_column(String(400), nullable=False, default="")
    nondisclosure: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)  # 不開示 (23条2項)
    retain_until: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, index=True)
