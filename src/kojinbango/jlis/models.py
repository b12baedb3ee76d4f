"""J-LIS (地方公共団体情報システム機構) database: code stock, issued numbers, 住基ネット national store."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kojinbango.common.db import NAMING, nonce_table


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


seen_nonces = nonce_table(Base.metadata)


class Counter(Base):
    """Monotone counters J-LIS keeps (the next 住民票コード serial)."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False)


class CodeBundle(Base):
    """A bundle (束) of unused 住民票コード (空きコード) handed to one municipality."""

    __tablename__ = "code_bundles"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    municipality: Mapped[str] = mapped_column(String(6), nullable=False)
    start_serial: Mapped[int] = mapped_column(BigInteger, nullable=False)
    count: Mapped[int] = mapped_column(Integer, nullable=False)
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)


class IssuedNumber(Base):
    """Every 個人番号 J-LIS ever generated (番号法8条2項): current and former numbers alike."""

    __tablename__ = "issued_numbers"
    __table_args__ = (PrimaryKeyConstraint("resident_code", "version"),)
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False)
    version: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    my_number: Mapped[str] = mapped_column(String(12), nullable=False, unique=True)
    municipality: Mapped[str] = mapped_column(String(6), nullable=False)
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)


class IdentityRecord(Base):
    """機構保存本人確認情報: one person's current 本人確認情報 in the 住基ネット national store."""

    __tablename__ = "identity_records"
    resident_code: Mapped[str] = mapped_column(String(11), primary_key=True)
    my_number: Mapped[str | None] = mapped_column(String(12), unique=True)
    family_name: Mapped[str] = mapped_column(String(100), nullable=False)
    given_name: Mapped[str] = mapped_column(String(100), nullable=False)
    family_kana: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    given_kana: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    birth_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    sex: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    address: Mapped[str] = mapped_column(String(400), nullable=False)
    municipality: Mapped[str] = mapped_column(String(6), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)  # current | removed
    removal_reason: Mapped[str | None] = mapped_column(String(20))
    last_event: Mapped[str] = mapped_column(String(40), nullable=False)
    last_event_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    name_key: Mapped[str] = mapped_column(String(100), nullable=False)
    kana_key: Mapped[str] = mapped_column(String(200), nullable=False)
    address_key: Mapped[str] = mapped_column(String(400), nullable=False)
    __table_args__ = (Index("ix_identity_records_match", "name_key", "birth_date"),)


class IdentityChange(Base):
    """Every change to 本人確認情報 received from a municipality's CS via its prefecture, in order."""

    __tablename__ = "identity_changes"
    __table_args__ = (UniqueConstraint("source", "seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(6), nullable=False)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    event_type: Mapped[str] = mapped_column(String(40), nullable=False)
    event_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False, index=True)
    payload: Mapped[dict[str, object]] = mapped_column(JSON, nullable=False)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
