"""``common.linkage.waiting_queries``: a querier's queries still waiting, oldest first, at most a limit
of them with the total beside; collecting asks for each again and a failure does not stop the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kojinbango.common.db import Database
from kojinbango.common.linkage import waiting_queries, writing


class Base(DeclarativeBase):
    pass


class Answer(Base):
    __tablename__ = "answers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    exchange_id: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(12))


def _db(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'q.db'}")
    Base.metadata.create_all(db.engine)
    with writing(db) as s:
        s.add_all([
            Answer(exchange_id="EX1", status="answered"),
            Answer(exchange_id="EX2", status="pending"),
            Answer(exchange_id=None, status="unsent"),
            Answer(exchange_id="EX4", status="pending"),
            Answer(exchange_id="EX5", status="refused"),
        ])  # fmt: skip
    return db


def view(row: Any) -> dict[str, Any]:
    return {"exchange_id": row.exchange_id, "status": row.status}


def test_the_oldest_waiting_are_listed_with_the_total(tmp_path: Path) -> None:
    db = _db(tmp_path)
    try:
        everything = waiting_queries(db, Answer, view)
        assert [w["exchange_id"] for w in everything["waiting"]] == ["EX2", None, "EX4"]
        assert everything["total"] == 3
        cut = waiting_queries(db, Answer, view, limit=2)
        assert [w["exchange_id"] for w in cut["waiting"]] == ["EX2", None] and cut["total"] == 3
    finally:
        db.dispose()


def test_collecting_asks_for_each_and_lists_what_still_waits(tmp_path: Path) -> None:
    db = _db(tmp_path)
    asked: list[str] = []

    def collect(exchange_id: str) -> dict[str, Any]:
        asked.append(exchange_id)
        if exchange_id == "EX2":
            raise ConnectionError("the network could not be reached")
        with writing(db) as s:  # EX4's answer has come: the querier's row is updated
            row = s.query(Answer).filter_by(exchange_id=exchange_id).one()
            row.status = "answered"
        return {"status": "answered"}

    try:
        out = waiting_queries(db, Answer, view, collect)
        assert asked == ["EX2", "EX4"]  # an unsent query has no 処理通番 to ask by
        assert out["collected"] == 1 and out["total"] == 2
        assert [w["exchange_id"] for w in out["waiting"]] == ["EX2", None]
        assert out["collect_failed"] == [
            {"exchange_id": "EX2", "error": "ConnectionError: the network could not be reached"}
        ]
    finally:
        db.dispose()
