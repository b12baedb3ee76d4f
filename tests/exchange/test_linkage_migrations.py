"""The information-linkage systems' Alembic migrations create exactly the schema their models describe."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from kojinbango.common.db import Database

SYSTEMS = [
    ("kojinbango.network:migrations", "kojinbango.network.models", "alembic_version"),
    ("kojinbango.intermediate:migrations", "kojinbango.intermediate.models", "alembic_version_intermediate"),
    ("kojinbango.agency:migrations", "kojinbango.agency.models", "alembic_version"),
    (
        "kojinbango.municipality.linkage:migrations",
        "kojinbango.municipality.linkage.models",
        "alembic_version_linkage",
    ),
    (
        "kojinbango.portal:records_migrations",
        "kojinbango.portal.records_models",
        "alembic_version_portal_records",
    ),
]


@pytest.mark.parametrize(("location", "models", "version_table"), SYSTEMS)
def test_migrations_match_models(tmp_path: Path, location: str, models: str, version_table: str) -> None:
    metadata = importlib.import_module(models).Base.metadata
    db = Database(f"sqlite:///{tmp_path}/x.db", extra_migrations=[(location, version_table)])
    with db.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"version_table": version_table}), metadata
        )
    db.dispose()
    assert diff == []
