"""J-LIS card centre (カード管理) and JPKI certificate authority tables, in J-LIS's own database."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, Date, DateTime, Integer, LargeBinary, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kojinbango.common.db import NAMING


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class CardCounter(Base):
    """Monotone counters of the card centre (CRL number)."""

    __tablename__ = "card_counters"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False)


class CardApplication(Base):
    """個人番号カード交付申請: one application, from its 申請書ID, with the photo and the 4情報 it was
    accepted with.  status: received → manufactured | stale | withdrawn."""

    __tablename__ = "card_applications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[str] = mapped_column(String(23), nullable=False, index=True)  # 申請書ID
    municipality: Mapped[str] = mapped_column(String(6), nullable=False)
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False, index=True)
    mode: Mapped[str] = mapped_column(String(20), nullable=False)  # 交付時来庁方式 | 申請時来庁方式
    channel: Mapped[str] = mapped_column(String(20), nullable=False)  # online | post | counter
    reissue: Mapped[bool] = mapped_column(nullable=False, default=False)
    four: Mapped[dict[str, object]] = mapped_column(JSON, nullable=False)
    photo: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    photo_type: Mapped[str] = mapped_column(String(20), nullable=False)
    pin_verifiers: Mapped[dict[str, object] | None] = mapped_column(JSON)  # 申請時来庁方式, until made
    status: Mapped[str] = mapped_column(String(20), nullable=False, index=True)
    reason: Mapped[str | None] = mapped_column(String(400))
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    card_serial: Mapped[str | None] = mapped_column(String(16))


class Card(Base):
    """A manufactured card.  status: manufactured → delivered (to the municipality) | mailed →
    issued → suspended ⇄ issued → abolished.  ``chip`` holds the chip only while J-LIS itself
    physically holds the card (before delivery, or in the post); it is erased when the card leaves."""

    __tablename__ = "cards"
    card_serial: Mapped[str] = mapped_column(String(16), primary_key=True)
    application: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    municipality: Mapped[str] = mapped_column(String(6), nullable=False)
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False, index=True)
    mode: Mapped[str] = mapped_column(String(20), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, index=True)
    issued_on: Mapped[dt.date] = mapped_column(Date, nullable=False)
    expires_on: Mapped[dt.date] = mapped_column(Date, nullable=False)
    four: Mapped[dict[str, object]] = mapped_column(JSON, nullable=False)
    chip: Mapped[str | None] = mapped_column(Text)
    manufactured_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    abolish_reason: Mapped[str | None] = mapped_column(String(40))
    # SHA-256 of the municipality's idempotency key of the counter issuance (交付): a retry with the
    # same key and the same public keys gets the same certificates back, never a second pair.
    issue_key: Mapped[str | None] = mapped_column(String(64))


class CardEvent(Base):
    """The card's life, one row per step (製造, 送付, 交付, 一時停止, 一時停止解除, 廃止 …)."""

    __tablename__ = "card_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    card_serial: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    event: Mapped[str] = mapped_column(String(40), nullable=False)
    at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    actor: Mapped[str] = mapped_column(String(40), nullable=False)
    detail: Mapped[dict[str, object]] = mapped_column(JSON, nullable=False, default=dict)


class JpkiCertificate(Base):
    """A JPKI certificate and its status; J-LIS's serial ↔ 住民票コード mapping.

    status: good | suspended (certificateHold, 一時保留) | revoked (失効)."""

    __tablename__ = "jpki_certificates"
    serial: Mapped[str] = mapped_column(String(50), primary_key=True)  # decimal
    kind: Mapped[str] = mapped_column(String(8), nullable=False)  # auth | sign
    card_serial: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    resident_code: Mapped[str] = mapped_column(String(11), nullable=False, index=True)
    four: Mapped[dict[str, object]] = mapped_column(JSON, nullable=False)  # what the certificate says
    not_before: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    not_after: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    status: Mapped[str] = mapped_column(String(12), nullable=False, index=True)
    reason: Mapped[str | None] = mapped_column(String(40))
    status_changed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    der: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
