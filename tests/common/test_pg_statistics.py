"""PostgreSQL without autovacuum: each process keeps its organisation's planner statistics itself
(``common.db.analyze_stale``), so "tenant = :t AND x IN (…)" uses the whole index rather than reading
all of the tenant's rows."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text

from kojinbango.agency.models import MIGRATIONS
from kojinbango.common.db import STATISTICS, Database, analyze_stale, autovacuum_is_on, make_engine

pytestmark = pytest.mark.postgres

_LOOKUP = "SELECT id FROM t WHERE tenant = 'a' AND role = 'q' AND ex IN ({})"


def _changed(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        value = conn.execute(
            text("SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = :t"), {"t": table}
        ).scalar()
    return int(value or 0)


def _analyzed(engine: Engine, table: str) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.execute(
                text("SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = :t"),
                {"t": table},
            ).scalar()
        )


def test_tables_changed_by_a_tenth_are_analyzed_and_lookups_use_the_whole_index(
    pg_database: Callable[[str], str],
) -> None:
    engine = make_engine(pg_database("stats"))
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE t (id serial PRIMARY KEY, tenant text, role text, ex text, UNIQUE (tenant, role, ex))"
            )
        )
        conn.execute(text("CREATE TABLE few (x int)"))
        conn.execute(
            text(
                "INSERT INTO t (tenant, role, ex) SELECT 'a', 'q', 'EX' || g FROM generate_series(1, 5000) g"
            )
        )
        conn.execute(text("INSERT INTO few SELECT g FROM generate_series(1, 10) g"))
    engine.dispose()  # the inserting backend ends: its counts reach the statistics views
    deadline = time.monotonic() + 10
    while _changed(engine, "t") < 5000 and time.monotonic() < deadline:
        time.sleep(0.1)

    assert sorted(analyze_stale(engine)) == ["t"]  # 10 rows changed is below the threshold of 50
    assert _analyzed(engine, "t") and not _analyzed(engine, "few")
    assert analyze_stale(engine) == []  # nothing changed since

    ids = ", ".join(f"'EX{i}'" for i in range(100, 114))
    with engine.connect() as conn:
        plan = conn.execute(text("EXPLAIN (ANALYZE, FORMAT JSON) " + _LOOKUP.format(ids))).scalar_one()
    node = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    assert node["Actual Rows"] == 14
    assert "ex" in node.get("Index Cond", "") and node.get("Rows Removed by Filter", 0) == 0
    engine.dispose()


def test_a_database_on_a_server_without_autovacuum_is_kept_analyzed(
    pg_database: Callable[[str], str],
) -> None:
    db = Database(pg_database("statsreg"), MIGRATIONS)
    try:
        registered = db.engine in STATISTICS
        assert registered == (not autovacuum_is_on(db.engine))
    finally:
        db.dispose()
    assert db.engine not in STATISTICS


def test_autovacuum_off_is_said_once_per_server(
    pg_database: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    """A process opening several organisations' databases on one server (the demo, the bench) warns
    once for the server, not once per database."""
    import kojinbango.common.db as dbmod

    urls = [pg_database("warn_a"), pg_database("warn_b")]
    getattr(dbmod, "_WARNED_SERVERS", set()).clear()  # earlier tests may have warned for this server
    caplog.set_level(logging.WARNING, logger="kojinbango.common.db")
    dbs = [Database(u, MIGRATIONS) for u in urls]
    try:
        said = [r for r in caplog.records if "autovacuum is off" in r.getMessage()]
        assert len(said) == (0 if autovacuum_is_on(dbs[0].engine) else 1)
        for r in said:
            url = dbs[0].engine.url
            assert (
                "warn_a" not in r.getMessage()
                and f"{url.host or 'localhost'}:{url.port or 5432}" in r.getMessage()
            )
    finally:
        for db in dbs:
            db.dispose()
