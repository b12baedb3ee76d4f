"""Databases: one per organisation, SQLite file by default, PostgreSQL by URL; Alembic migrations."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

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
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from kojinbango.common import jsoncodec
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


# A write transaction that crosses SQLite's automatic checkpoint threshold copies the WAL into the
# database file and fsyncs both before its commit returns: on a service's event loop that stalls every
# request the process is serving.  Checkpoints run instead on a background thread (``_Checkpointer``),
# PASSIVE every ``CHECKPOINT_SECONDS`` (they never wait for or block a reader or writer).  A PASSIVE
# checkpoint copies the WAL but cannot restart it: only a writer that finds every frame copied starts
# the WAL again from its beginning, and under a steady load there is always a newer frame, so the WAL
# only grew — until it reached the automatic threshold and a request's commit checkpointed on the
# event loop after all (measured: 10–25 ms stalls every few seconds in each service at 1,100
# exchanges/s, most of the exchanges' p99).  So once the WAL holds ``RESTART_FRAMES`` frames the
# thread runs a RESTART checkpoint (it copies the frames left and sees that no reader is on the WAL,
# so that the next commit writes from the WAL's beginning), holding the process's write lock for the
# file (``file_write_lock``): the process's writers wait on that lock for those milliseconds rather
# than in SQLite's busy handler, which sleeps in steps of up to 100 ms.  The threshold is large so
# that this is rare (the WAL file grows to about 256 MiB under a steady load; reads only search the
# frames not yet copied).  The automatic threshold stays as a backstop, well above, for when that
# thread falls behind.
CHECKPOINT_SECONDS = 0.5
RESTART_FRAMES = 65_536  # 256 MiB of 4-KiB pages: the WAL file's size under a steady load
BACKSTOP_PAGES = 4 * RESTART_FRAMES
CATCH_UP_PASSES = 4  # PASSIVE passes before a RESTART, until one takes under CATCH_UP_SECONDS
CATCH_UP_SECONDS = 0.005

# One write lock per SQLite file in this process.  SQLite has one writer at a time; threads that
# collide wait in its busy handler, which sleeps in growing steps (up to 100 ms).  The linkage services
# take this lock around their write transactions instead (``common.linkage.writing``), so writers queue
# without sleeping; the checkpointer takes it to restart the WAL.  PostgreSQL needs no lock.
_WRITE_LOCKS: dict[str, threading.RLock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def file_write_lock(key: str) -> threading.RLock:
    """The process's write lock for the SQLite file ``key`` (its path as the database URL gives it)."""
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(key, threading.RLock())


class _Checkpointer:
    """One daemon thread per process that checkpoints the registered SQLite files."""

    def __init__(self) -> None:
        self._files: dict[str, int] = {}  # path -> engines using it
        self._conns: dict[str, sqlite3.Connection] = {}
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None

    def register(self, path: str) -> None:
        with self._guard:
            self._files[path] = self._files.get(path, 0) + 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
                self._thread.start()

    def unregister(self, path: str) -> None:
        with self._guard:
            left = self._files.get(path, 0) - 1
            if left > 0:
                self._files[path] = left
                return
            self._files.pop(path, None)
            conn = self._conns.pop(path, None)
        if conn is not None:
            conn.close()

    def _run(self) -> None:
        while True:
            time.sleep(CHECKPOINT_SECONDS)
            with self._guard:
                paths = list(self._files)
            for path in paths:
                self.checkpoint(path)

    def checkpoint(self, path: str) -> None:
        with self._guard:  # held throughout: ``unregister`` closes a connection only between passes
            if path not in self._files:
                return
            conn = self._conns.get(path)
            if conn is None:
                try:  # never creates the file: one removed under a live engine is forgotten
                    conn = sqlite3.connect(
                        f"file:{path}?mode=rw", uri=True, timeout=0, check_same_thread=False
                    )
                except sqlite3.Error:
                    self._files.pop(path, None)
                    return
                self._conns[path] = conn
            with contextlib.suppress(sqlite3.Error):  # busy: the next pass (or the backstop) does it
                _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if frames >= RESTART_FRAMES:
                    self._restart(path, conn)

    @staticmethod
    def _restart(path: str, conn: sqlite3.Connection) -> None:
        """Start the WAL again from its beginning, the process's writers held off meanwhile.  The
        wait for the lock is bounded: a writer that holds it while it waits for ``register`` (this
        thread holds the guard) would otherwise wait for ever; the next pass tries again.  Readers
        still on the WAL make SQLite report busy (this connection does not wait): next pass, too."""
        # Catch up first, without the lock: each pass copies what arrived during the one before, so
        # what is left to copy and sync under the lock is what arrives during the last, short one
        # (straight after a pass that took 60–75 ms, the RESTART held the writers for 40–55 ms).
        for _ in range(CATCH_UP_PASSES):
            started = time.perf_counter()
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            if time.perf_counter() - started < CATCH_UP_SECONDS:
                break
        lock = file_write_lock(path)
        if not lock.acquire(timeout=0.05):
            return
        try:
            conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
        finally:
            lock.release()


CHECKPOINTER = _Checkpointer()

log = logging.getLogger(__name__)
T = TypeVar("T")

# PostgreSQL plans from the statistics ANALYZE gathers, which autovacuum keeps up to date. Without
# them it takes every equality for very selective: for "tenant = :t AND exchange_id IN (…)" it reads
# all of the tenant's rows through the tenant's index and filters them (measured: 1,400 rows read per
# exchange once a querier's records table held 26,000 rows, against 14). Where autovacuum is off (as
# on this project's test server) each process analyzes its organisation's tables itself, by
# autovacuum's own rule: once a table has changed by 50 rows and a tenth of its size since.
STATISTICS_SECONDS = 60.0
_STALE_TABLES = text(
    "SELECT schemaname, relname FROM pg_stat_user_tables WHERE n_mod_since_analyze > 50 + 0.1 * n_live_tup"
)


def analyze_stale(engine: Engine) -> list[str]:
    """ANALYZE the tables of ``engine``'s PostgreSQL database that changed by autovacuum's analyze
    threshold since they were last analyzed; returns their names."""
    quote = engine.dialect.identifier_preparer.quote
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        stale = list(conn.execute(_STALE_TABLES))
        for schema, table in stale:
            conn.execute(text(f"ANALYZE {quote(schema)}.{quote(table)}"))
    return [table for _, table in stale]


def autovacuum_is_on(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(text("SELECT current_setting('autovacuum')")).scalar_one() == "on"


class ProcessChore(Generic[T]):
    """One daemon thread per process that does ``action`` for every registered item, then sleeps
    ``seconds``, and again (``wait_first``: sleeps first).  Items are held weakly (one that is gone
    is forgotten); an item whose action fails is logged with ``failure`` and tried again on the
    next pass."""

    def __init__(
        self,
        name: str,
        seconds: float,
        action: Callable[[T], object],
        failure: Callable[[T, Exception], str],
        wait_first: bool = False,
    ):
        self.name = name
        self.seconds = seconds
        self.wait_first = wait_first
        self._action = action
        self._failure = failure
        self._items: weakref.WeakValueDictionary[int, T] = weakref.WeakValueDictionary()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None

    def register(self, item: T) -> None:
        with self._guard:
            self._items[id(item)] = item
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def unregister(self, item: T) -> None:
        with self._guard:
            if self._items.get(id(item)) is item:
                del self._items[id(item)]

    def __contains__(self, item: object) -> bool:
        return self._items.get(id(item)) is item

    def _run(self) -> None:
        if self.wait_first:
            time.sleep(self.seconds)
        while True:
            with self._guard:
                items = list(self._items.values())
            for item in items:
                try:
                    self._action(item)
                except Exception as exc:
                    log.warning("%s", self._failure(item, exc))
            del items  # not kept alive through the sleep
            time.sleep(self.seconds)


# One thread per process keeps the planner's statistics of the registered PostgreSQL databases
# whose server runs no autovacuum.
STATISTICS: ProcessChore[Engine] = ProcessChore(
    "pg-statistics",
    STATISTICS_SECONDS,
    analyze_stale,
    # the server is away, or the tables are not ours to analyze
    lambda engine, exc: f"analyzing stale tables of database {engine.url.database} failed: {exc}",
)

_WARNED_SERVERS: set[tuple[str | None, int | None]] = set()
_WARNED_GUARD = threading.Lock()


def _warn_autovacuum_off(engine: Engine) -> None:
    """Say once per server and process that autovacuum is off there (a process that opens several
    organisations' databases on one server, as the demo and the bench do, would say it for each)."""
    server = (engine.url.host, engine.url.port)
    with _WARNED_GUARD:
        if server in _WARNED_SERVERS:
            return
        _WARNED_SERVERS.add(server)
    log.warning(
        "autovacuum is off on the PostgreSQL server %s:%s: this process analyzes the tables of its"
        " databases there itself when they have changed by a tenth (turn autovacuum on instead)",
        server[0] or "localhost",
        server[1] or 5432,
    )


def sqlite_path(url: str) -> str | None:
    """The file of an SQLite URL (None for an in-memory database)."""
    database = make_url(url).database
    return database if database and database != ":memory:" else None


# JSON columns on every engine: orjson (common.jsoncodec)
_JSON: dict[str, Any] = {"json_serializer": jsoncodec.encode_text, "json_deserializer": jsoncodec.decode}


def sqlite_settings(conn: Any) -> None:
    """What every connection to an organisation's SQLite file runs with (the engine's, and
    ``SqliteRows``'s own): WAL, no fsync at each commit, foreign keys, waiting for the lock, and
    SQLite's automatic checkpoint only as the backstop (``_Checkpointer`` does the checkpoints, off
    the event loop)."""
    cur = conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
    cur.close()


class SqliteRows:
    """Rows added to one table of an SQLite file over a ``sqlite3`` connection of their own, past
    SQLAlchemy — for the request nonces, one commit per request on the agency's query interface:
    SQLAlchemy's execution context and transaction cost 45 µs of CPU per such commit, SQLite's own
    work 26 µs.  Each value is converted by its column type's own SQLite bind processor, so the
    stored form (a datetime's text above all) is byte for byte what SQLAlchemy writes.  Callers hold
    the file's write lock (``Database.write_lock``), which is also what keeps the connection to one
    thread at a time."""

    def __init__(self, db: Database, table: Table, columns: Sequence[str]):
        path = sqlite_path(db.url) if db.is_sqlite else None
        if path is None:
            raise ValueError("SqliteRows needs an SQLite file")
        self._path = path
        dialect = db.engine.dialect
        self._convert = [table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in columns]
        marks = ", ".join("?" * len(columns))
        self._sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"
        self._conn: sqlite3.Connection | None = None

    def insert(self, rows: Sequence[Sequence[Any]]) -> None:
        conn = self._conn
        if conn is None:
            # autocommit mode: the transaction is this method's BEGIN … COMMIT
            conn = sqlite3.connect(self._path, timeout=60, isolation_level=None, check_same_thread=False)
            sqlite_settings(conn)
            self._conn = conn
            weakref.finalize(self, conn.close)
        convert = self._convert
        values = [tuple(v if f is None else f(v) for f, v in zip(convert, row, strict=True)) for row in rows]
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(self._sql, values)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, **_JSON)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            sqlite_settings(dbapi_conn)

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10, **_JSON)


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
        path = sqlite_path(self.url) if self.is_sqlite else None
        # the lock its writers take (``common.linkage.writing``): a file's is shared by every
        # Database of the process on that file and by the checkpointer; any other database's is its own
        self.write_lock = file_write_lock(path) if path else threading.RLock()
        self._unregister: Callable[[], Any] = lambda: None
        if path:
            CHECKPOINTER.register(path)
            # also when a Database is dropped without ``dispose`` (the thread would keep its file open)
            self._unregister = weakref.finalize(self, CHECKPOINTER.unregister, path)
        # One connection kept by each thread that runs an event loop (see ``begin``).
        self._held: dict[int, Connection] = {}
        self._held_guard = threading.Lock()
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._unregister_statistics: Callable[[], Any] = lambda: None
        if migrations:
            upgrade(self.engine, migrations, attributes=migration_attributes)
        for location, version_table in extra_migrations:
            upgrade(self.engine, location, version_table, migration_attributes)
        if not self.is_sqlite and (migrations or extra_migrations) and not autovacuum_is_on(self.engine):
            _warn_autovacuum_off(self.engine)
            STATISTICS.register(self.engine)
            self._unregister_statistics = weakref.finalize(self, STATISTICS.unregister, self.engine)

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
        self._unregister()  # once only (a finalizer runs at most once)
        self._unregister_statistics()
        self.engine.dispose()


def nonce_table(metadata: MetaData) -> Table:
    """The table where an organisation remembers the nonces of requests it accepted.

    Keyed by the signed ``created`` first: a replay carries the original's, so the key still
    refuses it, and each new nonce goes at the key's end instead of on a random page (on SQLite,
    without a rowid, the table is that key: at 800 exchanges/s the agency's WAL took 31.0 KiB per
    exchange against 33.3 keyed by signer).  Expired nonces go from the key's front."""
    return Table(
        "seen_nonces",
        metadata,
        Column("signer", String(40), nullable=False),
        Column("nonce", String(64), nullable=False),
        Column("created", BigInteger, nullable=False),
        Column("seen_at", DateTime, nullable=False),
        PrimaryKeyConstraint("created", "signer", "nonce"),
        sqlite_with_rowid=False,
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
