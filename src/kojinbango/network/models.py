"""The network's own database: persons' internal ids, 符号 issuance, exchanges, the Merkle log.

No 個人番号 and no 住民票コード is ever stored here: a person is known by an internal id (IDコード)
found through a keyed digest of the 住民票コード J-LIS relayed once, and 符号 are computed from the
internal id with the network's secret key (they are not stored either).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kojinbango.common.db import NAMING, nonce_table


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


seen_nonces = nonce_table(Base.metadata)


class Person(Base):
    """IDコード: the network's internal id of one person; ``code_digest`` = HMAC(key, 住民票コード)."""

    __tablename__ = "persons"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code_digest: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)


class FugoIssuance(Base):
    """That a 情報保有機関 (or the portal) obtained its 符号 for a person, and when."""

    __tablename__ = "fugo_issuances"
    holder: Mapped[str] = mapped_column(String(40), primary_key=True)
    person_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)


class Exchange(Base):
    """One query and its answer, by 処理通番.

    status: pending (accepted, not yet answered: being delivered or retried) → answered | not_held |
    failed; refused when the legal table does not allow it.  ``answer`` (the provider's signed
    document) waits here until the querier collects it.
    """

    __tablename__ = "exchanges"
    __table_args__ = (
        UniqueConstraint("querier", "request_id"),
        Index("ix_exchanges_due", "status", "next_attempt_at"),
    )
    exchange_id: Mapped[str] = mapped_column(String(32), primary_key=True)  # 処理通番
    request_id: Mapped[str] = mapped_column(String(64), nullable=False)
    querier: Mapped[str] = mapped_column(String(40), nullable=False)
    provider: Mapped[str] = mapped_column(String(40), nullable=False)
    affair: Mapped[str] = mapped_column(String(40), nullable=False)
    info: Mapped[str] = mapped_column(String(40), nullable=False)
    # not indexed: nothing looks exchanges up by person (the log has its own person index), and
    # the index cost each exchange a write to a random page (migration 0003)
    person_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), nullable=False)
    reason: Mapped[str] = mapped_column(String(400), nullable=False, default="")
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    provided_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str] = mapped_column(String(400), nullable=False, default="")
    answer: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    collected_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    log_index: Mapped[int | None] = mapped_column(BigInteger)


class LogEntry(Base):
    """One provision record (情報提供等記録) as leaf ``seq`` of the append-only Merkle log.

    ``leaf`` is the canonical JSON the leaf hash is computed from; after the retention period it may
    be erased, leaving ``leaf_hash`` so the tree stays provable.
    """

    __tablename__ = "log_entries"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    leaf: Mapped[str | None] = mapped_column(Text)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    person_id: Mapped[int | None] = mapped_column(Integer, index=True)
    retain_until: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)


class TreeHead(Base):
    """A signed tree head (STH): the log's size and root, signed by the network."""

    __tablename__ = "tree_heads"
    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    document: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    signed_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
