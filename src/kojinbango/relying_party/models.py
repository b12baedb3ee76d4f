"""The bank's own database: application challenges and the accounts it opened."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, DateTime, Integer, LargeBinary, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kojinbango.common.db import NAMING, nonce_table


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


seen_nonces = nonce_table(Base.metadata)


class ApplicationChallenge(Base):
    """A single-use value the applicant's signed application must carry (no replayed applications)."""

    __tablename__ = "application_challenges"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    challenge: Mapped[str] = mapped_column(String(64), nullable=False)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class Account(Base):
    """口座開設: an account opened on a verified 署名用 signature, with the 4情報 the certificate gave,
    and the signed application kept as evidence."""

    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_number: Mapped[str] = mapped_column(String(7), nullable=False, unique=True)
    account_type: Mapped[str] = mapped_column(String(20), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    address: Mapped[str] = mapped_column(String(400), nullable=False)
    birth_date: Mapped[str] = mapped_column(String(10), nullable=False)
    sex: Mapped[str] = mapped_column(String(1), nullable=False)
    certificate_serial: Mapped[str] = mapped_column(String(50), nullable=False)
    application: Mapped[dict[str, object]] = mapped_column(JSON, nullable=False)
    signature: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    opened_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
