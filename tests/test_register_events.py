"""Register events reach J-LIS through the CS push, in order: 転居, 死亡, 氏名変更, 個人番号の変更."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from kojinbango.common.errors import BusinessError, Conflict, NotFound
from kojinbango.domain.jst import today_jst
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


# --- 国外転出, 国外からの転入, 旧氏名・旧住所 --------------------------------------------------


def test_move_abroad_revokes_the_card_through_the_real_push(nation: Nation, tmp_path: Path) -> None:
    """国外転出 removes the 住民票 (消除事由 国外転出); after the CS push J-LIS revokes both
    certificates and abolishes the card, so the portal refuses the 利用者証明用 certificate."""
    from kojinbango.card.reader import CardReader
    from kojinbango.holder import Client, HolderError, issue_card, portal_login
    from kojinbango.jlis.cards.models import Card, JpkiCertificate

    org, r = _adult_alone_or_head(nation)
    reg = nation.register(org)
    client = Client(nation.topology, nation.urls)
    try:
        card = tmp_path / "card.json"
        issue_card(client, r.resident_code, "1234", "ABC123", card)
        assert portal_login(client, card, "1234")["logged_in"]
        serial = CardReader(card).info()["card_serial"]
        with reg.db.transaction() as s:
            household = [
                m.id for m in s.scalars(select(Resident).where(Resident.household_id == r.household_id))
            ]
        gone = reg.move_abroad(r.household_id, dt.date(2026, 11, 20), "アメリカ合衆国")
        assert sorted(gone) == sorted(household)
        with reg.db.transaction() as s:
            me = s.get(Resident, r.id)
            assert me is not None and (me.status, me.removal_reason) == ("moved_out", "国外転出")
            ev = s.scalars(
                select(ResidentEvent)
                .where(ResidentEvent.resident_id == r.id)
                .order_by(ResidentEvent.id.desc())
            ).first()
            assert (
                ev is not None and ev.event_type == "国外転出" and ev.after["destination"] == "アメリカ合衆国"
            )
        assert portal_login(client, card, "1234")["logged_in"]  # nothing reaches J-LIS before the push
        assert reg.push() >= len(household)
        rec = _jlis(nation, r.resident_code)
        assert rec.status == "removed" and rec.removal_reason == "国外転出"
        with pytest.raises(HolderError) as refused:
            portal_login(client, card, "1234")
        assert refused.value.reason == "revoked"
        with nation.runtime("jlis").db.transaction() as s:
            c = s.get(Card, serial)
            assert c is not None and c.status == "abolished" and c.abolish_reason == "国外転出"
            kinds = s.execute(
                select(JpkiCertificate.kind, JpkiCertificate.status).where(
                    JpkiCertificate.card_serial == serial
                )
            ).all()
            assert len(kinds) == 2 and {st for _, st in kinds} == {"revoked"}
        with pytest.raises(NotFound):  # the household is dissolved: nobody left to move
            reg.move_abroad(r.household_id, dt.date(2026, 11, 21), "アメリカ合衆国")
    finally:
        client.close()


def _adult_alone_or_head(nation: Nation) -> tuple[str, Resident]:
    rt = nation.municipalities()[0]
    today = today_jst()
    with rt.db.transaction() as s:
        for r in s.scalars(
            select(Resident)
            .where(Resident.status == "active", Resident.relationship == "世帯主")
            .order_by(Resident.id)
        ):
            if r.birth_date <= today.replace(year=today.year - 20):
                return rt.org_id, r
    raise LookupError("no adult 世帯主")


def test_move_abroad_of_one_member_keeps_the_household(nation: Nation) -> None:
    org = nation.municipalities()[0].org_id
    reg = nation.register(org)
    with reg.db.transaction() as s:
        rows = list(s.scalars(select(Resident).where(Resident.status == "active").order_by(Resident.id)))
    by_h: dict[int, list[Resident]] = {}
    for m in rows:
        by_h.setdefault(m.household_id, []).append(m)
    members = next(ms for ms in by_h.values() if len(ms) >= 2)
    head = next(m for m in members if m.relationship == "世帯主")
    other = next(m for m in members if m.relationship != "世帯主")
    before = reg.pending_push()
    with pytest.raises(BusinessError, match="世帯主"):
        reg.move_abroad(head.household_id, dt.date(2026, 11, 20), "フランス", [head.id])
    with pytest.raises(BusinessError, match="country"):
        reg.move_abroad(head.household_id, dt.date(2026, 11, 20), " ", [other.id])
    assert reg.pending_push() == before  # refused events write nothing
    assert reg.move_abroad(head.household_id, dt.date(2026, 11, 20), "フランス", [other.id]) == [other.id]
    assert reg.pending_push() == before + 1
    with reg.db.transaction() as s:
        assert s.get(Resident, head.id).status == "active"  # type: ignore[union-attr]
        assert s.get(Resident, other.id).removal_reason == "国外転出"  # type: ignore[union-attr]


def test_move_in_from_abroad_gets_a_code_and_a_number(nation: Nation) -> None:
    org = nation.municipalities()[0].org_id
    reg = nation.register(org)
    person = PersonInput("スミス", "ジョン", "すみす", "じょん", dt.date(1990, 5, 6), 1, "世帯主")
    bad = PersonInput("スミス", "ジョン", "スミス", "ジョン", dt.date(1990, 5, 6), 1, "世帯主")
    before = reg.counts()
    with pytest.raises(BusinessError) as err:
        reg.move_in_from_abroad(bad, "12", "", "", dt.date(1980, 1, 1), "")
    assert "郵便番号" in str(err.value) and "住所" in str(err.value) and "生年月日" in str(err.value)
    assert reg.counts() == before
    rid = reg.move_in_from_abroad(
        person, "1000005", "東京都千代田区丸の内一丁目1番1号", "", dt.date(2026, 11, 2), "英国"
    )
    reg.push()
    with reg.db.transaction() as s:
        r = s.get(Resident, rid)
        assert r is not None and r.my_number and r.family_kana == "スミス" and r.relationship == "世帯主"
        assert r.previous_address == "英国" and r.resident_since == dt.date(2026, 11, 2)
        types = s.scalars(select(ResidentEvent.event_type).where(ResidentEvent.resident_id == rid)).all()
        assert list(types) == ["国外転入", "個人番号の職権記載"]
    assert _jlis(nation, r.resident_code).my_number == r.my_number


def test_past_names_and_addresses_are_kept_for_search(nation: Nation) -> None:
    from kojinbango.domain.text import name_key
    from kojinbango.municipality.register.models import PastKey

    org, r = _resident(nation, 5)
    reg = nation.register(org)
    reg.change_name(r.id, "旧姓試験", r.given_name, "キュウセイシケン", r.given_kana, dt.date(2026, 11, 3))
    reg.move_within(r.household_id, "1000005", "東京都千代田区丸の内三丁目3番3号", "", dt.date(2026, 11, 4))
    with reg.db.transaction() as s:
        keys = {(k.kind, k.value) for k in s.scalars(select(PastKey).where(PastKey.resident_id == r.id))}
        assert ("name", f"{r.family_name}\u3000{r.given_name}") in keys
        assert ("kana", f"{r.family_kana}\u3000{r.given_kana}") in keys
        assert ("address", r.address) in keys
        assert s.scalar(
            select(func.count())
            .select_from(PastKey)
            .where(PastKey.key == name_key(r.family_name + r.given_name))
        )


def test_event_dates_are_checked(nation: Nation) -> None:
    org, r = _resident(nation, 6)
    reg = nation.register(org)
    with pytest.raises(BusinessError, match="生年月日"):
        reg.record_death(r.id, r.birth_date - dt.timedelta(days=1))
    with pytest.raises(BusinessError, match="future"):
        reg.record_death(r.id, today_jst() + dt.timedelta(days=30))
    with pytest.raises(BusinessError, match="future"):
        reg.move_within(
            r.household_id, "1000005", "東京都千代田区丸の内一丁目1番1号", "", dt.date(2099, 1, 1)
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/register.db"
    return request.getfixturevalue("pg_database")("register")


def test_migration_0002_backfills_past_keys_from_history(database_url: str) -> None:
    """A register with 氏名変更 and 転居 already in its 異動履歴 finds them by the old name and
    address once migrated (the back-fill), and the schema then matches the models."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from sqlalchemy import insert

    from kojinbango.common.db import Database
    from kojinbango.domain.text import name_key
    from kojinbango.municipality.register.models import Base, Household, PastKey

    location = "kojinbango.municipality.register:migrations"
    db = Database(database_url)
    cfg = Config()
    cfg.set_main_option("script_location", location)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(
            insert(Household.__table__),  # type: ignore[arg-type]
            [
                {
                    "id": 1,
                    "household_number": "00000000001",
                    "postal_code": "1000005",
                    "address": "新",
                    "address_extra": "",
                    "status": "active",
                }
            ],
        )
        conn.execute(
            insert(Resident.__table__),  # type: ignore[arg-type]
            [
                {
                    "id": 1,
                    "atena_number": "00000000019",
                    "household_id": 1,
                    "relationship": "世帯主",
                    "resident_code": "12345678901",
                    "family_name": "新姓",
                    "given_name": "花子",
                    "family_kana": "シンセイ",
                    "given_kana": "ハナコ",
                    "birth_date": dt.date(1980, 4, 1),
                    "sex": 2,
                    "postal_code": "1000005",
                    "address": "東京都千代田区丸の内一丁目1番1号",
                    "address_extra": "",
                    "resident_since": dt.date(1980, 4, 1),
                    "address_since": dt.date(2020, 1, 1),
                    "previous_address": "",
                    "status": "active",
                    "name_key": "x",
                    "kana_key": "x",
                    "address_key": "x",
                    "updated_at": dt.datetime(2020, 1, 1),
                }
            ],
        )
        old = {
            "family_name": "旧姓",
            "given_name": "花子",
            "family_kana": "キュウセイ",
            "given_kana": "ハナコ",
            "address": "東京都千代田区一番町1番地",
        }
        renamed = {**old, "family_name": "新姓", "family_kana": "シンセイ"}
        moved = {**renamed, "address": "東京都千代田区丸の内一丁目1番1号"}
        conn.execute(
            insert(ResidentEvent.__table__),  # type: ignore[arg-type]
            [
                {
                    "resident_id": 1,
                    "event_type": "出生",
                    "event_date": dt.date(1980, 4, 1),
                    "processed_at": dt.datetime(2020, 1, 1),
                    "before": {},
                    "after": old,
                },
                {
                    "resident_id": 1,
                    "event_type": "氏名変更",
                    "event_date": dt.date(2019, 6, 1),
                    "processed_at": dt.datetime(2020, 1, 1),
                    "before": old,
                    "after": renamed,
                },
                {
                    "resident_id": 1,
                    "event_type": "転居",
                    "event_date": dt.date(2020, 1, 1),
                    "processed_at": dt.datetime(2020, 1, 1),
                    "before": renamed,
                    "after": moved,
                },
            ],
        )
    db.dispose()
    db = Database(database_url, location)
    try:
        with db.transaction() as s:
            keys = {(k.kind, k.key, k.until) for k in s.scalars(select(PastKey))}
        assert keys == {
            ("name", name_key("旧姓花子"), dt.date(2019, 6, 1)),
            ("kana", "キユウセイハナコ", dt.date(2019, 6, 1)),
            ("address", "東京都千代田区一番町1", dt.date(2020, 1, 1)),
        }
        with db.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    finally:
        db.dispose()


# --- the 届出 forms' field checks (pure) ---------------------------------------------------------

TODAY = dt.date(2026, 11, 26)
CTX = {
    "birth_date": dt.date(1980, 4, 1),
    "address": "東京都千代田区丸の内一丁目1番1号",
    "address_extra": "",
    "names": ("山田", "太郎", "ヤマダ", "タロウ"),
    "members": [1, 2],
    "lg_code": "131016",
}


def test_form_checks_say_what_is_wrong_per_field() -> None:
    from kojinbango.municipality.register.event_forms import check

    c = check(
        "birth",
        {
            "family_name": "山田",
            "given_name": " ",
            "family_kana": "yamada",
            "given_kana": "ﾀﾛｳ",
            "birth_date": "令和9年1月1日",
            "sex": "5",
            "relationship": "子供",
        },
        TODAY,
        CTX,
    )
    assert set(c.errors) == {"given_name", "family_kana", "birth_date", "sex", "relationship"}
    assert "未来" in c.errors["birth_date"] and "子" in c.errors["relationship"]
    assert c.values["given_kana"] == "タロウ"  # half-width kana accepted and stored as katakana
    ok = check(
        "birth",
        {
            "family_name": "山田",
            "given_name": "花",
            "family_kana": "やまだ",
            "given_kana": "はな",
            "birth_date": "R8.11.20",
            "sex": "2",
            "relationship": "子",
            "notified_on": "",
        },
        TODAY,
        CTX,
    )
    assert ok.ok and ok.values["birth_date"] == dt.date(2026, 11, 20) and ok.values["notified_on"] == TODAY
    assert ok.values["family_kana"] == "ヤマダ" and ok.values["sex"] == 2
    late = check("death", {"died_on": "2026-11-20", "notified_on": "2026-11-19"}, TODAY, CTX)
    assert "届出日" in late.errors["notified_on"]
    assert "1873" in check("move-in-abroad", {"birth_date": "1850-01-01"}, TODAY, CTX).errors["birth_date"]
    bad_era = check("death", {"died_on": "平成40年1月1日"}, TODAY, CTX)
    assert "元号の期間外" in bad_era.errors["died_on"]
    assert (
        "転居届"
        in check(
            "move-out",
            {"destination_lg_code": "131016", "destination_address": "x", "moved_on": "R8.12.1"},
            TODAY,
            CTX,
        ).errors["destination_lg_code"]
    )
    far = check(
        "move-out",
        {"destination_lg_code": "131041", "destination_address": "x", "moved_on": "R9.1.1"},
        TODAY,
        CTX,
    )
    assert "14日先" in far.errors["moved_on"]
    assert (
        "この世帯"
        in check(
            "abroad",
            {"members": ["1", "99"], "destination_country": "韓国", "moved_on": "R8.11.1"},
            TODAY,
            CTX,
        ).errors["members"]
    )
    same = check(
        "move", {"postal_code": "1000005", "address": CTX["address"], "moved_on": "R8.11.1"}, TODAY, CTX
    )
    assert "同じ" in same.errors["address"]


@given(st.dates(min_value=dt.date(1873, 1, 1), max_value=dt.date(2100, 12, 31)))
def test_death_date_is_accepted_exactly_between_birth_and_today(d: dt.date) -> None:
    from kojinbango.domain.wareki import to_wareki
    from kojinbango.municipality.register.event_forms import check

    for text in (to_wareki(d), d.isoformat(), f"{d.year}/{d.month}/{d.day}"):
        c = check("death", {"died_on": text, "notified_on": ""}, TODAY, CTX)
        if CTX["birth_date"] <= d <= TODAY:
            assert c.ok and c.values["died_on"] == d
        else:
            assert set(c.errors) == {"died_on"}


def test_a_birth_today_is_accepted_in_the_early_hours_of_japan_time(
    nation: Nation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """00:00–09:00 JST the UTC date is still yesterday: a baby born today (JST) is not 'future'."""
    from kojinbango.domain import clock

    monkeypatch.setattr(clock, "source", lambda: dt.datetime(2026, 11, 27, 15, 30, tzinfo=dt.UTC))
    org, r = _resident(nation)
    reg = nation.register(org)
    born = dt.date(2026, 11, 28)
    rid = reg.register_birth(r.household_id, PersonInput("山田", "陽葵", "ヤマダ", "ヒマリ", born, 2, "子"))
    with reg.db.transaction() as s:
        baby = s.get(Resident, rid)
        assert baby is not None and baby.birth_date == born
        # the register stamps its event with the same (moved) clock: stored naive UTC
        stamped = s.scalars(select(ResidentEvent.processed_at).where(ResidentEvent.resident_id == rid)).all()
        assert stamped and set(stamped) == {dt.datetime(2026, 11, 27, 15, 30)}
    with pytest.raises(BusinessError, match="future"):
        reg.register_birth(
            r.household_id, PersonInput("山田", "蓮", "ヤマダ", "レン", born + dt.timedelta(days=1), 1, "子")
        )
