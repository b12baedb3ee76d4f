"""Synthetic business data for a running nation: the register's people (with what its history
knows) → dirty tax and welfare records (``kojinbango.synth.business``), as CSV files with the truth
in a separate file, and optionally loaded with their business data (income, 児童手当, accounts, forms).

This is a test-data tool standing outside the organisations: it knows the truth (who each record is).
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from kojinbango.common.db import Database
from kojinbango.domain.jst import today_jst
from kojinbango.municipality.business.models import BankAccount, ChildAllowance, FormNumber, TaxAssessment
from kojinbango.municipality.business.service import CSV_HEADER, BusinessService, RecordInput
from kojinbango.municipality.register.models import Resident, ResidentEvent
from kojinbango.synth.business import BusinessData, SourcePerson

TRUTH_HEADER = ("system", "legacy_id", "person_key", "expected", "dirt")


def register_people(db: Database) -> tuple[list[SourcePerson], dict[str, str]]:
    """Everyone the register holds (any status), keyed by 住民票コード; and their 個人番号."""
    formers: dict[int, list[str]] = defaultdict(list)
    names: dict[int, list[tuple[str, str]]] = defaultdict(list)
    with db.transaction() as s:
        for rid, before in s.execute(select(ResidentEvent.resident_id, ResidentEvent.before)):
            if before and before.get("address"):
                formers[rid].append(str(before["address"]))
            if before and before.get("family_name"):
                names[rid].append((str(before["family_name"]), str(before.get("family_kana") or "")))
        people, numbers = [], {}
        for r in s.scalars(select(Resident).order_by(Resident.id)):
            past = tuple(
                dict.fromkeys(a for a in formers[r.id] + [r.previous_address] if a and a != r.address)
            )
            past_names = tuple(dict.fromkeys(n for n in names[r.id] if n[0] != r.family_name))
            people.append(
                SourcePerson(
                    r.resident_code,
                    r.family_name,
                    r.given_name,
                    r.family_kana,
                    r.given_kana,
                    r.birth_date,
                    r.sex,
                    r.address,
                    r.address_extra,
                    str(r.household_id),
                    r.relationship,
                    r.status,
                    past,
                    past_names,
                )
            )
            if r.my_number:
                numbers[r.resident_code] = r.my_number
    return people, numbers


def as_outsiders(people: Sequence[SourcePerson]) -> list[SourcePerson]:
    """Another municipality's active residents, as non-residents (住登外者) of this one."""
    return [
        SourcePerson(
            p.key,
            p.family_name,
            p.given_name,
            p.family_kana,
            p.given_kana,
            p.birth_date,
            p.sex,
            p.address,
            p.address_extra,
            "x" + p.household,
            p.relationship,
            "non_resident",
        )  # fmt: skip
        for p in people
        if p.status == "active"
    ]


def write_csvs(data: BusinessData, out: Path) -> dict[str, str]:
    """``<system>.csv`` per business system (the link-import format) and ``truth.csv`` beside them."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    by_system: dict[str, list[Any]] = defaultdict(list)
    for r in data.rows:
        by_system[r.system].append(r)
    for system, rows in by_system.items():
        path = out / f"{system}.csv"
        with open(path, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(CSV_HEADER)
            for r in rows:
                w.writerow([r.legacy_id, r.name, r.kana, r.birth_date, r.sex, r.address])
        files[system] = str(path)
    path = out / "truth.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(TRUTH_HEADER)
        for t in data.truth:
            w.writerow([t.system, t.legacy_id, t.person_key, t.expected, " ".join(t.dirt)])
    files["truth"] = str(path)
    return files


def load(service: BusinessService, data: BusinessData, numbers: Mapping[str, str]) -> dict[str, int]:
    """Load the records and their business data (課税台帳, 児童手当, 口座, forms with numbers)."""
    from kojinbango.domain.wareki import parse_date

    by_system: dict[str, list[RecordInput]] = defaultdict(list)
    for r in data.rows:
        by_system[r.system].append(
            RecordInput(r.legacy_id, r.name, r.kana, r.birth_date, parse_date(r.birth_date), r.sex, r.address)
        )
    for system, records in by_system.items():
        service.upsert(system, records, source="synthetic")
    ids = {s: service.record_ids(s, [r.legacy_id for r in recs]) for s, recs in by_system.items()}
    counts = {f"{s}_records": len(v) for s, v in by_system.items()}
    with service.db.transaction() as s:
        existing = set(s.scalars(select(TaxAssessment.record_id).distinct()))
        tax = [
            {"record_id": ids["tax"][lid], "fiscal_year": y, "income": inc, "tax_amount": t}
            for lid, y, inc, t in data.tax
            if ids["tax"][lid] not in existing
        ]
        if tax:
            s.execute(insert(TaxAssessment), tax)
        if not s.scalar(select(ChildAllowance.id).limit(1)):
            rows = [
                {
                    "recipient_id": ids["welfare"][a],
                    "child_id": ids["welfare"][c],
                    "started_on": d,
                    "monthly_amount": m,
                }
                for a, c, d, m in data.allowances
            ]
            if rows:
                s.execute(insert(ChildAllowance), rows)
            acct = [
                {"record_id": ids["welfare"][lid], "bank_code": b, "branch_code": br, "account_type": t,
                 "account_number": n, "holder_kana": h}
                for lid, b, br, t, n, h in data.accounts
            ]  # fmt: skip
            if acct:
                s.execute(insert(BankAccount), acct)
            forms = [
                {"record_id": ids[sys][lid], "my_number": numbers[key], "form": f, "received_on": d}
                for sys, lid, key, f, d in data.form_numbers
                if key in numbers
            ]
            if forms:
                s.execute(insert(FormNumber), forms)
            counts.update(allowances=len(rows), accounts=len(acct), form_numbers=len(forms))
        counts["tax_assessments"] = len(tax)
    return counts


def read_truth(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return {(r["system"], r["legacy_id"]): r for r in csv.DictReader(fh)}


def today() -> dt.date:
    return today_jst()
