"""Step 3-0 in a running nation: business records linked to the right person, or sent to review.

The register gets history first (転居, 氏名変更), twins and a same-name-same-birthday pair at one
address; then dirty tax and welfare records are generated, loaded and linked, and every automatic
link is checked against the truth the generator kept apart.
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update

from kojinbango.common.errors import BusinessError, Conflict
from kojinbango.domain.jst import today_jst
from kojinbango.municipality.addressee.models import Addressee, LinkDecision, RecordLink
from kojinbango.municipality.business import synthetic
from kojinbango.municipality.business.models import BankAccount, BusinessRecord, FormNumber
from kojinbango.municipality.business.service import RecordInput
from kojinbango.municipality.register.models import Household, Resident
from kojinbango.municipality.register.service import PersonInput
from kojinbango.municipality.staff.client import create_staff, log_in
from kojinbango.nation import running
from kojinbango.synth import identity_groups  # noqa: F401  (documents where the pairs come from)
from kojinbango.synth.business import generate_business_data

MUNI = "m131016"
TODAY = today_jst()


def _prepare(nation: Any) -> dict[str, Any]:
    reg = nation.register(MUNI)
    planted: dict[str, Any] = {}
    with reg.db.transaction() as s:
        households = list(
            s.scalars(select(Household).where(Household.status == "active").order_by(Household.id))
        )
        residents = list(s.scalars(select(Resident).where(Resident.status == "active").order_by(Resident.id)))
    # 転居 of a few households: their old addresses become history
    for h in households[1:6]:
        reg.move_within(h.id, h.postal_code, h.address.replace("番地", "番地の") + "9", "", TODAY)
    # 氏名変更 (婚姻): the old name becomes history
    women = [r for r in residents if r.sex == 2 and r.relationship == "世帯主"][:3]
    for r in women:
        reg.change_name(r.id, "新姓", r.given_name, "シンセイ", r.given_kana, TODAY)
    # twins born into one household
    h0 = households[10]
    twins = [
        reg.register_birth(
            h0.id, PersonInput("双葉", "翔太", "フタバ", "ショウタ", dt.date(2020, 5, 5), 1, "子")
        ),
        reg.register_birth(
            h0.id, PersonInput("双葉", "翔平", "フタバ", "ショウヘイ", dt.date(2020, 5, 5), 1, "子")
        ),
    ]
    # a same-name-same-birthday pair at one address: a newcomer household moved next door
    with reg.db.transaction() as s:
        first = s.get(Resident, residents[20].id)
        assert first is not None
        head = s.scalar(select(Resident).where(Resident.household_id == households[30].id).limit(1))
        assert head is not None
        s.execute(
            update(Resident)
            .where(Resident.id == head.id)
            .values(
                family_name=first.family_name, given_name=first.given_name, family_kana=first.family_kana,
                given_kana=first.given_kana, birth_date=first.birth_date, sex=first.sex,
            )
        )  # fmt: skip
        namesakes = (first.id, head.id)
        first_household = s.get(Household, first.household_id)
        assert first_household is not None
        address = (first_household.postal_code, first_household.address)
    reg.move_within(households[30].id, address[0], address[1], "別棟202", TODAY)
    planted.update(twins=twins, namesakes=namesakes)
    return planted


@pytest.fixture(scope="module")
def nation_dir(small_nation_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("linkage") / "nation"
    shutil.copytree(small_nation_dir, d)
    return d


@pytest.fixture(scope="module")
def linked(nation_dir: Path) -> dict[str, Any]:
    with running(nation_dir) as nation:
        planted = _prepare(nation)
        rt = nation.runtimes[MUNI]
        business, addressee = rt.services["business"], rt.services["addressee"]
        people, numbers = synthetic.register_people(business.db)
        other = nation.runtimes["m131041"]
        outsiders_src, other_numbers = synthetic.register_people(other.db)
        numbers.update(other_numbers)
        data = generate_business_data(people, synthetic.as_outsiders(outsiders_src), 11, TODAY)
        synthetic.load(business, data, numbers)
        # records of the twins and of both namesakes, written plainly
        with business.db.transaction() as s:
            rows = {
                r.id: r
                for r in s.scalars(
                    select(Resident).where(Resident.id.in_([*planted["twins"], *planted["namesakes"]]))
                )
            }
        extra = []
        truth = {(t.system, t.legacy_id): t.person_key for t in data.truth}
        for i, rid in enumerate([*planted["twins"], *planted["namesakes"]]):
            r = rows[rid]
            lid = f"P{i:03d}"
            extra.append(
                RecordInput(
                    lid,
                    f"{r.family_name} {r.given_name}",
                    r.family_kana + r.given_kana,
                    r.birth_date.isoformat(),
                    r.birth_date,
                    r.sex,
                    r.address,
                )
            )
            truth[("welfare", lid)] = r.resident_code
        business.upsert("welfare", extra, source="test")
        results = {system: addressee.run(system) for system in ("tax", "welfare")}
    return {"dir": nation_dir, "truth": truth, "results": results, "planted": planted, "data": data}


def _links(nation_dir: Path) -> list[tuple[str, str, str, str | None]]:
    with running(nation_dir) as nation:
        db = nation.runtimes[MUNI].db
        with db.transaction() as s:
            return list(
                s.execute(
                    select(
                        BusinessRecord.system,
                        BusinessRecord.legacy_id,
                        RecordLink.status,
                        Addressee.resident_code,
                    )
                    .join(RecordLink, RecordLink.record_id == BusinessRecord.id)
                    .outerjoin(Addressee, Addressee.id == RecordLink.addressee_id)
                ).all()
            )


def test_no_wrong_automatic_link_and_high_recall(linked: dict[str, Any]) -> None:
    truth = linked["truth"]
    rows = _links(linked["dir"])
    assert len(rows) == len(truth)  # every record has an outcome: none silently dropped
    wrong = [
        (s, lid)
        for s, lid, st, code in rows
        if st in ("linked", "non_resident_linked") and code != truth[(s, lid)]
    ]
    assert wrong == []
    in_register = [
        (s, lid) for s, lid, _, _ in rows if truth[(s, lid)] and not truth[(s, lid)].startswith("x")
    ]
    linked_ok = sum(1 for s, lid, st, code in rows if st == "linked" and code == truth[(s, lid)])
    assert linked_ok / len(in_register) >= 0.9
    review = sum(1 for r in rows if r[2] == "review")
    assert review / len(rows) <= 0.1
    assert sum(r["processed"] for r in linked["results"].values()) == len(rows)


def test_twins_linked_each_to_themselves_namesakes_to_review(linked: dict[str, Any]) -> None:
    status = {lid: (st, code) for s, lid, st, code in _links(linked["dir"]) if lid.startswith("P")}
    truth = linked["truth"]
    assert status["P000"] == ("linked", truth[("welfare", "P000")])
    assert status["P001"] == ("linked", truth[("welfare", "P001")])
    assert status["P002"][0] == "review" and status["P003"][0] == "review"


def test_incremental_run_links_only_new_records(linked: dict[str, Any]) -> None:
    with running(linked["dir"]) as nation:
        rt = nation.runtimes[MUNI]
        again = rt.services["addressee"].run("tax")
        assert again["processed"] == 0
        with rt.db.transaction() as s:
            r = s.scalar(
                select(Resident).where(Resident.status == "active").order_by(Resident.id.desc()).limit(1)
            )
            assert r is not None
            rec = RecordInput(
                "NEW1",
                f"{r.family_name}{r.given_name}",
                "",
                r.birth_date.isoformat(),
                r.birth_date,
                r.sex,
                r.address,
            )
        rt.services["business"].upsert("tax", [rec])
        after = rt.services["addressee"].run("tax")
        assert after["processed"] == 1 and after["linked"] == 1


def test_staff_decisions_are_recorded_and_undo_works(linked: dict[str, Any]) -> None:
    with running(linked["dir"]) as nation:
        rt = nation.runtimes[MUNI]
        svc = rt.services["addressee"]
        with rt.db.transaction() as s:
            item = s.scalar(
                select(RecordLink).where(RecordLink.status == "review", RecordLink.system == "welfare")
            )
            done = s.scalar(select(RecordLink).where(RecordLink.status == "linked"))
            assert item is not None and done is not None
            rid, cand = item.record_id, item.candidates[0]["addressee_id"]
            linked_id = done.record_id
        with pytest.raises(BusinessError, match="why"):
            svc.link(rid, cand, "田中", "   ")
        svc.contact_resident(rid, "田中", "電話で確認する")
        svc.link(rid, cand, "田中", "本人に電話で確認した")
        with pytest.raises(Conflict):
            svc.link(rid, cand, "田中", "again")
        svc.undo(rid, "鈴木", "確認の記録が別人のものだった")
        svc.undo(linked_id, "鈴木", "総点検で不一致")
        with rt.db.transaction() as s:
            actions = [
                (d.action, d.actor, d.reason)
                for d in s.scalars(
                    select(LinkDecision).where(LinkDecision.record_id == rid).order_by(LinkDecision.id)
                )
            ]
            assert [a for a, _, _ in actions][-3:] == ["contact_resident", "link", "undo"]
            assert actions[-1][1:] == ("鈴木", "確認の記録が別人のものだった")
            row = s.get(RecordLink, rid)
            assert row is not None and row.status == "review" and row.addressee_id is None
        # an undone automatic link is not made again by a recheck
        svc.run("tax", recheck=True)
        with rt.db.transaction() as s:
            row = s.get(RecordLink, linked_id)
            assert row is not None and row.status == "review"


def test_review_screens(linked: dict[str, Any]) -> None:
    with running(linked["dir"]) as nation:
        rt = nation.runtimes[MUNI]
        client = TestClient(rt.app)
        account = create_staff(rt.services["staff"], "review-1", "確認 担当", ["welfare"])
        log_in(client, account, "紐付け確認（事務処理）")
        page = client.get("/staff/links/?status=review")
        assert page.status_code == 200 and "要確認" in page.text
        with rt.db.transaction() as s:
            item = s.scalar(
                select(RecordLink).where(RecordLink.status == "review").order_by(RecordLink.record_id)
            )
            assert item is not None
            rid = item.record_id
            cand = item.candidates[0]["addressee_id"] if item.candidates else None
        detail = client.get(f"/staff/links/{rid}")
        assert detail.status_code == 200 and "判断の記録" in detail.text
        assert "differ" in detail.text or "near" in detail.text  # differences are highlighted
        assert 'name="actor"' not in detail.text and "確認 担当（review-1）" in detail.text
        bad = client.post(f"/staff/links/{rid}/contact", data={"reason": " "})
        assert bad.status_code == 422 and "理由" in bad.text
        ok = client.post(
            f"/staff/links/{rid}/contact",
            # a name typed into the form is not what is recorded: the logged-in account is
            data={"actor": "佐藤", "reason": "郵送で照会"},
            follow_redirects=False,
        )
        assert ok.status_code == 303
        if cand is not None:
            r = client.post(
                f"/staff/links/{rid}/reject",
                data={"addressee_id": cand, "reason": "生年月日が違う"},
                follow_redirects=False,
            )
            assert r.status_code == 303
        text = client.get(f"/staff/links/{rid}").text
        assert "郵送で照会" in text and "review-1" in text and "佐藤" not in text
        with rt.db.transaction() as s:
            staff_rows = [
                (d.action, d.actor)
                for d in s.scalars(
                    select(LinkDecision)
                    .where(LinkDecision.record_id == rid, LinkDecision.actor != "matcher")
                    .order_by(LinkDecision.id)
                )
            ]
        mine = [action for action, actor in staff_rows if actor == "review-1"]
        assert mine == ["contact_resident"] + (["not_this_person"] if cand is not None else [])
        assert "佐藤" not in {actor for _, actor in staff_rows}
        # 住民記録 staff do not open the business systems' review queue
        other = TestClient(rt.app)
        log_in(other, create_staff(rt.services["staff"], "juki-links", "住民記録 担当", ["resident_records"]))
        assert other.get("/staff/links/").status_code == 403


def test_audit_finds_planted_wrong_links(linked: dict[str, Any]) -> None:
    with running(linked["dir"]) as nation:
        rt = nation.runtimes[MUNI]
        svc = rt.services["addressee"]
        assert svc.audit()["counts"].get("disagrees", 0) == 0  # automatic links all agree
        with rt.db.transaction() as s:
            links = []  # four records of four different people (a person may have two records)
            for link in s.scalars(
                select(RecordLink)
                .where(RecordLink.status == "linked", RecordLink.system == "tax")
                .order_by(RecordLink.record_id)
            ):
                if all(link.addressee_id != x.addressee_id for x in links):
                    links.append(link)
                if len(links) == 4:
                    break
            a, b, c, d = links
            # plant: a's record now points at b's person (a wrong link written straight into the database)
            s.execute(
                update(RecordLink)
                .where(RecordLink.record_id == a.record_id)
                .values(addressee_id=b.addressee_id)
            )
            recs = {x.record_id: s.get(BusinessRecord, x.record_id) for x in links}
            number_b = s.scalar(select(Addressee.my_number).where(Addressee.id == b.addressee_id))
            number_d = s.scalar(select(Addressee.my_number).where(Addressee.id == d.addressee_id))
            assert number_b and number_d
            # only the forms planted here on b, c and d (c's own number on an earlier form would
            # make b's beside it legitimate)
            s.execute(
                delete(FormNumber).where(FormNumber.record_id.in_([b.record_id, c.record_id, d.record_id]))
            )
            # b's number on c's form (a family member's number); two numbers on d's record
            s.add(FormNumber(record_id=b.record_id, my_number=number_b, form="申告書", received_on=TODAY))
            s.add(FormNumber(record_id=c.record_id, my_number=number_b, form="申告書", received_on=TODAY))
            s.add(FormNumber(record_id=d.record_id, my_number=number_d, form="申告書", received_on=TODAY))
            s.add(FormNumber(record_id=d.record_id, my_number=number_b, form="申告書", received_on=TODAY))
            for x in (c, d):  # one account on two people
                s.add(
                    BankAccount(
                        record_id=x.record_id, bank_code="0001", branch_code="001", account_type=1,
                        account_number="1234567", holder_kana="ｶﾞｸｼｭｳ",
                    )
                )  # fmt: skip
        report = svc.audit()
        kinds = {(f["kind"], f.get("legacy_id")) for f in report["findings"]}
        lid = {k: v.legacy_id for k, v in recs.items() if v is not None}
        assert ("disagrees", lid[a.record_id]) in kinds
        assert ("form_number_not_linked_person", lid[c.record_id]) in kinds
        assert ("several_numbers_on_record", lid[d.record_id]) in kinds
        assert report["counts"]["number_on_different_people"] >= 1
        assert report["counts"]["account_on_different_people"] == 1
        assert number_b not in str(report)  # numbers only masked


def test_export_statuses(linked: dict[str, Any]) -> None:
    with running(linked["dir"]) as nation:
        svc = nation.runtimes[MUNI].services["addressee"]
        rows, pending = svc.export_rows("tax")
    assert pending == 0
    assert {st for _, st, _ in rows} <= {"linked", "review", "unmatched", "non_resident_linked"}
    for _, st, number in rows:
        assert (number != "") == (st in ("linked", "non_resident_linked"))


def test_truth_file_kept_apart(linked: dict[str, Any], tmp_path: Path) -> None:
    files = synthetic.write_csvs(linked["data"], tmp_path)
    with open(files["tax"], encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert header == ["legacy_id", "name", "kana", "birth_date", "sex", "address"]
    with open(files["truth"], encoding="utf-8") as fh:
        assert next(csv.reader(fh))[:3] == ["system", "legacy_id", "person_key"]
