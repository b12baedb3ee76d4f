"""Push notices and their deliveries (お知らせ・配信記録)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kojinbango.common.db import NAMING

VERSION_TABLE = "alembic_version_outreach"
MIGRATIONS = "kojinbango.municipality.outreach:migrations"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class PushNotice(Base):
    """お知らせ: the text, the target conditions as written, and its state (draft → sent)."""

    __tablename__ = "push_notices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(100), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    conditions: Mapped[dict[str, object]] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)  # draft | sent
    created_by: Mapped[str] = mapped_column(String(40), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    sent_by: Mapped[str | None] = mapped_column(String(40))
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class NoticeDelivery(Base):
    """One resident's copy: through the portal inbox or by a printed letter; when read.

    An inbox copy is its own outbox entry: ``forwarded_at`` stays empty until the intermediate
    server has taken it (``attempts``/``next_attempt_at``/``last_error`` while it is retried).
    ``failed_at``: a hop refused the copy for good (送達不能, the reason in ``last_error``); the copy
    then goes by printed letter (``channel = letter``) and is not tried again."""

    __tablename__ = "push_notice_deliveries"
    __table_args__ = (UniqueConstraint("notice_id", "resident_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("push_notices.id"), nullable=False, index=True)
    resident_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    channel: Mapped[str] = mapped_column(String(20), nullable=False)  # inbox | letter
    delivered_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    read_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    forwarded_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str] = mapped_column(String(400), nullable=False, default="", server_default="")
    failed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class PortalUser(Base):
    """A resident who has opened the portal's inbox (and so reads notices there, not by post)."""

    __tablename__ = "portal_readers"
    resident_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_seen: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
