"""Issued documents (交付記録): what was issued, for whom (internal ids), how, and its digest."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, DateTime, Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kojinbango.common.db import NAMING

VERSION_TABLE = "alembic_version_forms"
MIGRATIONS = "kojinbango.municipality.forms:migrations"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class IssuedDocument(Base):
    """交付記録: one signed document; ``sha256`` lets the municipality confirm a copy it is shown."""

    __tablename__ = "issued_documents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    document_number: Mapped[str] = mapped_column(String(40), nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(String(30), nullable=False)  # copy | items | card_ready | letter
    resident_ids: Mapped[list[int]] = mapped_column(JSON, nullable=False)
    requester_id: Mapped[int | None] = mapped_column(Integer)  # the person who asked (kiosk: card holder)
    with_my_number: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    channel: Mapped[str] = mapped_column(String(20), nullable=False)  # counter | kiosk | notice
    issued_by: Mapped[str] = mapped_column(String(60), nullable=False)
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, index=True)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
