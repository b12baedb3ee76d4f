"""Resident register database (住基情報DB) and the CS's outbox toward the prefecture."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kojinbango.common.db import NAMING, nonce_table


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


seen_nonces = nonce_table(Base.metadata)


class Household(Base):
    """世帯: a household with its 世帯番号 (M11W2-7 check digit)."""

    __tablename__ = "households"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    household_number: Mapped[str] = mapped_column(String(11), nullable=False, unique=True)
    postal_code: Mapped[str] = mapped_column(String(7), nullable=False)
    address: Mapped[str] = mapped_column(String(400), nullable=False)
    address_extra: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="active")  # active | dissolved


class Resident(Base):
    """住民票: one person's record.  Raw values as given; *_key columns are derived matching keys."""

    __tablename__ = "residents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    atena_number: Mapped[str] = mapped_column(String(11), nullable=False, unique=True)  # 宛名番号
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), nullable=False, index=True)
    relationship: Mapped[str] = mapped_column(String(40), nullable=False)  # 続柄
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False, unique=True)  # 住民票コード
    my_number: Mapped[str | None] = mapped_column(String(12), unique=True)  # 個人番号
    family_name: Mapped[str] = mapped_column(String(100), nullable=False)
    given_name: Mapped[str] = mapped_column(String(100), nullable=False)
    family_kana: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    given_kana: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    birth_date: Mapped[dt.date] = mapped_column(Date, nullable=False, index=True)  # 生年月日, searched
    sex: Mapped[int] = mapped_column(SmallInteger, nullable=False)  # 1 男 2 女 3 その他
    postal_code: Mapped[str] = mapped_column(String(7), nullable=False)
    address: Mapped[str] = mapped_column(String(400), nullable=False)
    address_extra: Mapped[str] = mapped_column(String(200), nullable=False, default="")  # 方書
    resident_since: Mapped[dt.date] = mapped_column(Date, nullable=False)  # 住民となった年月日
    address_since: Mapped[dt.date] = mapped_column(Date, nullable=False)  # 住所を定めた年月日
    previous_address: Mapped[str] = mapped_column(String(400), nullable=False, default="")  # 転入前住所
    status: Mapped[str] = mapped_column(
        String(20), nullable=False, default="active"
    )  # active | moved_out | dead
    removed_on: Mapped[dt.date | None] = mapped_column(Date)
    removal_reason: Mapped[str | None] = mapped_column(String(20))  # 消除事由
    name_key: Mapped[str] = mapped_column(String(100), nullable=False, index=True)
    kana_key: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    address_key: Mapped[str] = mapped_column(String(400), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    __table_args__ = (Index("ix_residents_status_id", "status", "id"),)


class ResidentEvent(Base):
    """異動履歴: one 異動 of a person, with its 異動日, 届出日 and 処理日 kept apart."""

    __tablename__ = "resident_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), nullable=False, index=True)
    event_type: Mapped[str] = mapped_column(String(40), nullable=False)  # 異動事由
    event_date: Mapped[dt.date] = mapped_column(Date, nullable=False)  # 異動日
    notified_on: Mapped[dt.date | None] = mapped_column(Date)  # 届出日
    processed_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)  # 処理日
    before: Mapped[dict[str, object]] = mapped_column(JSON, nullable=False, default=dict)
    after: Mapped[dict[str, object]] = mapped_column(JSON, nullable=False, default=dict)


class PastKey(Base):
    """旧氏名・旧住所の検索キー: a name or address a person no longer has, so staff can still find
    them by it (the standard spec's search covers 旧氏 and 前住所).  Derived from the 異動履歴 in
    the same transaction as the event; ``value`` is the raw text as it stood."""

    __tablename__ = "resident_past_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(10), nullable=False)  # name | kana | address
    key: Mapped[str] = mapped_column(String(400), nullable=False)
    value: Mapped[str] = mapped_column(String(400), nullable=False)
    until: Mapped[dt.date] = mapped_column(Date, nullable=False)  # the 異動日 that ended it
    __table_args__ = (Index("ix_resident_past_keys_kind_key", "kind", "key"),)


class CodeStock(Base):
    """空きコード: 住民票コード received from J-LIS and not yet used."""

    __tablename__ = "code_stock"
    resident_code: Mapped[str] = mapped_column(String(11), primary_key=True)
    bundle_request: Mapped[str] = mapped_column(String(64), nullable=False)
    used: Mapped[bool] = mapped_column(default=False, nullable=False, index=True)


class CsOutbox(Base):
    """The CS's ordered queue of 本人確認情報 changes toward the prefecture (transactional outbox)."""

    __tablename__ = "cs_outbox"
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_type: Mapped[str] = mapped_column(String(40), nullable=False)
    event_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    record: Mapped[dict[str, object]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime, index=True)


class Notice(Base):
    """個人番号通知書: one per number designation (a new number gets a new notice)."""

    __tablename__ = "notices"
    __table_args__ = (UniqueConstraint("resident_id", "my_number_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), nullable=False, index=True)
    my_number_version: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=0)
    application_id: Mapped[str] = mapped_column(String(23), nullable=False, unique=True)  # 申請書ID
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    print_run_id: Mapped[int | None] = mapped_column(ForeignKey("print_runs.id"), index=True)


class PrintRun(Base):
    """A bulk print run of notices: one PDF file; ``done`` once the file is complete on disk."""

    __tablename__ = "print_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)  # bulk | on_demand
    file_name: Mapped[str] = mapped_column(String(200), nullable=False)
    pages: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)  # started | done
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class NoticePrint(Base):
    """Each time a notice was printed; every print after the first is a reprint (再発行)."""

    __tablename__ = "notice_prints"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id"), nullable=False, index=True)
    print_run_id: Mapped[int] = mapped_column(ForeignKey("print_runs.id"), nullable=False, index=True)
    reprint: Mapped[bool] = mapped_column(nullable=False)
    printed_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)


class Setting(Base):
    """Small key-value state of the register (e.g. the introduction's progress)."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[str] = mapped_column(String(400), nullable=False)
