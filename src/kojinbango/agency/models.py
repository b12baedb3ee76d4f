"""The agency's business database: insured persons, pension awards, 符号 requests, answers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Date, DateTime, ForeignKey, Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kojinbango.common.db import NAMING

MIGRATIONS = "kojinbango.agency:migrations"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class InsuredPerson(Base):
    """被保険者 / 受給者: the agency's own person (基礎年金番号) with the 個人番号 it was given."""

    __tablename__ = "insured_persons"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pension_number: Mapped[str] = mapped_column(String(10), nullable=False, unique=True)  # 基礎年金番号
    my_number: Mapped[str] = mapped_column(String(12), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    registered_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)


class PensionAward(Base):
    """年金の裁定: one pension a person receives."""

    __tablename__ = "pension_awards"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("insured_persons.id"), nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    annual_amount: Mapped[int] = mapped_column(Integer, nullable=False)
    since: Mapped[dt.date] = mapped_column(Date, nullable=False)


class AgencyFugo(Base):
    """符号取得要求 for one insured person."""

    __tablename__ = "agency_fugo"
    person_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    acquisition_number: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class AgencyAnswer(Base):
    """A query the agency made and the signed answer it received."""

    __tablename__ = "agency_answers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    exchange_id: Mapped[str | None] = mapped_column(String(32), index=True)
    person_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
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
