"""Each organisation's Alembic migrations create exactly the schema its models describe."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from kojinbango.common.db import Database

ORGS = [
    ("kojinbango.jlis:migrations", "kojinbango.jlis.models"),
    ("kojinbango.prefecture:migrations", "kojinbango.prefecture.models"),
    ("kojinbango.municipality.register:migrations", "kojinbango.municipality.register.models"),
    ("kojinbango.municipality.business:migrations", "kojinbango.municipality.business.models"),
    ("kojinbango.municipality.addressee:migrations", "kojinbango.municipality.addressee.models"),
]


@pytest.mark.parametrize(("location", "models"), ORGS)
def test_migrations_match_models(tmp_path: Path, location: str, models: str) -> None:
    import importlib

    metadata = importlib.import_module(models).Base.metadata
    db = Database(f"sqlite:///{tmp_path}/x.db", location)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_migrating_twice_is_harmless(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    Database(url, ORGS[0][0]).dispose()
    Database(url, ORGS[0][0]).dispose()
