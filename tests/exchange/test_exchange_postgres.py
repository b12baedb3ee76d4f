"""Information linkage with every organisation on PostgreSQL: the three scenarios, the records agree,
the network's log verifies."""

from __future__ import annotations

from pathlib import Path

import pytest
from exchange_helpers import ask, concurrent_pension_queries, scenarios

from kojinbango import demo, linkage_audit, linkage_setup
from kojinbango.common.topology import Topology
from kojinbango.domain.jst import today_jst
from kojinbango.nation import Nation, create_deployment, init_nation, intro, running

pytestmark = pytest.mark.postgres


def _deployment(pg_database, d: Path) -> Topology:  # type: ignore[no-untyped-def]
    """A deployment with every organisation on a fresh PostgreSQL database of its own."""
    topo = create_deployment(d)
    for org in topo.organisations.values():
        org.database_url = pg_database(org.id)
    topo.save()
    return topo


def _scenarios(nation: Nation, d: Path) -> None:
    """Numbers, a move, linkage prepared, then the three scenarios: answered, answered, refused."""
    intro(nation)
    demo.move(nation, 9, today_jst())
    linkage_setup.prepare(nation, 9)
    answers = [ask(nation, s["command"]) for s in scenarios(d)]
    assert [a["status"] for a in answers] == ["answered", "answered", "refused"]
    assert all(a["signature_valid"] for a in answers[:2])


def test_linkage_on_postgresql(pg_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "pg"
    _deployment(pg_database, d)
    init_nation(d, 200, seed=9)
    with running(d) as nation:
        assert nation.runtime("network").db.engine.dialect.name == "postgresql"
        _scenarios(nation, d)
        records = linkage_audit.three_records(nation.topology)
        assert records["agree"] and len(records["exchanges"]) == 3
        assert linkage_audit.verify_network_log(nation.topology)["ok"]
        core = nation.runtime("network").services["core"]
        head = core.log.tree_head()
        assert head is not None and head["payload"]["tree_size"] == 3
        # queries at once travel in batches (multi-row reads and writes on PostgreSQL too)
        batches = nation.runtime("agency").services["agency"]._asks
        together = concurrent_pension_queries(nation, 16)
        assert {x["status"] for x in together} == {"answered"} and all(x["signature_valid"] for x in together)
        assert len({x["exchange_id"] for x in together}) == 16
        assert sum(c.items - c.batches for c in batches.all()) > 0
        records = linkage_audit.three_records(nation.topology)
        assert records["agree"] and len(records["exchanges"]) == 19
        assert linkage_audit.verify_network_log(nation.topology)["ok"]


def test_direct_mode_on_postgresql(pg_database, pg_base_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A municipality in direct mode (論点2) keeps its linkage side in ``<its database>_linkage``."""
    import psycopg

    from kojinbango.common.linkage import linkage_database_url

    d = tmp_path / "pg-direct"
    topo = _deployment(pg_database, d)
    linkage_url = linkage_database_url(topo.database_url("m131016"))
    name = linkage_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_base_url, autocommit=True) as conn:  # the operator creates it
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        init_nation(d, 200, seed=9, direct=["131016"])
        with running(d) as nation:
            own = nation.runtimes["m131016"].services["intermediate"]
            assert own.db.engine.dialect.name == "postgresql" and own.db.engine.url.database == name
            _scenarios(nation, d)
            records = linkage_audit.three_records(nation.topology)
            assert records["agree"] and len(records["exchanges"]) == 3
    finally:
        with psycopg.connect(pg_base_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
