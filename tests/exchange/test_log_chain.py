"""The network's memory of each person's newest record, rebuilt at start from whom each record
commits to (its chain or its exchange), not from the person column a resident's list is read by."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from kojinbango.common.db import Database
from kojinbango.common.pki import create_ca, issue_org_certificate
from kojinbango.network.app import MIGRATIONS
from kojinbango.network.log import MerkleLog
from kojinbango.network.models import Exchange, Person


@pytest.fixture()
def log_db(tmp_path: Path) -> tuple[Path, MerkleLog]:
    create_ca(tmp_path)
    creds = issue_org_certificate(tmp_path, "network", "情報提供ネットワークシステム")
    path = tmp_path / "network.db"
    db = Database(f"sqlite:///{path}", MIGRATIONS)
    log = MerkleLog(db, creds)
    t = dt.datetime(2026, 1, 5)
    with db.transaction() as s:  # one exchange per record; people 1 (two records), 2 and 3 (one each)
        for person in range(1, 6):
            s.add(Person(id=person, code_digest=f"digest-{person}", created_at=t))
        for i, person in enumerate((1, 2, 1, 3)):
            s.add(Exchange(exchange_id=f"EX20260105-{i:08d}", request_id=f"r{i}", querier="q", provider="p",
                           affair="a", info="i", person_id=person, status="answered", requested_at=t))  # fmt: skip
    for i, person in enumerate((1, 2, 1, 3)):
        with log.transaction() as a:
            a.append({"exchange_id": f"EX20260105-{i:08d}", "outcome": "provided"}, person)
    return path, log


def reopened(path: Path, log: MerkleLog) -> MerkleLog:
    return MerkleLog(Database(f"sqlite:///{path}", MIGRATIONS), log.creds)


def test_each_persons_newest_record_survives_a_restart(log_db: tuple[Path, MerkleLog]) -> None:
    path, log = log_db
    again = reopened(path, log)
    assert again.last_of == log.last_of and again.load_problems == []
    assert [again.chain_head(p, again.size) for p in (1, 2, 3, 4)] == [
        log.cached.levels[0][2].hex(), log.cached.levels[0][1].hex(), log.cached.levels[0][3].hex(), ""
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("seq", "column", "exchange_person", "owner"),
    [
        (2, 3, 1, 1),  # refiled under 3: its chain (prev = person 1's first record) names 1
        (2, None, None, 1),  # column cleared and the exchange row too: still the chain
        (3, 1, 3, 3),  # person 3's only record, refiled under 1: no chain; its exchange names 3
        (3, None, 2, 3),  # ... and the exchange row altered too: found among the network's persons
        (3, None, 2, None),  # ... and the person gone from them: nobody's (still reported misfiled)
    ],
)
def test_a_record_refiled_while_stopped_stays_its_persons_newest(
    log_db: tuple[Path, MerkleLog],
    seq: int,
    column: int | None,
    exchange_person: int | None,
    owner: int | None,
) -> None:
    path, log = log_db
    newest = log.cached.levels[0][seq]
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE log_entries SET person_id = ? WHERE seq = ?", (column, seq))
        conn.execute(
            "UPDATE exchanges SET person_id = ? WHERE exchange_id = ?",
            (exchange_person, f"EX20260105-{seq:08d}"),
        )
        if owner is None:
            conn.execute("DELETE FROM persons WHERE id = 3")
    again = reopened(path, log)
    assert any(f"entry {seq} is filed under a person" in p for p in again.load_problems)
    true_person = 1 if seq == 2 else 3
    if owner is None:
        assert again.chain_head(true_person, again.size) == ""
    else:
        assert again.chain_head(owner, again.size) == newest.hex()
    if column is not None and column != true_person:  # the column's person keeps their own newest
        assert again.chain_head(column, again.size) == log.chain_head(column, log.size)
