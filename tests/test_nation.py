"""The miniature nation end to end: flows 1-1 and 1-2, a move, and the consistency of 住基ネット."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kojinbango import demo
from kojinbango.domain.identifiers import is_valid_my_number
from kojinbango.domain.jst import today_jst
from kojinbango.jlis.models import IdentityRecord, IssuedNumber
from kojinbango.municipality.register.models import (
    CodeStock,
    Notice,
    NoticePrint,
    Resident,
    ResidentEvent,
)
from kojinbango.nation import running


@pytest.fixture()
def nation_dir(small_nation_dir: Path, tmp_path: Path) -> Path:
    d = tmp_path / "nation"
    shutil.copytree(small_nation_dir, d)
    return d


def test_intro_numbers_everyone_and_jlis_agrees(small_nation_dir: Path) -> None:
    with running(small_nation_dir) as nation:
        munis, totals = demo.check_consistency(nation)
        assert totals["errors"] == []
        assert sum(m["residents"] for m in munis) == 400
        assert all(m["numbered"] == m["residents"] for m in munis)
        assert totals["numbers_issued"] == 400
        assert totals["notices_written"] == 400
        for rt in nation.municipalities():
            printer = nation.printer(rt.org_id)
            counts = printer.counts()
            assert counts["printed"] == counts["notices"] and counts["reprints"] == 0
            assert list((printer.directory).glob("bulk-*.pdf"))


def test_intro_twice_changes_nothing(nation_dir: Path) -> None:
    from kojinbango.nation import intro

    with running(nation_dir) as nation:
        before = _snapshot(nation)
        result = intro(nation)
        per_org = result["municipalities"]
        assert set(per_org) == {"m131016", "m131041"}
        assert all(
            v["designated"] == 0 and v["pages_printed"] == 0 and v["pushed"] == 0 for v in per_org.values()
        )
        assert _snapshot(nation) == before


def _snapshot(nation) -> dict:
    out = {}
    for rt in nation.municipalities():
        with rt.db.transaction() as s:
            out[rt.org_id] = sorted(s.execute(select(Resident.resident_code, Resident.my_number)).all())
            out[rt.org_id + ":notices"] = s.scalar(select(func.count()).select_from(Notice))
    return out


def test_birth_flow_1_2(nation_dir: Path) -> None:
    today = today_jst()
    with running(nation_dir) as nation:
        born = demo.births(nation, 3, today)
        assert len(born) == 4
        for b in born:
            reg = nation.register(b["municipality"])
            reg.push()
            with reg.db.transaction() as s:
                r = s.get(Resident, b["resident_id"])
                assert r is not None and r.birth_date == today and is_valid_my_number(r.my_number or "")
                assert (
                    s.scalar(select(CodeStock.used).where(CodeStock.resident_code == r.resident_code)) is True
                )
                events = [
                    e.event_type
                    for e in s.scalars(select(ResidentEvent).where(ResidentEvent.resident_id == r.id))
                ]
                assert events == ["出生", "個人番号の職権記載"]
                assert (
                    s.scalar(select(func.count()).select_from(Notice).where(Notice.resident_id == r.id)) == 1
                )
        _, totals = demo.check_consistency(nation)
        assert totals["errors"] == []


def test_move_between_municipalities(nation_dir: Path) -> None:
    today = today_jst()
    with running(nation_dir) as nation:
        moved = demo.move(nation, 5, today)
        src, dst = nation.register(moved["from"]), nation.register(moved["to"])
        src.push()
        dst.push()
        with dst.db.transaction() as s:
            arrived = list(s.scalars(select(Resident).where(Resident.household_id == moved["household_id"])))
        assert len(arrived) == moved["persons"] >= 3
        with src.db.transaction() as s:
            for r in arrived:
                old = s.scalar(select(Resident).where(Resident.resident_code == r.resident_code))
                assert old is not None and old.status == "moved_out"
                assert old.my_number == r.my_number  # the number travels with the person
                kinds = list(
                    s.scalars(select(ResidentEvent.event_type).where(ResidentEvent.resident_id == old.id))
                )
                assert kinds[-2:] == ["国内転出", "転入通知受理"]
        jlis = nation.runtime("jlis")
        with jlis.db.transaction() as s:
            for r in arrived:
                rec = s.get(IdentityRecord, r.resident_code)
                assert rec is not None and rec.municipality == dst.lg_code and rec.status == "current"
                assert rec.address.startswith(r.address)
            assert s.scalar(select(func.count()).select_from(IssuedNumber)) == 400  # no new numbers
        _, totals = demo.check_consistency(nation)
        assert totals["errors"] == []


def test_transfer_certificate_must_be_genuine(nation_dir: Path) -> None:
    from kojinbango.common.errors import BusinessError

    today = today_jst()
    with running(nation_dir) as nation:
        a, b = (nation.register(rt.org_id) for rt in nation.municipalities())
        with a.db.transaction() as s:
            hid = s.scalar(select(Resident.household_id).where(Resident.status == "active").limit(1))
        cert = a.move_out(hid, b.lg_code, "東京都新宿区西新宿二丁目8番1号", today)
        forged = {
            **cert,
            "payload": {**cert["payload"], "destination_address": "東京都新宿区歌舞伎町一丁目1番1号"},
        }
        with pytest.raises(BusinessError, match="not genuine"):
            b.move_in(forged, "1600023", "東京都新宿区西新宿二丁目8番1号", "", today)
        other = _other_household(a, hid)
        to_self = a.move_out(other, a.lg_code, "東京都千代田区丸の内一丁目1番1号", today)
        with pytest.raises(BusinessError, match="another destination"):
            b.move_in(to_self, "1000005", "東京都千代田区丸の内一丁目1番1号", "", today)


def _other_household(reg, not_this: int) -> int:
    with reg.db.transaction() as s:
        hid = s.scalar(
            select(Resident.household_id)
            .where(Resident.status == "active", Resident.household_id != not_this)
            .limit(1)
        )
        assert hid is not None
        return hid


def test_reprint_on_demand_is_marked(nation_dir: Path) -> None:
    with running(nation_dir) as nation:
        rt = nation.municipalities()[0]
        printer = nation.printer(rt.org_id)
        with rt.db.transaction() as s:
            rid = s.scalar(select(Resident.id).where(Resident.status == "active").limit(1))
        path = printer.print_for_resident(rid)
        assert path.exists() and path.read_bytes().startswith(b"%PDF")
        with rt.db.transaction() as s:
            prints = list(
                s.scalars(
                    select(NoticePrint).join(Notice).where(Notice.resident_id == rid).order_by(NoticePrint.id)
                )
            )
        assert [p.reprint for p in prints] == [False, True]


def test_a_notice_printed_in_the_early_hours_of_japan_time_bears_that_day(
    nation_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 通知日 on a notice is the day in Japan: printed at 00:30 JST it is already the next day."""
    import datetime as dt

    from kojinbango.domain import clock
    from kojinbango.municipality.register import notices

    monkeypatch.setattr(clock, "source", lambda: dt.datetime(2026, 11, 27, 15, 30, tzinfo=dt.UTC))
    printed: list = []
    monkeypatch.setattr(notices, "render_notices", lambda data, path: printed.extend(data))
    with running(nation_dir) as nation:
        rt = nation.municipalities()[0]
        with rt.db.transaction() as s:
            rid = s.scalar(select(Resident.id).where(Resident.status == "active").limit(1))
        nation.printer(rt.org_id).print_for_resident(rid)
    assert [d.issued_on for d in printed] == [dt.date(2026, 11, 28)]


def test_an_older_deployment_gets_the_organisations_it_lacks(nation_dir: Path) -> None:
    """A deployment from before the cards and the linkage: the portal, the bank, the network, the
    intermediate server and the agency are added, each with its certificate and its own SQLite
    file, the network with its 符号 key's file; those it has are left as they were."""
    from kojinbango.common.topology import Topology
    from kojinbango.nation import add_card_organisations, add_linkage_organisations

    added = ("portal", "bank", "network", "intermediate", "nenkin")
    topo = Topology.load(nation_dir / "topology.json")
    kept = {o.id: o.base_url for o in topo.organisations.values() if o.id not in added}
    for org_id in added:
        del topo.organisations[org_id]
        (nation_dir / "pki" / f"{org_id}.pem").unlink()
    topo.save()
    add_linkage_organisations(add_card_organisations(Topology.load(nation_dir / "topology.json")))
    again = Topology.load(nation_dir / "topology.json")  # saved
    for org_id in added:
        org = again.org(org_id)
        assert (nation_dir / org.certificate).exists() and org.database_url == f"sqlite:///{org_id}.db"
        assert org.secrets == ({"fugo_key": "secrets/network/fugo.key"} if org_id == "network" else {})
    assert {o.id: o.base_url for o in again.organisations.values() if o.id not in added} == kept
    saved = (nation_dir / "topology.json").read_text()
    add_linkage_organisations(add_card_organisations(again))  # a second time: nothing to add
    assert (nation_dir / "topology.json").read_text() == saved
