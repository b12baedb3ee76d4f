"""The card systems' Alembic migrations create exactly the schema their models describe."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from kojinbango.common.db import Database

SYSTEMS = [
    ("kojinbango.jlis.cards:migrations", "alembic_version_cards", "kojinbango.jlis.cards.models"),
    (
        "kojinbango.municipality.cards:migrations",
        "alembic_version_cards",
        "kojinbango.municipality.cards.models",
    ),
    ("kojinbango.portal:migrations", "alembic_version", "kojinbango.portal.models"),
    ("kojinbango.relying_party:migrations", "alembic_version", "kojinbango.relying_party.models"),
]


@pytest.mark.parametrize(("location", "version_table", "models"), SYSTEMS)
def test_card_migrations_match_models(tmp_path: Path, location: str, version_table: str, models: str) -> None:
    metadata = importlib.import_module(models).Base.metadata
    db = Database(f"sqlite:///{tmp_path}/x.db", extra_migrations=[(location, version_table)])
    with db.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"version_table": version_table}), metadata
        )
    db.dispose()
    assert diff == []
