"""処理通番 are numbered per day in Japan, and go on from the highest of the day after a restart."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest

from kojinbango.common.db import Database
from kojinbango.domain import clock
from kojinbango.network.app import MIGRATIONS
from kojinbango.network.core import NetworkCore
from kojinbango.network.models import Exchange


def _numberer(db: Database) -> NetworkCore:
    core = NetworkCore.__new__(NetworkCore)  # only what numbering uses: the database and the counter
    core.db, core._serial_lock, core._serial = db, threading.Lock(), None
    return core


def test_exchange_ids_take_the_day_in_japan_and_continue_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(f"sqlite:///{tmp_path}/network.db", MIGRATIONS)
    try:
        monkeypatch.setattr(clock, "source", lambda: dt.datetime(2026, 11, 27, 15, 30, tzinfo=dt.UTC))
        core = _numberer(db)
        first = [core._exchange_id() for _ in range(3)]
        assert first == [f"EX20261128-{i:08d}" for i in (1, 2, 3)]  # 00:30 JST on the 28th
        with db.transaction() as s:
            s.add(Exchange(exchange_id=first[-1], request_id="r3", querier="q", provider="p",
                           affair="a", info="i", status="answered", requested_at=dt.datetime(2026, 11, 27, 15, 30)))  # fmt: skip
        assert _numberer(db)._exchange_id() == "EX20261128-00000004"  # a restart goes on from the highest
        monkeypatch.setattr(clock, "source", lambda: dt.datetime(2026, 11, 28, 15, 0, tzinfo=dt.UTC))
        assert core._exchange_id() == "EX20261129-00000001"  # midnight in Japan starts a new day
    finally:
        db.dispose()
