"""Direct mode (論点2, ``kojinbango.direct``): municipality A answers the network itself, from its
正本 at query time, with no intermediate server — the seed's scenarios work the same, the answers
are always current, and 符号, queries and records live in A's own service."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from exchange_helpers import A, B, args_of, ask, scenarios
from sqlalchemy import func, select, update

from kojinbango import demo, linkage_audit, linkage_setup
from kojinbango.agency.models import InsuredPerson, PensionAward
from kojinbango.common.errors import BusinessError
from kojinbango.common.linkage import LinkageSettings, receiver_database_url
from kojinbango.common.topology import Topology
from kojinbango.domain.jst import today_jst
from kojinbango.intermediate.models import Copy, FugoLink, ProvisionRecord
from kojinbango.intermediate.notices import IntermediateNotice
from kojinbango.linkage_setup import fiscal_year
from kojinbango.municipality.addressee.models import Addressee, RecordLink
from kojinbango.municipality.business.models import TaxAssessment
from kojinbango.municipality.outreach.models import NoticeDelivery, PortalUser
from kojinbango.municipality.outreach.service import Conditions
from kojinbango.municipality.register.models import Resident
from kojinbango.nation import Nation, running, set_direct
from kojinbango.network.notices import NetworkNotice


@pytest.fixture(scope="module")
def direct_dir(small_nation_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("direct") / "nation"
    shutil.copytree(small_nation_dir, d)
    set_direct(Topology.load(d / "topology.json"), ["131016"])  # before any 符号 is obtained
    with running(d) as nation:
        demo.move(nation, 5, today_jst())
        linkage_setup.prepare(nation, 5)
    return d


@pytest.fixture(scope="module")
def nation(direct_dir: Path) -> Iterator[Nation]:
    with running(direct_dir) as n:
        yield n


@pytest.fixture(scope="module")
def answers(nation: Nation, direct_dir: Path) -> list[dict]:
    return [ask(nation, s["command"]) for s in scenarios(direct_dir)]


def test_the_municipality_is_its_own_receiver(nation: Nation) -> None:
    settings = LinkageSettings.of(nation.topology)
    assert settings.receiver(A) == A and settings.receives_itself(A)
    assert settings.receiver(B) == "intermediate" and not settings.receives_itself(B)
    assert nation.runtimes[A].services["linkage"].direct is True
    assert receiver_database_url(nation.topology, A).endswith(f"{A}-linkage.db")
    assert (Path(nation.topology.root) / f"{A}-linkage.db").exists()


def test_the_three_scenarios_work_with_the_provider_in_direct_mode(answers: list[dict]) -> None:
    first, second, third = answers
    assert first["status"] == "answered", first["reason"]
    assert (first["querier"], first["provider"], first["affair"]) == ("131041", "131016", "child-allowance")
    assert first["signature_valid"] is True and first["held"] is True
    assert fiscal_year(today_jst()) in {a["fiscal_year"] for a in first["data"]["assessments"]}
    assert second["status"] == "answered" and second["signature_valid"] is True
    assert (second["querier"], second["provider"]) == ("nenkin", "131016")
    assert third["status"] == "refused" and "does not allow 児童手当関係情報" in third["reason"]


def test_answers_come_from_the_ledger_at_query_time(nation: Nation, direct_dir: Path) -> None:
    """No 副本 to refresh: a change in the 課税台帳 is in the very next answer, and each answer is
    as of the moment it was made (with an intermediate server it waits for the next refresh)."""
    a = args_of(scenarios(direct_dir)[1]["command"])
    rt = nation.runtimes[A]
    with rt.db.transaction() as s:
        record = s.scalar(
            select(RecordLink.record_id)
            .join(Addressee, Addressee.id == RecordLink.addressee_id)
            .where(Addressee.my_number == a["my-number"], RecordLink.system == "tax")
        )
        assert record is not None
        year = s.scalar(select(func.max(TaxAssessment.fiscal_year)).where(TaxAssessment.record_id == record))
        s.execute(
            update(TaxAssessment)
            .where(TaxAssessment.record_id == record, TaxAssessment.fiscal_year == year)
            .values(income=7_654_000)
        )
    before = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    out = ask(nation, scenarios(direct_dir)[1]["command"])
    assert out["status"] == "answered" and out["signature_valid"] is True
    mine = next(x for x in out["data"]["assessments"] if x["fiscal_year"] == year)
    assert mine["total_income"] == 7_654_000
    assert out["as_of"] >= before and out["as_of"] <= out["provided_at"]


def test_no_copy_is_registered_anywhere(nation: Nation) -> None:
    linkage = nation.runtimes[A].services["linkage"]
    assert all(r.get("direct") is True for r in linkage.refresh().values())
    with nation.runtime("intermediate").db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Copy).where(Copy.tenant == A)) == 0
        assert s.scalar(select(func.count()).select_from(FugoLink).where(FugoLink.tenant == A)) == 0
    own = nation.runtimes[A].services["intermediate"]
    with own.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Copy)) == 0
        assert s.scalar(select(func.count()).select_from(FugoLink).where(FugoLink.tenant == A)) > 0
    with pytest.raises(BusinessError, match="direct mode"):
        own.register_copies(A, "地方税関係情報", [])
    # the linkage staff's 登録状況 says so: each category answered from the 正本, no 副本 counted
    status = linkage.status()
    assert status["direct"] is True and status["receiver"] == A and status["intermediate_error"] is None
    assert {c["refresh"] for c in status["categories"]} == {"direct"}
    assert all(c["registered"] is None and c["at_intermediate"] is None for c in status["categories"])
    assert status["fugo"]["delivered"] > 0


def test_records_agree_and_live_with_the_municipality(nation: Nation, answers: list[dict]) -> None:
    report = linkage_audit.three_records(nation.topology)
    assert report["agree"] is True
    provided = {answers[0]["exchange_id"], answers[1]["exchange_id"]}
    own = nation.runtimes[A].services["intermediate"]
    with own.db.transaction() as s:
        roles = {(r.exchange_id, r.role) for r in s.scalars(select(ProvisionRecord))}
    assert {(e, "provider") for e in provided} <= roles


def test_no_personal_number_in_the_network_or_the_linkage_database(nation: Nation, direct_dir: Path) -> None:
    numbers = {args_of(s["command"])["my-number"].encode() for s in scenarios(direct_dir)}
    for name in ("network.db", f"{A}-linkage.db"):
        for path in direct_dir.glob(name + "*"):
            content = path.read_bytes()
            assert not any(n in content for n in numbers), path.name


def test_the_direct_municipality_queries_as_well(nation: Nation) -> None:
    """A's own staff ask through A's own service (its tenant interface, signed by itself)."""
    with nation.runtimes["nenkin"].db.transaction() as s:
        pensioners = set(s.scalars(select(InsuredPerson.my_number).join(PensionAward)))
    with nation.runtimes[A].db.transaction() as s:
        number = s.scalar(
            select(Addressee.my_number).where(Addressee.my_number.in_(pensioners)).order_by(Addressee.id)
        )
    assert number is not None
    out = nation.runtimes[A].services["linkage"].query(number, "nenkin", "nhi-pension", "年金給付関係情報")
    assert out["status"] == "answered", out["reason"]
    assert out["signature_valid"] is True and out["provider"] == "nenkin"


def test_a_notice_reaches_the_network_from_the_municipality_itself(nation: Nation) -> None:
    """3-1 お知らせ: stored and forwarded by A's own service, not the intermediate server."""
    rt = nation.runtimes[A]
    with rt.db.transaction() as s:
        person = s.scalar(select(Resident).where(Resident.status == "active").order_by(Resident.id))
        assert person is not None
        if s.get(PortalUser, person.id) is None:  # reads the portal inbox: gets お知らせ there
            s.add(
                PortalUser(
                    resident_id=person.id,
                    first_seen=dt.datetime(2026, 1, 1),
                    last_seen=dt.datetime(2026, 1, 1),
                )
            )
        rt.services["addressee"].sync_residents(s)
        aid = s.scalar(select(Addressee.id).where(Addressee.resident_id == person.id))
        rid, address = person.id, person.address
    rt.services["linkage"].ensure_fugo([aid])
    outreach = rt.services["outreach"]
    conditions = Conditions(district=address, unit="person")
    notice_id = outreach.draft(conditions, "直接方式のお知らせ", "市町村から直接。", "test")
    assert outreach.send(notice_id, len(outreach.targets(conditions)), "test")["inbox"] >= 1
    with rt.db.transaction() as s:
        delivery = s.scalar(
            select(NoticeDelivery).where(
                NoticeDelivery.notice_id == notice_id, NoticeDelivery.resident_id == rid
            )
        )
    assert delivery is not None
    ref = f"D{delivery.id}"
    deadline = dt.datetime.now() + dt.timedelta(seconds=60)
    held = None
    while held is None and dt.datetime.now() < deadline:
        with nation.runtime("network").db.transaction() as s:
            held = s.scalar(select(NetworkNotice).where(NetworkNotice.sender_ref == ref))
    assert held is not None and held.sender == A
    with nation.runtime("intermediate").db.transaction() as s:
        assert s.scalar(select(IntermediateNotice).where(IntermediateNotice.ref == ref)) is None


def test_init_refuses_an_unknown_municipality(tmp_path: Path) -> None:
    from kojinbango.nation import init_nation

    with pytest.raises(ValueError, match="--direct 011002: no municipality"):
        init_nation(tmp_path / "n", 10, seed=1, direct=["011002"])
    assert not (tmp_path / "n").exists()  # refused before anything is written
    with pytest.raises(ValueError, match="check digit"):
        init_nation(tmp_path / "n", 10, seed=1, direct=["131017"])


def test_a_database_url_on_a_server_gets_its_own_linkage_database() -> None:
    from kojinbango.common.linkage import linkage_database_url

    assert linkage_database_url("sqlite:////x/m131016.db") == "sqlite:////x/m131016-linkage.db"
    assert (
        linkage_database_url("postgresql://postgres@127.0.0.1:5432/m131016?sslmode=disable")
        == "postgresql://postgres@127.0.0.1:5432/m131016_linkage?sslmode=disable"
    )


def test_reading_some_persons_gives_what_the_whole_extraction_gives_them(nation: Nation) -> None:
    """The live read (the extractors' ``only``) matches the full refresh's output person for person,
    household members included, for every category."""
    from kojinbango.municipality.linkage.copies import EXTRACTORS

    rt = nation.runtimes[A]
    with rt.db.transaction() as s:
        for category, extract in EXTRACTORS.items():
            full = extract(s, None)
            assert full, category
            some = sorted(full)[:: max(1, len(full) // 7)][:8] + [10**9]  # and one nobody is
            if category == "住民票関係情報":  # and some who live with others
                some += [aid for aid, d in full.items() if d["household"]["members"]][:4]
                assert len(some) > 9
            assert extract(s, some) == {aid: full[aid] for aid in some if aid in full}, category
        aid, number = s.execute(
            select(Addressee.id, Addressee.integrated_number).order_by(Addressee.id)
        ).first()
        expected = EXTRACTORS["住民票関係情報"](s, [aid])[aid]
    copy = rt.services["intermediate"].copy_of(A, number, "住民票関係情報")
    assert copy["data"] == expected and copy["layout_version"] == 1
