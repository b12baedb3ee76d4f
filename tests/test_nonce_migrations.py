"""The seven histories that hold ``seen_nonces`` re-key it by time first, keeping the nonces held."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text

from kojinbango.common.db import normalise_url

HISTORIES = [
    ("kojinbango.intermediate:migrations", "alembic_version_intermediate", "0001"),
    ("kojinbango.jlis:migrations", "alembic_version", "0001"),
    ("kojinbango.network:migrations", "alembic_version", "0001"),
    ("kojinbango.portal:migrations", "alembic_version", "0001"),
    ("kojinbango.prefecture:migrations", "alembic_version", "0001"),
    ("kojinbango.relying_party:migrations", "alembic_version", "0001"),
    ("kojinbango.municipality.register:migrations", "alembic_version", "0002"),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/nonces.db"
    make: Callable[[str], str] = request.getfixturevalue("pg_database")
    return make("rekey")


def _alembic(url: str, location: str, version_table: str, action: str, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", location)
    cfg.set_main_option("version_table", version_table)
    cfg.set_main_option("sqlalchemy.url", url)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            getattr(command, action)(cfg, revision)
    finally:
        engine.dispose()


@pytest.mark.parametrize(("location", "version_table", "before"), HISTORIES)
def test_seen_nonces_rekeyed_by_time_first_and_back(
    url: str, location: str, version_table: str, before: str
) -> None:
    url = normalise_url(url)
    _alembic(url, location, version_table, "upgrade", before)
    engine = create_engine(url)
    seen = dt.datetime(2026, 11, 27, 16, 0)
    rows = [{"s": "nenkin", "n": f"n-{i}", "c": 1_795_000_000 + i, "t": seen} for i in range(3)]
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO seen_nonces VALUES (:s, :n, :c, :t)"), rows)
        assert inspect(engine).get_pk_constraint("seen_nonces")["constrained_columns"] == ["signer", "nonce"]

        _alembic(url, location, version_table, "upgrade", "head")
        pk = inspect(engine).get_pk_constraint("seen_nonces")
        assert pk["constrained_columns"] == ["created", "signer", "nonce"]
        assert pk["name"] == "pk_seen_nonces"
        with engine.begin() as conn:
            kept = conn.execute(text("SELECT signer, nonce, created FROM seen_nonces ORDER BY nonce")).all()
            assert [tuple(r) for r in kept] == [(r["s"], r["n"], r["c"]) for r in rows]  # none forgotten
            if engine.dialect.name == "sqlite":
                ddl = conn.execute(
                    text("SELECT sql FROM sqlite_master WHERE name = 'seen_nonces'")
                ).scalar_one()
                assert ddl.rstrip().upper().endswith("WITHOUT ROWID")
        with pytest.raises(Exception, match="(?i)unique|duplicate"), engine.begin() as conn:  # a replay
            conn.execute(text("INSERT INTO seen_nonces VALUES (:s, :n, :c, :t)"), rows[0])

        _alembic(url, location, version_table, "downgrade", before)
        assert inspect(engine).get_pk_constraint("seen_nonces")["constrained_columns"] == ["signer", "nonce"]
        with engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM seen_nonces")).scalar_one() == 3
    finally:
        engine.dispose()
