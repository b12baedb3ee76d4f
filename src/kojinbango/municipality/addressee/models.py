"""団体内統合宛名 database: one 統合宛名番号 per person, the links of business records, decisions.

Three levels of identifier (DOMAIN.md §4.1): 個人番号 (national) → 統合宛名番号 (this municipality)
→ 宛名番号 (one business system).  A 住登者 (resident) is tied to the register by its internal id and
住民票コード; a 住登外者 (non-resident) was identified through 住基ネット and keeps the 4情報 it answered.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Date, DateTime, ForeignKey, Index, Integer, MetaData, SmallInteger, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kojinbango.common.db import NAMING

VERSION_TABLE = "alembic_version_addressee"
MIGRATIONS = "kojinbango.municipality.addressee:migrations"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Addressee(Base):
    """統合宛名: one person of this municipality's business (住登者 or 住登外者)."""

    __tablename__ = "addressees"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    integrated_number: Mapped[str] = mapped_column(String(11), nullable=False, unique=True)  # 統合宛名番号
    kind: Mapped[str] = mapped_column(String(20), nullable=False)  # resident | non_resident
    resident_id: Mapped[int | None] = mapped_column(Integer, unique=True)  # 住民記録's internal id
    resident_code: Mapped[str | None] = mapped_column(String(11), unique=True)  # 住民票コード
    my_number: Mapped[str | None] = mapped_column(String(12), unique=True)  # 個人番号
    # 住登外者: the 4情報 as 住基ネット answered (住登者' 4情報 live in the register).
    family_name: Mapped[str | None] = mapped_column(String(100))
    given_name: Mapped[str | None] = mapped_column(String(100))
    family_kana: Mapped[str | None] = mapped_column(String(200))
    given_kana: Mapped[str | None] = mapped_column(String(200))
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    sex: Mapped[int | None] = mapped_column(SmallInteger)
    address: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)


class RecordLink(Base):
    """紐付け: where one business record stands (one row per record), and to whom it is tied.

    ``status``: linked | review | unmatched | non_resident_linked.  ``candidates`` holds the ranked
    candidates with the agreement of each field, so the review screen shows what the matcher saw.
    """

    __tablename__ = "record_links"
    __table_args__ = (Index("ix_record_links_system_status", "system", "status"),)
    record_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    system: Mapped[str] = mapped_column(String(40), nullable=False)
    status: Mapped[str] = mapped_column(String(24), nullable=False)
    addressee_id: Mapped[int | None] = mapped_column(ForeignKey("addressees.id"), index=True)
    method: Mapped[str | None] = mapped_column(String(20))  # auto | staff | jukinet
    reasons: Mapped[list[Any]] = mapped_column(JSON, nullable=False, default=list)
    candidates: Mapped[list[Any]] = mapped_column(JSON, nullable=False, default=list)
    contact_requested: Mapped[bool] = mapped_column(nullable=False, default=False)  # 本人への確認
    record_updated_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    decided_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)


class LinkDecision(Base):
    """紐付け記録: every decision on a record — by the matcher or by staff — with who, when and why.

    ``action``: auto_link | auto_review | auto_unmatched | jukinet_link | link | not_this_person |
    contact_resident | undo.  Never updated or deleted: an undo is a new row.
    """

    __tablename__ = "link_decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    system: Mapped[str] = mapped_column(String(40), nullable=False)
    action: Mapped[str] = mapped_column(String(30), nullable=False)
    addressee_id: Mapped[int | None] = mapped_column(ForeignKey("addressees.id"))
    actor: Mapped[str] = mapped_column(String(100), nullable=False)  # 職員 id, or "matcher"
    reason: Mapped[str] = mapped_column(String(1000), nullable=False, default="")
    at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)


class Counter(Base):
    """Serial counters (the next 統合宛名番号)."""

    __tablename__ = "addressee_counters"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, nullable=False)
