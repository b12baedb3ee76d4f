"""`kojinbango demo`: init + intro + births + one move between municipalities, then a consistency check."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from sqlalchemy import func, select

from kojinbango.domain.identifiers import is_valid_my_number
from kojinbango.jlis.models import IdentityRecord, IssuedNumber
from kojinbango.jlis.service import JlisService
from kojinbango.municipality.register.models import Household, Resident
from kojinbango.municipality.register.service import PersonInput, full_address
from kojinbango.nation import Nation
from kojinbango.synth import generate_birth, generate_household
from kojinbango.synth.model import HouseholdSpec, PersonSpec

BIRTHS_PER_MUNICIPALITY = 2


def _spec_of(nation: Nation, org_id: str, household_id: int) -> HouseholdSpec:
    reg = nation.register(org_id)
    with reg.db.transaction() as s:
        h = s.get(Household, household_id)
        assert h is not None
        members = list(
            s.scalars(
                select(Resident)
                .where(Resident.household_id == h.id, Resident.status == "active")
                .order_by(Resident.id)
            )
        )
        return HouseholdSpec(
            postal_code=h.postal_code,
            address=h.address,
            address_extra=h.address_extra,
            members=tuple(
                PersonSpec(
                    m.family_name,
                    m.given_name,
                    m.family_kana,
                    m.given_kana,
                    m.birth_date,
                    m.sex,
                    m.relationship,
                    m.resident_since,
                )
                for m in members
            ),
        )


def births(nation: Nation, seed: int, today: dt.date) -> list[dict[str, Any]]:
    """Flow 1-2: a few births registered in households with a mother of child-bearing age."""
    done = []
    for i, rt in enumerate(nation.municipalities()):
        reg = nation.register(rt.org_id)
        with reg.db.transaction() as s:
            candidates = list(
                s.scalars(
                    select(Resident.household_id)
                    .where(
                        Resident.status == "active",
                        Resident.relationship == "妻",
                        Resident.birth_date.between(
                            dt.date(today.year - 42, 1, 1), dt.date(today.year - 22, 1, 1)
                        ),
                    )
                    .order_by(Resident.household_id)
                    .limit(50)
                )
            )
        rng = random.Random(seed * 31 + i)
        for hid in rng.sample(candidates, min(BIRTHS_PER_MUNICIPALITY, len(candidates))):
            spec = _spec_of(nation, rt.org_id, hid)
            baby = generate_birth(spec, rng.randrange(1 << 30), today)
            rid = reg.register_birth(
                hid,
                PersonInput(
                    baby.family_name,
                    baby.given_name,
                    baby.family_kana,
                    baby.given_kana,
                    baby.birth_date,
                    baby.sex,
                    "子",
                ),
                today,
            )
            done.append({"municipality": rt.org_id, "resident_id": rid})
    return done


def move(nation: Nation, seed: int, today: dt.date) -> dict[str, Any]:
    """One household moves from the first municipality to the second (転出 → 転入 → 転入通知)."""
    src, dst = nation.municipalities()[0], nation.municipalities()[1]
    src_reg, dst_reg = nation.register(src.org_id), nation.register(dst.org_id)
    with src_reg.db.transaction() as s:
        hid = s.scalar(
            select(Resident.household_id)
            .where(Resident.status == "active")
            .group_by(Resident.household_id)
            .having(func.count() >= 3)
            .order_by(Resident.household_id)
            .limit(1)
        )
    if hid is None:
        raise RuntimeError("no household of 3 or more to move")
    assert dst_reg.lg_code
    target = generate_household(dst_reg.lg_code, seed + 7, today)
    certificate = src_reg.move_out(hid, dst_reg.lg_code, target.address, today)
    new_hid = dst_reg.move_in(certificate, target.postal_code, target.address, target.address_extra, today)
    return {
        "from": src.org_id,
        "to": dst.org_id,
        "persons": len(certificate["payload"]["persons"]),
        "household_id": new_hid,
    }


def check_consistency(nation: Nation) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Compare every municipality's register with J-LIS's 本人確認情報; returns (municipalities, errors)."""
    jlis = nation.runtime("jlis").services["jlis"]
    assert isinstance(jlis, JlisService)
    errors: list[str] = []
    munis = []
    all_numbers: dict[str, str] = {}
    with jlis.db.transaction() as s:
        records = {r.resident_code: r for r in s.scalars(select(IdentityRecord))}
        issued = s.scalar(select(func.count()).select_from(IssuedNumber)) or 0
    notices = 0
    for rt in nation.municipalities():
        reg = nation.register(rt.org_id)
        counts = reg.counts()
        notices += counts["notices"]
        with reg.db.transaction() as s:
            residents = list(s.scalars(select(Resident).where(Resident.status == "active")))
        for r in residents:
            where = f"{rt.org_id} resident #{r.id}"
            if r.my_number is None:
                errors.append(f"{where}: no number")
                continue
            if not is_valid_my_number(r.my_number):
                errors.append(f"{where}: number fails its check digit")
            if r.my_number in all_numbers:
                errors.append(f"{where}: number also held by {all_numbers[r.my_number]}")
            all_numbers[r.my_number] = where
            rec = records.get(r.resident_code)
            if rec is None:
                errors.append(f"{where}: missing at J-LIS")
                continue
            expected = (
                r.my_number,
                r.family_name,
                r.given_name,
                r.birth_date,
                r.sex,
                full_address(r.address, r.address_extra),
                reg.lg_code,
                "current",
            )
            actual = (
                rec.my_number,
                rec.family_name,
                rec.given_name,
                rec.birth_date,
                rec.sex,
                rec.address,
                rec.municipality,
                rec.status,
            )
            for label, e, a in zip(
                ("number", "氏", "名", "生年月日", "性別", "住所", "municipality", "status"),
                expected,
                actual,
                strict=True,
            ):
                if e != a:
                    errors.append(f"{where}: J-LIS {label} disagrees with the register")
        munis.append(
            {
                "code": reg.lg_code,
                "name": reg.name,
                "residents": counts["residents"],
                "numbered": counts["numbered"],
            }
        )
    return munis, {"errors": errors, "numbers_issued": issued, "notices_written": notices}


DEMO_STAFF_FILE = "secrets/demo-staff.json"


def demo_staff(nation: Nation) -> list[dict[str, Any]]:
    """Staff accounts for the demo (住民記録, 税務, 福祉, 管理者 in each municipality), made once per
    data directory; their passwords and TOTP secrets are kept in a 0600 file beside the other
    secrets so the demo can print them again."""
    import json
    import os

    from kojinbango.municipality.staff.client import DEMO_STAFF, create_staff

    path = nation.topology.root / DEMO_STAFF_FILE
    if path.exists():
        saved: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
        return saved
    accounts = []
    for rt in nation.municipalities():
        for login, name, roles in DEMO_STAFF:
            made = create_staff(rt.services["staff"], login, name, roles)  # type: ignore[arg-type]
            accounts.append({"municipality": rt.org_id, **made})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(accounts, fh, ensure_ascii=False, indent=1)
    return accounts
