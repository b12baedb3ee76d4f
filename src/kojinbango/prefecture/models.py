"""Prefecture database: its replica of 本人確認情報 (都道府県サーバ) and the relay queue to J-LIS."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
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


class ReplicaRecord(Base):
    """都道府県知事保存本人確認情報: the prefecture's copy for persons of its municipalities."""

    __tablename__ = "replica_records"
    resident_code: Mapped[str] = mapped_column(String(11), primary_key=True)
    my_number: Mapped[str | None] = mapped_column(String(12))
    family_name: Mapped[str] = mapped_column(String(100), nullable=False)
    given_name: Mapped[str] = mapped_column(String(100), nullable=False)
    family_kana: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    given_kana: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    birth_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    sex: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    address: Mapped[str] = mapped_column(String(400), nullable=False)
    municipality: Mapped[str] = mapped_column(String(6), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)


class RelayEntry(Base):
    """A change received from a municipality's CS, kept until J-LIS has acknowledged it."""

    __tablename__ = "relay_entries"
    __table_args__ = (UniqueConstraint("source", "seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(6), nullable=False)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    event_type: Mapped[str] = mapped_column(String(40), nullable=False)
    event_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    payload: Mapped[dict[str, object]] = mapped_column(JSON, nullable=False)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    forwarded_at: Mapped[dt.datetime | None] = mapped_column(DateTime, index=True)
