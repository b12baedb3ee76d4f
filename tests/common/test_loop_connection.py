"""``Database.begin`` on an event loop's thread keeps that thread's own connection between
transactions, and still commits each transaction alone or not at all."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from kojinbango.common.db import Database

md = MetaData()
items = Table("items", md, Column("id", Integer, primary_key=True), Column("name", String, unique=True))


def _db(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    md.create_all(db.engine)
    return db


def _count(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(items)) or 0)


def test_a_loop_thread_reuses_its_connection_and_each_transaction_stands_alone(tmp_path: Path) -> None:
    db = _db(tmp_path)

    async def main() -> None:
        with db.begin() as first:
            first.execute(insert(items), {"name": "a"})
        with db.begin() as second:
            assert second is first  # the loop's own connection, not one from the pool
            second.execute(insert(items), {"name": "b"})
            with db.begin() as inner:  # a transaction already open on it: another connection
                assert inner is not first
        with pytest.raises(RuntimeError), db.begin() as third:
            third.execute(insert(items), {"name": "c"})
            raise RuntimeError("the operation fails half-way")
        assert _count(db) == 2  # the failed one left nothing
        with db.begin() as fourth:  # and the connection is still good
            assert fourth is first
            fourth.execute(insert(items), {"name": "d"})

    asyncio.run(main())
    assert _count(db) == 3
    held = list(db._held.values())
    db.dispose()
    assert held and all(c.closed for c in held)


def test_off_the_loop_every_transaction_takes_a_pooled_connection(tmp_path: Path) -> None:
    db = _db(tmp_path)
    with db.begin() as a:
        a.execute(insert(items), {"name": "a"})
    with db.begin() as b:
        b.execute(insert(items), {"name": "b"})
    assert a is not b and not db._held
    db.dispose()
