"""SQLite checkpoints run on a background thread, not inside a service's write transactions, and that
thread starts the WAL again when it has grown past its limit."""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from kojinbango.common import db as dbmod
from kojinbango.common.db import BACKSTOP_PAGES, CHECKPOINT_SECONDS, CHECKPOINTER, Database, file_write_lock
from kojinbango.common.linkage import write_lock


def test_writes_reach_the_database_file_from_the_background_thread(tmp_path: Path) -> None:
    path = tmp_path / "org.db"
    db = Database(f"sqlite:///{path}")
    try:
        with db.begin() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == BACKSTOP_PAGES
            conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)"))
        with db.begin() as conn:  # the table in the file now, so the file's size moves only with the rows
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        size = path.stat().st_size
        with db.begin() as conn:  # about 500 pages: under the backstop, so no commit checkpoints
            conn.execute(
                text("INSERT INTO t (body) VALUES (:b)"), [{"b": os.urandom(4000)} for _ in range(500)]
            )
        # written to the WAL by the commit (a checkpoint never shrinks the WAL, so this reads the same
        # whenever the background thread runs; the file's own size, read here, would race it)
        assert Path(f"{path}-wal").stat().st_size >= 500 * 4096
        deadline = time.time() + 20 * CHECKPOINT_SECONDS
        while path.stat().st_size < size + 500 * 4000 and time.time() < deadline:
            time.sleep(CHECKPOINT_SECONDS / 5)
        assert path.stat().st_size >= size + 500 * 4000  # copied into the file by the checkpointer
        with db.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 500
    finally:
        db.dispose()
    assert str(path) not in CHECKPOINTER._files


def test_a_database_dropped_without_dispose_is_forgotten(tmp_path: Path) -> None:
    path = tmp_path / "dropped.db"
    db = Database(f"sqlite:///{path}")
    with db.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
    assert str(path) in CHECKPOINTER._files
    db.engine.dispose()
    del db, conn
    gc.collect()
    assert str(path) not in CHECKPOINTER._files


def test_a_removed_file_is_never_created_again(tmp_path: Path) -> None:
    path = tmp_path / "gone.db"
    db = Database(f"sqlite:///{path}")
    try:
        db.engine.dispose()
        for p in tmp_path.glob("gone.db*"):
            p.unlink()
        CHECKPOINTER._conns.pop(str(path), None)
        CHECKPOINTER.checkpoint(str(path))
        assert not path.exists() and str(path) not in CHECKPOINTER._files
    finally:
        db.dispose()


def _wal_bytes_under_steady_writes(tmp_path: Path, name: str, seconds: float, commits: int) -> int:
    """The largest the WAL file grew while one thread wrote without a pause for ``seconds`` and at
    least ``commits`` transactions (a slow disk commits fewer in the time: the count keeps the WAL
    that is never restarted well past the restart size on any machine)."""
    path = tmp_path / name
    db = Database(f"sqlite:///{path}")
    wal = Path(f"{path}-wal")
    try:
        with db.begin() as conn:
            conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)"))
        largest, deadline, done = 0, time.time() + seconds, 0
        while time.time() < deadline or done < commits:
            with db.write_lock, db.begin() as conn:  # as the services write (``linkage.writing``)
                conn.execute(text("INSERT INTO t (body) VALUES (:b)"), {"b": os.urandom(3000)})
            largest = max(largest, wal.stat().st_size)
            done += 1
            time.sleep(0.001)  # a service does other work between its transactions
        return largest
    finally:
        db.dispose()


def test_the_checkpointer_restarts_a_wal_that_never_pauses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under a steady load no writer ever finds every frame copied, so none starts the WAL again, and
    # it grew until a request's commit checkpointed on the event loop: the thread restarts it itself,
    # holding the writers' lock while it copies the last frames.
    pass_was = dbmod.CHECKPOINT_SECONDS
    monkeypatch.setattr(dbmod, "CHECKPOINT_SECONDS", 0.05)
    monkeypatch.setattr(dbmod, "RESTART_FRAMES", 50)
    # the process's one checkpointer thread (an earlier test started it) may be in a sleep of the
    # usual length: its passes come every 0.05 s only once that ends
    time.sleep(pass_was)
    bounded = _wal_bytes_under_steady_writes(tmp_path, "restarted.db", 2.0, 600)
    monkeypatch.setattr(dbmod, "RESTART_FRAMES", 10**9)  # the same without the restarts: it only grows
    unbounded = _wal_bytes_under_steady_writes(tmp_path, "grown.db", 2.0, 600)
    assert unbounded > 4 * bounded, (bounded, unbounded)


def test_databases_on_one_file_share_its_write_lock(tmp_path: Path) -> None:
    a = Database(f"sqlite:///{tmp_path / 'org.db'}")
    b = Database(f"sqlite:///{tmp_path / 'org.db'}")
    other = Database(f"sqlite:///{tmp_path / 'other.db'}")
    memory = Database("sqlite://")
    try:
        assert write_lock(a) is write_lock(b) is a.write_lock is file_write_lock(str(tmp_path / "org.db"))
        assert write_lock(other) is not a.write_lock
        assert write_lock(memory) is not a.write_lock and write_lock(memory) is not write_lock(other)
    finally:
        for db in (a, b, other, memory):
            db.dispose()
