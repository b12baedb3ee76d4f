"""Register events reach J-LIS through the CS push, in order: 転居, 死亡, 氏名変更, 個人番号の変更."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kojinbango.common.errors import BusinessError, Conflict
from kojinbango.jlis.models import IdentityChange, IdentityRecord, IssuedNumber
from kojinbango.municipality.register.models import Notice, Resident, ResidentEvent
from kojinbango.municipality.register.service import PersonInput
from kojinbango.nation import Nation, running


@pytest.fixture()
def nation(small_nation_dir: Path, tmp_path: Path):
    d = tmp_path / "nation"
    shutil.copytree(small_nation_dir, d)
    with running(d) as n:
        yield n


def _resident(nation: Nation, n: int = 0) -> tuple[str, Resident]:
    rt = nation.municipalities()[0]
    with rt.db.transaction() as s:
        r = s.scalars(
            select(Resident).where(Resident.status == "active").order_by(Resident.id).offset(n).limit(1)
        ).one()
    return rt.org_id, r


def _jlis(nation: Nation, code: str) -> IdentityRecord:
    with nation.runtime("jlis").db.transaction() as s:
        rec = s.get(IdentityRecord, code)
        assert rec is not None
        return rec


def test_move_within_reaches_jlis(nation: Nation) -> None:
    org, r = _resident(nation)
    reg = nation.register(org)
    reg.move_within(r.household_id, "1000005", "東京都千代田区丸の内一丁目9番1号", "", dt.date(2026, 11, 1))
    reg.push()
    rec = _jlis(nation, r.resident_code)
    assert rec.address == "東京都千代田区丸の内一丁目9番1号" and rec.last_event == "転居"
    with reg.db.transaction() as s:
        assert s.get(Resident, r.id).previous_address == r.address  # type: ignore[union-attr]


def test_death_removes_the_person_at_jlis(nation: Nation) -> None:
    org, r = _resident(nation, 1)
    reg = nation.register(org)
    reg.record_death(r.id, dt.date(2026, 11, 20))
    reg.push()
    rec = _jlis(nation, r.resident_code)
    assert rec.status == "removed" and rec.removal_reason == "死亡"
    with pytest.raises(Conflict):
        reg.record_death(r.id, dt.date(2026, 11, 21))


def test_name_change_keeps_the_number(nation: Nation) -> None:
    org, r = _resident(nation, 2)
    reg = nation.register(org)
    reg.change_name(r.id, "渡邉", r.given_name, "わたなべ", r.given_kana, dt.date(2026, 11, 3))
    reg.push()
    rec = _jlis(nation, r.resident_code)
    assert (rec.family_name, rec.family_kana, rec.my_number) == ("渡邉", "ワタナベ", r.my_number)


def test_changes_arrive_in_order(nation: Nation) -> None:
    org, r = _resident(nation, 3)
    reg = nation.register(org)
    reg.move_within(r.household_id, "1000005", "東京都千代田区丸の内一丁目1番1号", "", dt.date(2026, 10, 1))
    reg.move_within(r.household_id, "1000005", "東京都千代田区丸の内二丁目2番2号", "", dt.date(2026, 10, 2))
    reg.push()
    with nation.runtime("jlis").db.transaction() as s:
        seqs = list(
            s.scalars(
                select(IdentityChange.seq)
                .where(IdentityChange.resident_code == r.resident_code)
                .order_by(IdentityChange.id)
            )
        )
    assert seqs == sorted(seqs)
    assert _jlis(nation, r.resident_code).address == "東京都千代田区丸の内二丁目2番2号"


def test_number_change_is_new_and_gets_a_notice(nation: Nation) -> None:
    org, r = _resident(nation, 4)
    reg = nation.register(org)
    with pytest.raises(BusinessError):
        reg.change_number(r.id, " ")
    reg.change_number(r.id, "通知書の誤送付により漏えいのおそれ")
    reg.push()
    with reg.db.transaction() as s:
        new = s.get(Resident, r.id)
        assert new is not None and new.my_number != r.my_number
        assert s.scalar(select(func.count()).select_from(Notice).where(Notice.resident_id == r.id)) == 2
        assert (
            "個人番号の変更請求"
            in s.scalars(select(ResidentEvent.event_type).where(ResidentEvent.resident_id == r.id)).all()
        )
    with nation.runtime("jlis").db.transaction() as s:
        versions = s.execute(
            select(IssuedNumber.version, IssuedNumber.my_number)
            .where(IssuedNumber.resident_code == r.resident_code)
            .order_by(IssuedNumber.version)
        ).all()
    assert (
        [v for v, _ in versions] == [0, 1]
        and versions[0][1] == r.my_number
        and versions[1][1] == new.my_number
    )
    assert _jlis(nation, r.resident_code).my_number == new.my_number


def test_bad_birth_input_is_refused_and_nothing_written(nation: Nation) -> None:
    org, r = _resident(nation)
    reg = nation.register(org)
    before = reg.counts()
    bad = PersonInput("", "太郎", "タロウ", "タロウ", dt.date(2099, 1, 1), 5, "孫")
    with pytest.raises(BusinessError) as err:
        reg.register_birth(r.household_id, bad)
    msg = str(err.value)
    assert "氏 and 名" in msg and "future" in msg and "性別" in msg and "孫" in msg
    assert reg.counts() == before
