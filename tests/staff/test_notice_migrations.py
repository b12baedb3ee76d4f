"""The お知らせ and counter-claim schemas: each Alembic history creates exactly what its models say,
on SQLite and (when a server answers) PostgreSQL."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from kojinbango.common.db import Database

SYSTEMS = [
    (
        "kojinbango.network:notices_migrations",
        "kojinbango.network.notices",
        "alembic_version_network_notices",
    ),
    (
        "kojinbango.intermediate:notices_migrations",
        "kojinbango.intermediate.notices",
        "alembic_version_intermediate_notices",
    ),
    (
        "kojinbango.municipality.business:migrations",
        "kojinbango.municipality.business.models",
        "alembic_version",
    ),
]


def _diff(url: str, location: str, models: str, version_table: str) -> list[object]:
    metadata = importlib.import_module(models).Base.metadata
    db = Database(url, extra_migrations=[(location, version_table)])
    try:
        with db.engine.connect() as conn:
            return list(
                compare_metadata(
                    MigrationContext.configure(conn, opts={"version_table": version_table}), metadata
                )
            )
    finally:
        db.dispose()


@pytest.mark.parametrize(("location", "models", "version_table"), SYSTEMS)
def test_migrations_match_models(tmp_path: Path, location: str, models: str, version_table: str) -> None:
    assert _diff(f"sqlite:///{tmp_path}/x.db", location, models, version_table) == []


def test_outreach_forwarding_columns_on_both_databases(
    tmp_path: Path, pg_database: Callable[[str], str]
) -> None:
    """The push-notice tables (0001 + 0002: the outbox columns) as the models describe them."""
    outreach = ("kojinbango.municipality.outreach:migrations", "kojinbango.municipality.outreach.models",
                "alembic_version_outreach")  # fmt: skip
    assert _diff(f"sqlite:///{tmp_path}/o.db", *outreach) == []
    for location, models, version_table in [*SYSTEMS, outreach]:
        assert _diff(pg_database("notices"), location, models, version_table) == []
