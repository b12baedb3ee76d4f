"""Fixtures for the card tests: a running copy of the small nation and a holder's client."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from kojinbango.domain.jst import today_jst
from kojinbango.holder import Client
from kojinbango.municipality.register.models import Resident
from kojinbango.nation import Nation, running


@pytest.fixture(scope="module")
def card_nation(small_nation_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nation]:
    d = tmp_path_factory.mktemp("cards") / "nation"
    shutil.copytree(small_nation_dir, d)
    with running(d) as nation:
        yield nation


@pytest.fixture(scope="module")
def client(card_nation: Nation) -> Iterator[Client]:
    c = Client(card_nation.topology, card_nation.urls)
    yield c
    c.close()


class Residents:
    """Hands out distinct residents of a municipality, by age."""

    def __init__(self, nation: Nation):
        self.nation = nation
        self.used: set[int] = set()  # households: a move or a stale notice touches the whole household

    def take(self, org_id: str, min_age: int = 20, max_age: int = 80) -> Resident:
        today = today_jst()
        latest = today.replace(year=today.year - min_age)
        earliest = today.replace(year=today.year - max_age)
        with self.nation.runtimes[org_id].db.transaction() as s:
            for r in s.scalars(
                select(Resident)
                .where(Resident.status == "active", Resident.birth_date.between(earliest, latest))
                .order_by(Resident.id)
            ):
                if r.household_id not in self.used:
                    self.used.add(r.household_id)
                    return r
        raise LookupError(f"no more residents of age {min_age}-{max_age} in {org_id}")


@pytest.fixture(scope="module")
def residents(card_nation: Nation) -> Residents:
    return Residents(card_nation)
