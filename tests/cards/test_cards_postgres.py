"""Flow 2 with every organisation (portal and bank included) on its own PostgreSQL database."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from kojinbango.domain.jst import today_jst
from kojinbango.holder import Client, HolderError, issue_card, open_bank_account, portal_login, suspend_card
from kojinbango.municipality.register.models import Resident
from kojinbango.nation import create_deployment, init_nation, intro, running

pytestmark = pytest.mark.postgres


def test_cards_on_postgresql(pg_database, tmp_path: Path) -> None:
    d = tmp_path / "pg"
    topo = create_deployment(d)
    for org in topo.organisations.values():
        org.database_url = pg_database(org.id)
    topo.save()
    init_nation(d, 120, seed=3)
    with running(d) as nation:
        assert {rt.db.engine.dialect.name for rt in nation.runtimes.values()} == {"postgresql"}
        assert {"portal", "bank"} <= set(nation.runtimes)
        intro(nation)
        client = Client(nation.topology, nation.urls)
        for org in ("m131016", "m131041"):
            with nation.runtimes[org].db.transaction() as s:
                r = s.scalars(
                    select(Resident)
                    .where(Resident.status == "active", Resident.birth_date < dt.date(1990, 1, 1))
                    .order_by(Resident.id)
                    .limit(1)
                ).one()
            card = tmp_path / f"{org}.json"
            issue_card(client, r.resident_code, "1234", "ABC123", card)
            assert portal_login(client, card, "1234")["logged_in"]
            assert open_bank_account(client, card, "ABC123")["opened"]
            reg = nation.register(org)
            reg.move_within(r.household_id, "1000005", "東京都千代田区丸の内一丁目9番1号", "", today_jst())
            reg.push()
            with pytest.raises(HolderError, match="revoked"):
                open_bank_account(client, card, "ABC123")
            suspend_card(client, card)
            with pytest.raises(HolderError) as exc:
                portal_login(client, card, "1234")
            assert exc.value.reason == "suspended"
        client.close()
