"""Card desk tables, in the municipality's own database beside the register."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, Date, DateTime, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kojinbango.common.db import NAMING


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class DeskApplication(Base):
    """An application this municipality vouched for: resolved for J-LIS (online/post) or taken at
    the counter (申請時来庁方式, identity checked then)."""

    __tablename__ = "card_desk_applications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[str] = mapped_column(String(23), nullable=False, index=True)
    resident_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    channel: Mapped[str] = mapped_column(String(20), nullable=False)
    mode: Mapped[str] = mapped_column(String(20), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    jlis_application: Mapped[int | None] = mapped_column(Integer)


class CardInSafe(Base):
    """A card J-LIS delivered (交付時来庁方式) — kept in the safe until handed over.

    status: waiting (交付通知書 sent) → issuing → handed_over | returned.  ``chip`` is erased at
    hand-over.  ``issuing`` is the recorded intent of a hand-over, written before J-LIS is asked for
    the certificates: ``issue_key`` is the idempotency key J-LIS honours, so a hand-over interrupted
    after J-LIS answered is finished by asking again and getting the same certificates back."""

    __tablename__ = "cards_in_safe"
    card_serial: Mapped[str] = mapped_column(String(16), primary_key=True)
    application_id: Mapped[str] = mapped_column(String(23), nullable=False)
    resident_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    chip: Mapped[str | None] = mapped_column(Text)
    face: Mapped[dict[str, object]] = mapped_column(JSON, nullable=False)
    expires_on: Mapped[dt.date] = mapped_column(Date, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, index=True)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    notice_sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # 交付通知書
    handed_over_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    issue_key: Mapped[str | None] = mapped_column(String(64))
    issue_with_sign: Mapped[bool | None] = mapped_column(Boolean)


class CounterRecord(Base):
    """Every counter operation on a card: who did it, what identity document was checked, any fee."""

    __tablename__ = "card_counter_records"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resident_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    card_serial: Mapped[str | None] = mapped_column(String(16), index=True)
    action: Mapped[str] = mapped_column(String(40), nullable=False)
    staff: Mapped[str] = mapped_column(String(40), nullable=False)
    identity_document: Mapped[str | None] = mapped_column(String(40))
    fee_yen: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    detail: Mapped[dict[str, object]] = mapped_column(JSON, nullable=False, default=dict)
