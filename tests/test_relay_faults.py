"""An unreachable J-LIS leaves changes pending at the prefecture, in order, and nothing is lost."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from kojinbango.common.transport import SignedClient, Unreachable
from kojinbango.jlis.models import IdentityRecord
from kojinbango.municipality.register.models import CsOutbox, Resident
from kojinbango.nation import running
from kojinbango.prefecture.service import PrefectureService


def test_jlis_down_then_back(small_nation_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "nation"
    shutil.copytree(small_nation_dir, d)
    with running(d) as nation:
        pref = nation.runtime("prefecture").services["prefecture"]
        assert isinstance(pref, PrefectureService) and isinstance(pref.client, SignedClient)
        reg = nation.register(nation.municipalities()[0].org_id)
        with reg.db.transaction() as s:
            r = s.scalars(select(Resident).where(Resident.status == "active").limit(1)).one()
        real = pref.client.directory["jlis"]
        pref.client.directory["jlis"] = "http://127.0.0.1:9"  # nothing listens there
        reg.move_within(
            r.household_id, "1000005", "東京都千代田区丸の内三丁目3番3号", "", dt.date(2026, 11, 2)
        )
        reg.move_within(
            r.household_id, "1000005", "東京都千代田区丸の内四丁目4番4号", "", dt.date(2026, 11, 3)
        )
        reg.push()  # the prefecture accepts; forwarding fails and stays pending
        assert reg.pending_push() == 0
        assert pref.pending() >= 2
        with nation.runtime("jlis").db.transaction() as s:
            assert s.get(IdentityRecord, r.resident_code).address != "東京都千代田区丸の内四丁目4番4号"  # type: ignore[union-attr]
        pref.client.directory["jlis"] = real
        assert pref.forward() >= 2 and pref.pending() == 0
        with nation.runtime("jlis").db.transaction() as s:
            assert s.get(IdentityRecord, r.resident_code).address == "東京都千代田区丸の内四丁目4番4号"  # type: ignore[union-attr]


def test_prefecture_down_keeps_the_outbox(small_nation_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "nation"
    shutil.copytree(small_nation_dir, d)
    with running(d) as nation:
        reg = nation.register(nation.municipalities()[0].org_id)
        with reg.db.transaction() as s:
            r = s.scalars(select(Resident).where(Resident.status == "active").limit(1)).one()
        real = reg.client.directory[reg.prefecture_id]
        reg.client.directory[reg.prefecture_id] = "http://127.0.0.1:9"
        reg.record_death(r.id, dt.date(2026, 11, 20))
        with pytest.raises(Unreachable):
            reg.push()
        with reg.db.transaction() as s:
            assert s.scalar(select(CsOutbox.sent_at).order_by(CsOutbox.seq.desc()).limit(1)) is None
        reg.client.directory[reg.prefecture_id] = real
        assert reg.push() == 1 and reg.pending_push() == 0
        with nation.runtime("jlis").db.transaction() as s:
            assert s.get(IdentityRecord, r.resident_code).status == "removed"  # type: ignore[union-attr]
