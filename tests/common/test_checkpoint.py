"""SQLite checkpoints run on a background thread, not inside a service's write transactions."""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path

from sqlalchemy import text

from kojinbango.common.db import BACKSTOP_PAGES, CHECKPOINT_SECONDS, CHECKPOINTER, Database


def test_writes_reach_the_database_file_from_the_background_thread(tmp_path: Path) -> None:
    path = tmp_path / "org.db"
    db = Database(f"sqlite:///{path}")
    try:
        with db.begin() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == BACKSTOP_PAGES
            conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)"))
        size = path.stat().st_size
        with db.begin() as conn:  # about 500 pages: under the backstop, so no commit checkpoints
            conn.execute(text("INSERT INTO t (body) VALUES (:b)"), [{"b": os.urandom(4000)} for _ in range(500)])
        assert path.stat().st_size == size  # in the WAL only, right after the commit
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
