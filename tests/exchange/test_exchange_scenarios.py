"""Information linkage end to end (seed 3-3): the three scenarios of issue 5 over the real services,
signed answers stored and verifiable, 符号 per agency, tenant isolation, the records of all three."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from exchange_helpers import A, B, args_of, ask, scenarios
from sqlalchemy import select, update

from kojinbango import linkage_audit
from kojinbango.common.db import Database
from kojinbango.common.errors import BusinessError, NotFound
from kojinbango.domain.jst import today_jst
from kojinbango.intermediate.models import FugoLink, ProvisionRecord
from kojinbango.linkage_setup import fiscal_year
from kojinbango.municipality.addressee.models import Addressee
from kojinbango.municipality.linkage.models import LinkageAnswer
from kojinbango.nation import Nation
from kojinbango.network.models import Exchange, LogEntry


@pytest.fixture(scope="module")
def answers(nation: Nation, nation_dir: Path) -> list[dict]:
    return [ask(nation, s["command"]) for s in scenarios(nation_dir)]


def test_child_allowance_office_gets_the_income_from_the_former_municipality(answers: list[dict]) -> None:
    first = answers[0]
    assert first["status"] == "answered", first["reason"]
    assert (first["querier"], first["provider"], first["affair"]) == ("131041", "131016", "child-allowance")
    assert first["signature_valid"] is True and first["held"] is True
    assert first["layout"] == "地方税関係情報/1"
    years = {a["fiscal_year"] for a in first["data"]["assessments"]}
    assert fiscal_year(today_jst()) in years
    assert first["as_of"] <= first["provided_at"]


def test_pension_agency_asks_a_municipality_for_local_tax(answers: list[dict]) -> None:
    second = answers[1]
    assert second["status"] == "answered", second["reason"]
    assert (second["querier"], second["provider"], second["info"]) == ("nenkin", "131016", "地方税関係情報")
    assert second["signature_valid"] is True and second["data"]["assessments"]


def test_a_query_no_row_allows_is_refused_and_recorded(nation: Nation, answers: list[dict]) -> None:
    third = answers[2]
    assert third["status"] == "refused"
    assert "does not allow 児童手当関係情報" in third["reason"]
    network = nation.runtime("network")
    with network.db.transaction() as s:
        ex = s.get(Exchange, third["exchange_id"])
        assert ex is not None and ex.status == "refused"
        leaf = s.get(LogEntry, ex.log_index)
        assert leaf is not None and '"outcome":"refused"' in (leaf.leaf or "")
    agency = nation.runtimes["nenkin"]
    with agency.db.transaction() as s:
        rec = s.scalar(select(ProvisionRecord).where(ProvisionRecord.exchange_id == third["exchange_id"]))
        assert rec is not None and rec.role == "querier" and rec.outcome == "refused"


def test_unknown_affair_and_self_query_are_refused(
    nation: Nation, nation_dir: Path, answers: list[dict]
) -> None:
    a = args_of(scenarios(nation_dir)[1]["command"])
    agency = nation.runtimes["nenkin"].services["agency"]
    no_row = agency.query(a["my-number"], "131016", "no-such-row", "地方税関係情報")
    assert no_row["status"] == "refused" and "no row" in no_row["reason"]
    wrong_querier = nation.runtimes[B].services["linkage"]
    first = args_of(scenarios(nation_dir)[0]["command"])
    out = wrong_querier.query(first["my-number"], "131016", "pension-exemption", "地方税関係情報")
    assert out["status"] == "refused" and "does not let a municipality" in out["reason"]


def test_bad_input_is_refused_clearly(nation: Nation, nation_dir: Path) -> None:
    linkage = nation.runtimes[B].services["linkage"]
    a = args_of(scenarios(nation_dir)[0]["command"])
    with pytest.raises(BusinessError, match="unknown information category"):
        linkage.query(a["my-number"], "131016", "child-allowance", "所得")
    with pytest.raises(BusinessError, match="no organisation"):
        linkage.query(a["my-number"], "999999", "child-allowance", "地方税関係情報")
    with pytest.raises(Exception, match="check digit|digits") as exc:
        linkage.query("123456789012", "131016", "child-allowance", "地方税関係情報")
    assert "123456789012" not in str(exc.value)


def test_answers_are_stored_and_can_be_verified_later(nation: Nation, answers: list[dict]) -> None:
    linkage = nation.runtimes[B].services["linkage"]
    ex_id = answers[0]["exchange_id"]
    assert linkage.verify_stored(ex_id)["signature_valid"] is True
    with linkage.db.transaction() as s:
        row = s.scalar(select(LinkageAnswer).where(LinkageAnswer.exchange_id == ex_id))
        assert row is not None and row.document is not None and row.signature_valid is True
        original = row.document
        forged = {**original, "payload": {**original["payload"], "data": {"assessments": []}}}
        s.execute(update(LinkageAnswer).where(LinkageAnswer.id == row.id).values(document=forged))
    try:
        assert linkage.verify_stored(ex_id)["signature_valid"] is False
    finally:
        with linkage.db.transaction() as s:
            s.execute(
                update(LinkageAnswer).where(LinkageAnswer.exchange_id == ex_id).values(document=original)
            )


def test_fugo_differ_per_holder_and_do_not_join_without_the_network(
    nation: Nation, nation_dir: Path, answers: list[dict]
) -> None:
    number = args_of(scenarios(nation_dir)[1]["command"])["my-number"]
    with nation.runtimes[A].db.transaction() as s:
        integrated = s.scalar(select(Addressee.integrated_number).where(Addressee.my_number == number))
    im = nation.runtime("intermediate")
    with im.db.transaction() as s:
        fugo_a = s.scalar(
            select(FugoLink.fugo).where(FugoLink.tenant == A, FugoLink.integrated_number == integrated)
        )
    with nation.runtimes["nenkin"].db.transaction() as s:
        fugo_n = list(s.scalars(select(FugoLink.fugo).where(FugoLink.tenant == "nenkin")))
    assert fugo_a and len(fugo_n) > 1
    assert fugo_a not in fugo_n
    core = nation.runtime("network").services["core"]
    person = core.person_of(fugo_a, A)
    assert core.cipher.make(person, "nenkin") in fugo_n  # the same person, a different 符号
    with pytest.raises(BusinessError, match="not issued to"):
        core.person_of(fugo_a, "nenkin")  # A's 符号 means nothing when another holder shows it


def test_tenants_are_isolated(nation: Nation) -> None:
    im = nation.runtime("intermediate").services["intermediate"]
    with nation.runtimes[A].db.transaction() as s:
        a_numbers = set(s.scalars(select(Addressee.integrated_number)))
    with nation.runtimes[B].db.transaction() as s:
        b_numbers = set(s.scalars(select(Addressee.integrated_number)))
    shared = sorted(a_numbers & b_numbers)
    assert shared, "both municipalities number their 統合宛名 from the same start"
    only_a = sorted(a_numbers - b_numbers)
    some = im.copy_of(A, shared[0], "住民票関係情報")
    other = im.copy_of(B, shared[0], "住民票関係情報")
    assert some["data"] != other["data"]  # one number, two tenants, two different people
    if only_a:
        with pytest.raises(NotFound):
            im.copy_of(B, only_a[0], "住民票関係情報")
    # a municipality's signed request can only ever name itself: the route takes the tenant from the signer
    client = nation.runtimes[B].client
    got = client.call(
        "intermediate",
        "POST",
        "/api/tenant/copies/get",
        {"integrated_number": shared[0], "category": "住民票関係情報"},
    )
    assert got["data"] == other["data"]
    # a query delivered for tenant B with A's 符号 finds no one
    with im.db.transaction() as s:
        fugo_a = s.scalar(select(FugoLink.fugo).where(FugoLink.tenant == A).limit(1))
    doc = im.provide({"exchange_id": "EXTEST-0001", "tenant": B, "fugo": fugo_a, "querier": "nenkin",
                      "affair": "pension-exemption", "info": "住民票関係情報", "requested_at": "2026-01-01T00:00:00Z"})  # fmt: skip
    assert doc["payload"]["held"] is False and doc["payload"]["data"] is None


def test_querier_provider_and_network_records_agree(nation: Nation, answers: list[dict]) -> None:
    result = linkage_audit.three_records(nation.topology)
    mine = {e["exchange_id"]: e for e in result["exchanges"]}
    for answer in answers:
        entry = mine[answer["exchange_id"]]
        assert entry["agree"], entry
    answered = mine[answers[0]["exchange_id"]]["records"]
    assert answered["provider"] is not None and answered["provider"]["outcome"] == "provided"
    assert (
        answered["network"]["provided_at"] == answered["querier"]["provided_at"] == answers[0]["provided_at"]
    )
    refused = mine[answers[2]["exchange_id"]]["records"]
    assert refused["provider"] is None  # the provider never heard of a refused query
    assert result["agree"]


def test_copies_are_checked_against_their_layout(nation: Nation) -> None:
    im = nation.runtime("intermediate").services["intermediate"]
    with pytest.raises(BusinessError, match="地方税関係情報/1"):
        im.register_copies(
            A,
            "地方税関係情報",
            [{"integrated_number": "00000000001", "data": {"assessments": [{"fiscal_year": 2025}]}}],
        )
    with pytest.raises(BusinessError, match="地方税関係情報/1"):
        im.register_copies(
            A,
            "地方税関係情報",
            [{"integrated_number": "00000000001", "data": {"assessments": [], "my_number": "x"}}],
        )
    with pytest.raises(BusinessError, match="unknown information category"):
        im.register_copies(A, "所得情報", [])


def test_retention_is_a_setting(nation: Nation) -> None:
    im = nation.runtime("intermediate").services["intermediate"]
    records = im.records(A)
    assert records
    kept = dt.datetime.fromisoformat(records[0]["retain_until"].rstrip("Z")) - dt.datetime.fromisoformat(
        records[0]["requested_at"].rstrip("Z")
    )
    assert 365 * 7 <= kept.days <= 365 * 7 + 2
    assert im.purge(dt.datetime(2000, 1, 1)) == 0
    db = Database(nation.topology.database_url("network"))
    db.dispose()
