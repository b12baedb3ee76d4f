"""Replay protection kept in memory and written in group commits: a replay is refused at once, from
another process of the same organisation, and after a restart — nothing is let through before its
nonce is in the database."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import MetaData, func, select

from kojinbango.common.db import BACKSTOP_PAGES, Database, DbNonceStore, nonce_table
from kojinbango.common.signing import MAX_SKEW_SECONDS, sign_request
from kojinbango.common.transport import GroupCommitNonceStore
from kojinbango.jlis.models import CodeBundle
from kojinbango.nation import running


def _store(path: Path) -> tuple[GroupCommitNonceStore, Database]:
    md = MetaData()
    table = nonce_table(md)
    db = Database(f"sqlite:///{path}")
    md.create_all(db.engine)
    return GroupCommitNonceStore(DbNonceStore(db, table)), db


def _rows(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(_table(db))).scalar_one())


def _table(db: Database):  # type: ignore[no-untyped-def]
    md = MetaData()
    md.reflect(db.engine, only=["seen_nonces"])
    return md.tables["seen_nonces"]


def test_a_nonce_is_accepted_once_and_durable_before_it_is_accepted(tmp_path: Path) -> None:
    store, db = _store(tmp_path / "n.db")
    now = int(time.time())
    assert store("m131016", "n-1", now) is True
    assert _rows(db) == 1  # written before the answer came back
    assert store("m131016", "n-1", now) is False
    assert store("m131041", "n-1", now) is True  # nonces are per signer


def test_concurrent_copies_of_one_request_let_exactly_one_through(tmp_path: Path) -> None:
    store, db = _store(tmp_path / "n.db")
    now = int(time.time())
    results: list[bool] = []
    lock = threading.Lock()

    def send(nonce: str) -> None:
        ok = store("nenkin", nonce, now)
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=send, args=(f"n-{i % 20}",)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 20 and results.count(False) == 180
    assert _rows(db) == 20


def test_on_an_event_loop_concurrent_copies_let_exactly_one_through_durably(tmp_path: Path) -> None:
    store, db = _store(tmp_path / "n.db")
    now = int(time.time())

    async def requests() -> list[bool]:
        return list(await asyncio.gather(*(store.remember("nenkin", f"n-{i % 20}", now) for i in range(200))))

    results = asyncio.run(requests())
    assert results.count(True) == 20 and results.count(False) == 180
    assert _rows(db) == 20  # every accepted nonce was committed before its request went on
    assert store("nenkin", "n-3", now) is False  # the blocking path sees them too
    restarted, _ = _store(tmp_path / "n.db")
    assert restarted("nenkin", "n-7", now) is False


def test_on_an_event_loop_a_failed_commit_fails_the_requests_and_keeps_nothing(tmp_path: Path) -> None:
    store, db = _store(tmp_path / "n.db")
    now = int(time.time())
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE seen_nonces")

    async def request() -> bool:
        return await store.remember("nenkin", "lost", now)

    with pytest.raises(Exception, match="seen_nonces"):
        asyncio.run(request())
    assert ("nenkin", "lost") not in store._seen  # a retry is not refused as a replay


def test_a_request_that_went_away_while_waiting_does_not_stop_the_store(tmp_path: Path) -> None:
    from kojinbango.common.linkage import write_lock

    store, _db = _store(tmp_path / "n.db")
    now = int(time.time())
    with write_lock(store.db):  # the writer waits for the database: the request is still waiting
        waiting = store.submit("nenkin", "gone", now)
        assert waiting.cancel()  # its client disconnected
    assert store("nenkin", "next", now) is True  # the writer lived on
    assert store("nenkin", "gone", now) is False  # and the abandoned nonce is remembered


def test_on_sqlite_nonces_are_written_as_sqlalchemy_writes_them(tmp_path: Path) -> None:
    """The SQLite nonce writes go straight through sqlite3 (``db.SqliteRows``), each value in the form
    SQLAlchemy's column type gives it: the same text for a datetime as SQLAlchemy's own row."""
    store, db = _store(tmp_path / "n.db")
    assert store._sqlite is not None
    table = _table(db)
    at = dt.datetime(2026, 11, 28, 1, 2, 3, 4)
    store._sqlite.insert([("m131016", "direct", 1_800_000_000, at)])
    with db.engine.begin() as conn:
        conn.execute(table.insert().values(signer="m131016", nonce="core", created=1_800_000_000, seen_at=at))
        rows = conn.exec_driver_sql(
            "SELECT nonce, typeof(created), created, typeof(seen_at), seen_at FROM seen_nonces"
        )
        raw = {r[0]: tuple(r[1:]) for r in rows}
    assert raw["direct"] == raw["core"] == ("integer", 1_800_000_000, "text", "2026-11-28 01:02:03.000004")
    # its connection runs with the engine's settings: SQLite's own checkpoint only as the backstop
    # (at its default, 1,000 pages, every commit past them would checkpoint and sync on the loop)
    conn = store._sqlite._conn
    assert conn is not None
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == BACKSTOP_PAGES
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert store("m131016", "through-the-store", int(time.time())) is True
    with db.engine.connect() as conn:  # read back by SQLAlchemy as the datetime it was
        seen = conn.execute(select(table.c.seen_at).where(table.c.nonce == "through-the-store")).scalar_one()
    assert abs(seen - dt.datetime.now(dt.UTC).replace(tzinfo=None)) < dt.timedelta(seconds=60)


def test_a_restart_or_another_process_still_refuses_the_replay(tmp_path: Path) -> None:
    first, db = _store(tmp_path / "n.db")
    other, _ = _store(tmp_path / "n.db")  # a second process of the same organisation, started before
    now = int(time.time())
    assert first("network", "n-1", now) is True
    assert other("network", "n-1", now) is False  # its memory had never seen it: the database did
    restarted, _ = _store(tmp_path / "n.db")
    assert restarted("network", "n-1", now) is False
    assert restarted("network", "n-2", now) is True
    # nonces older than the validity window are not reloaded (their signatures are refused as stale)
    assert first("network", "old", now - 3 * MAX_SKEW_SECONDS) is True
    assert ("network", "old") not in _store(tmp_path / "n.db")[0]._seen


def test_a_replay_after_the_organisation_restarts_is_refused(small_nation_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "nation"
    shutil.copytree(small_nation_dir, d)
    body = json.dumps({"request_id": "restart-replay-0001", "count": 5}).encode()
    with running(d) as nation:
        headers = sign_request(
            nation.topology.credentials("m131016"), "POST", "/api/code-bundles", "", body, "jlis"
        )
        headers["content-type"] = "application/json"
        ok = httpx.post(nation.urls["jlis"] + "/api/code-bundles", content=body, headers=headers)
        assert ok.status_code == 200, ok.text
    with running(d) as nation:  # J-LIS restarted: its memory of nonces is rebuilt from its database
        replay = httpx.post(nation.urls["jlis"] + "/api/code-bundles", content=body, headers=headers)
        assert replay.status_code == 401 and "replayed" in replay.json()["detail"]
        with nation.runtime("jlis").db.transaction() as s:
            bundles = s.scalar(
                select(func.count())
                .select_from(CodeBundle)
                .where(CodeBundle.request_id == "restart-replay-0001")
            )
        assert bundles == 1


def test_expired_nonces_are_forgotten_as_they_expire_however_few(tmp_path: Path) -> None:
    """The window in memory holds only what a replay could still use: each write forgets the nonces
    that expired since (a long-running organisation's memory stays one window's worth)."""
    store, _db = _store(tmp_path / "n.db")
    now = int(time.time())
    old = now - GroupCommitNonceStore.WINDOW_SECONDS - 10
    for i in range(5):
        assert store("nenkin", f"old-{i}", old) is True
    assert store("nenkin", "in-window", now - 60) is True
    assert store("nenkin", "new", now) is True
    assert set(store._seen) == {("nenkin", "in-window"), ("nenkin", "new")}
    assert store("nenkin", "new", now) is False and store("nenkin", "in-window", now - 60) is False


def test_the_table_is_pruned_in_chunks_off_the_request_path(tmp_path: Path) -> None:
    from sqlalchemy import event

    from kojinbango.common.transport import PRUNER

    store, db = _store(tmp_path / "n.db")
    store.PRUNE_CHUNK = 3
    now = int(time.time())
    old = now - GroupCommitNonceStore.WINDOW_SECONDS - 10
    deletes: list[str] = []
    plans: list[str] = []

    def count(_conn: object, cursor: Any, statement: str, parameters: Any, *_: object) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            deletes.append(statement)
            # each chunk found and deleted through the primary key, never by scanning the table
            # (which, with a window's 240,000 nonces, held the write lock for seconds a minute)
            plan = cursor.connection.execute("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
            plans.extend(str(row[-1]) for row in plan)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        for i in range(10):
            assert store("nenkin", f"old-{i}", old) is True
        assert store("nenkin", "a", now) is True and store("nenkin", "b", now - 30) is True
        assert deletes == []  # a request's group commit never deletes
        assert store.prune_database() == 10
        assert len(deletes) == 4  # 3 + 3 + 3 + 1: small transactions
        assert plans and not [p for p in plans if p.startswith("SCAN")], plans
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert _rows(db) == 2
    assert store.prune_database() == 0
    assert store in PRUNER  # the process's pruning thread calls it every minute


@pytest.mark.postgres
def test_pruning_in_chunks_on_postgresql(pg_database: Callable[[str], str]) -> None:
    md = MetaData()
    table = nonce_table(md)
    db = Database(pg_database("nonces"))
    md.create_all(db.engine)
    try:
        store = GroupCommitNonceStore(DbNonceStore(db, table))
        store.PRUNE_CHUNK = 4
        now = int(time.time())
        for i in range(9):
            assert store("nenkin", f"old-{i}", now - GroupCommitNonceStore.WINDOW_SECONDS - 5) is True
        assert store("nenkin", "kept", now) is True
        assert store.prune_database() == 9
        assert _rows(db) == 1 and store("nenkin", "kept", now) is False
    finally:
        db.dispose()


def test_a_clients_memory_of_answer_nonces_forgets_them_as_they_expire() -> None:
    """The nonces of answers a client checked: a replay within the window is refused, and the
    expired ones are forgotten at the next answer however few they are."""
    from kojinbango.common.signing import MemoryNonceStore

    memory = MemoryNonceStore()
    now = int(time.time())
    for i in range(5):
        assert memory("network", f"old-{i}", now - 2 * MAX_SKEW_SECONDS - 10) is True
    assert memory("network", "recent", now - 30) is True
    assert memory("network", "recent", now - 30) is False  # a replayed answer
    assert memory("network", "new", now) is True
    assert set(memory._seen) == {("network", "recent"), ("network", "new")}
