"""Databases: one per organisation, SQLite file by default, PostgreSQL by URL; Alembic migrations."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    create_engine,
    delete,
    event,
    insert,
    text,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from kojinbango.common.signing import MAX_SKEW_SECONDS

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use psycopg 3 for them."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def upgrade(
    engine: Engine,
    migrations: str,
    version_table: str = "alembic_version",
    attributes: Mapping[str, Any] | None = None,
) -> None:
    """Bring a schema to the newest Alembic revision.

    ``migrations`` is a package resource location such as ``kojinbango.jlis:migrations``.  Several
    systems of one organisation (the register, 統合宛名, business systems) share its database, each
    with its own migration history in its own ``version_table``.  ``attributes`` reach the
    migrations as ``context.config.attributes`` (e.g. a key a data migration needs, never stored).
    """
    cfg = Config()
    cfg.attributes.update(attributes or {})
    cfg.set_main_option("script_location", migrations)
    cfg.set_main_option("version_table", version_table)
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Database:
    """An organisation's own database: an engine and one transaction per business operation."""

    def __init__(
        self,
        url: str,
        migrations: str | None = None,
        extra_migrations: Sequence[tuple[str, str]] = (),
        migration_attributes: Mapping[str, Any] | None = None,
    ):
        self.url = normalise_url(url)
        self.engine = make_engine(self.url)
        # One connection kept by each thread that runs an event loop (see ``begin``).
        self._held: dict[int, Connection] = {}
        self._held_guard = threading.Lock()
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if migrations:
            upgrade(self.engine, migrations, attributes=migration_attributes)
        for location, version_table in extra_migrations:
            upgrade(self.engine, location, version_table, migration_attributes)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed together, or not at all."""
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection whose statements commit together: ``transaction`` without the ORM session,
        for the hot paths that only run Core statements (a session costs more than the statement).

        On a thread that runs an event loop the transaction takes that thread's own connection,
        kept between transactions: the loop runs one of them at a time, and taking a connection
        from the pool and giving it back cost more than a short transaction's statements."""
        conn = self._loop_connection()
        if conn is None or conn.in_transaction():  # no loop here, or a transaction already open on it
            with self.engine.begin() as pooled:
                yield pooled
            return
        try:
            with conn.begin():
                yield conn
        except BaseException:
            if conn.invalidated or conn.closed:  # the connection itself failed: a fresh one next time
                with self._held_guard:
                    self._held.pop(threading.get_ident(), None)
            raise

    def _loop_connection(self) -> Connection | None:
        if asyncio._get_running_loop() is None:
            return None
        key = threading.get_ident()
        conn = self._held.get(key)
        if conn is None or conn.closed:
            conn = self.engine.connect()
            with self._held_guard:
                self._held[key] = conn
        return conn

    def session(self) -> Session:
        return self._sessions()

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def dispose(self) -> None:
        with self._held_guard:
            held, self._held = list(self._held.values()), {}
        for conn in held:
            conn.close()
        self.engine.dispose()


def nonce_table(metadata: MetaData) -> Table:
    """The table where an organisation remembers the nonces of requests it accepted."""
    return Table(
        "seen_nonces",
        metadata,
        Column("signer", String(40), nullable=False),
        Column("nonce", String(64), nullable=False),
        Column("created", BigInteger, nullable=False),
        Column("seen_at", DateTime, nullable=False),
        PrimaryKeyConstraint("signer", "nonce"),
    )


class DbNonceStore:
    """Replay protection that survives restarts: a nonce is accepted once per signer."""

    def __init__(self, db: Database, table: Table):
        self.db = db
        self.table = table
        self._last_prune = 0.0

    def __call__(self, signer: str, nonce: str, created: int) -> bool:
        now = time.time()
        try:
            with self.db.engine.begin() as conn:
                conn.execute(
                    insert(self.table).values(
                        signer=signer,
                        nonce=nonce,
                        created=created,
                        seen_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
                    )
                )
                if now - self._last_prune > 60:
                    # Older nonces can never be accepted again: their signatures are stale.
                    conn.execute(
                        delete(self.table).where(self.table.c.created < int(now) - 2 * MAX_SKEW_SECONDS)
                    )
                    self._last_prune = now
        except IntegrityError:
            return False
        return True


def sync_id_sequence(session: Session, table: Table, column: str = "id") -> None:
    """After a bulk insert with explicit ids, move PostgreSQL's sequence past them (SQLite needs nothing)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(
        text(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column}'), "
            f"(SELECT COALESCE(MAX({column}), 1) FROM {table.name}))"
        )
    )
