"""Getting a nation ready for information linkage (seed 3-3), for the demo, the tests and the bench.

Like ``municipality.business.synthetic`` this is a test-data tool standing outside the organisations:
it gives each municipality synthetic tax and welfare records (linked to 統合宛名 as in 3-0), makes
sure a family that moved from the first municipality to the second has its 課税台帳 and 児童手当 at
the first, lets 日本年金機構 know some pensioners, and then has every organisation obtain its 符号
and register its 副本 through its own services.  It writes the three scenarios of issue 5 as
ready-to-run commands to ``linkage/scenarios.json`` (mode 0600: they hold 個人番号), and — where the
demo has issued cards — to ``linkage/portal-example.json`` an exchange about a demo card's holder and
the command that then shows it in their やりとり履歴.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from kojinbango.agency.service import AgencyService
from kojinbango.domain.jst import today_jst
from kojinbango.municipality.addressee.models import Addressee, RecordLink
from kojinbango.municipality.addressee.service import AddresseeService
from kojinbango.municipality.business import synthetic
from kojinbango.municipality.business.models import BusinessRecord, ChildAllowance, TaxAssessment
from kojinbango.municipality.business.service import BusinessService, RecordInput
from kojinbango.municipality.linkage.service import LinkageService
from kojinbango.municipality.register.models import Resident
from kojinbango.nation import Nation
from kojinbango.synth.business import generate_business_data

SCENARIOS_FILE = "linkage/scenarios.json"
PORTAL_EXAMPLE_FILE = "linkage/portal-example.json"
STAFF = "情報連携担当（デモ）"


def fiscal_year(today: dt.date) -> int:
    """The 年度 whose 住民税 is levied now (assessed in June on the previous year's income)."""
    return today.year if today.month >= 6 else today.year - 1


def _business(nation: Nation, org_id: str) -> tuple[BusinessService, AddresseeService]:
    services = nation.runtimes[org_id].services
    business, addressee = services["business"], services["addressee"]
    assert isinstance(business, BusinessService) and isinstance(addressee, AddresseeService)
    return business, addressee


def business_data(nation: Nation, seed: int, today: dt.date) -> dict[str, Any]:
    """Synthetic tax and welfare records for every municipality that has none, linked (3-0)."""
    out: dict[str, Any] = {}
    munis = nation.municipalities()
    for i, rt in enumerate(munis):
        business, addressee = _business(nation, rt.org_id)
        with business.db.transaction() as s:
            if s.scalar(select(func.count()).select_from(BusinessRecord)):
                continue
        people, numbers = synthetic.register_people(business.db)
        outsiders = []
        for other in munis:
            if other.org_id != rt.org_id:
                src, nums = synthetic.register_people(other.db)
                outsiders += synthetic.as_outsiders(src)
                numbers.update(nums)
        data = generate_business_data(people, outsiders, seed + 100 + i, today)
        loaded = synthetic.load(business, data, numbers)
        linked = {system: addressee.run(system) for system in ("tax", "welfare")}
        out[rt.org_id] = {"loaded": loaded, "linked": {k: v.get("linked", v) for k, v in linked.items()}}
    return out


def moved_family(nation: Nation, today: dt.date) -> dict[str, Any] | None:
    """The household that moved from the first municipality to the second this year: its 課税台帳
    (this 年度 and the one before) and its 児童手当 stay at the first municipality."""
    src, dst = nation.municipalities()[0], nation.municipalities()[1]
    with src.db.transaction() as s:
        moved = list(
            s.scalars(
                select(Resident)
                .where(Resident.status == "moved_out", Resident.removal_reason == "転出")
                .order_by(Resident.removed_on.desc(), Resident.household_id, Resident.id)
            )
        )
    if not moved:
        return None
    household = moved[0].household_id
    members = [r for r in moved if r.household_id == household]
    with dst.db.transaction() as s:
        arrived = set(s.scalars(select(Resident.resident_code).where(Resident.status == "active")))
    members = [m for m in members if m.resident_code in arrived]
    if not members:
        return None
    adults = [m for m in members if m.birth_date <= today.replace(year=today.year - 18)]
    children = [m for m in members if m not in adults]
    business, addressee = _business(nation, src.org_id)
    year = fiscal_year(today)
    tax_ids = [f"MV-T{m.id}" for m in adults]
    existing = business.record_ids("tax", tax_ids)
    if len(existing) < len(tax_ids):
        business.upsert("tax", [_record(f"MV-T{m.id}", m) for m in adults], source="moved-family")
        ids = business.record_ids("tax", tax_ids)
        with business.db.transaction() as s:
            rows = []
            for k, m in enumerate(adults):
                income = max(0, 4_200_000 - 1_500_000 * k)
                for y in (year - 1, year):
                    rows.append({"record_id": ids[f"MV-T{m.id}"], "fiscal_year": y, "income": max(0, income + (y - year) * 50_000),
                                 "tax_amount": max(0, (income - 430_000) // 10 // 100 * 100)})  # fmt: skip
            s.execute(insert(TaxAssessment), rows)
        if children and adults:
            welfare_ids = [f"MV-W{m.id}" for m in [adults[0], *children]]
            business.upsert("welfare", [_record(w, m) for w, m in zip(welfare_ids, [adults[0], *children], strict=True)],
                            source="moved-family")  # fmt: skip
            wid = business.record_ids("welfare", welfare_ids)
            with business.db.transaction() as s:
                s.execute(
                    insert(ChildAllowance),
                    [{"recipient_id": wid[welfare_ids[0]], "child_id": wid[w], "started_on": c.birth_date,
                      "monthly_amount": 15_000 if (today - c.birth_date).days < 3 * 365 else 10_000}
                     for w, c in zip(welfare_ids[1:], children, strict=True)],
                )  # fmt: skip
        for system in ("tax", "welfare"):
            addressee.run(system)
        _link_by_staff(addressee, src.db, "tax", tax_ids, adults)
        if children and adults:
            _link_by_staff(addressee, src.db, "welfare", [f"MV-W{adults[0].id}"], adults[:1])
    return {
        "from": src.org_id,
        "to": dst.org_id,
        "moved_on": members[0].removed_on.isoformat() if members[0].removed_on else None,
        "numbers": [m.my_number for m in adults if m.my_number],
        "children": len(children),
    }


def _record(legacy_id: str, r: Resident) -> RecordInput:
    return RecordInput(
        legacy_id,
        f"{r.family_name}\u3000{r.given_name}",
        f"{r.family_kana}\u3000{r.given_kana}",
        r.birth_date.isoformat(),
        r.birth_date,
        r.sex,
        r.address + r.address_extra,
    )


def _link_by_staff(
    addressee: AddresseeService, db: Any, system: str, legacy_ids: list[str], people: list[Resident]
) -> None:
    """Records the matcher left in review (e.g. a moved-out person's old address) are tied by staff."""
    with db.transaction() as s:
        rows = {
            lid: (rid, status)
            for lid, rid, status in s.execute(
                select(BusinessRecord.legacy_id, BusinessRecord.id, RecordLink.status)
                .join(RecordLink, RecordLink.record_id == BusinessRecord.id)
                .where(BusinessRecord.system == system, BusinessRecord.legacy_id.in_(legacy_ids))
            )
        }
        aids = dict(s.execute(select(Addressee.resident_id, Addressee.id)).all())
    for lid, person in zip(legacy_ids, people, strict=False):
        rid, status = rows.get(lid, (None, None))
        if rid is not None and status not in ("linked", "non_resident_linked") and person.id in aids:
            addressee.link(rid, aids[person.id], STAFF, "転出した世帯の課税台帳 (デモ準備)")


def pensioners(nation: Nation, today: dt.date, limit: int = 40) -> dict[str, Any]:
    """日本年金機構 learns some people aged 65 and over (with their numbers) and their pensions."""
    agency = nation.runtime("agency").services["agency"]
    assert isinstance(agency, AgencyService)
    with agency.db.transaction() as s:
        from kojinbango.agency.models import PensionAward

        if s.scalar(select(func.count()).select_from(PensionAward)):
            return {"pensioners": 0}
    n = 0
    for rt in nation.municipalities():
        with rt.db.transaction() as s:
            old = list(
                s.scalars(
                    select(Resident)
                    .where(
                        Resident.status == "active",
                        Resident.my_number.is_not(None),
                        Resident.birth_date <= today.replace(year=today.year - 65),
                    )  # fmt: skip
                    .order_by(Resident.id)
                    .limit(limit // 2)
                )
            )
        for r in old:
            assert r.my_number
            pid = agency.register(r.my_number, f"{r.family_name}\u3000{r.given_name}", r.birth_date)
            since = dt.date(r.birth_date.year + 65, r.birth_date.month, 1)
            agency.award(pid, "老齢基礎年金", 780_000 + (r.id % 7) * 10_000, since)
            n += 1
    return {"pensioners": n}


def connect(nation: Nation) -> dict[str, Any]:
    """Every municipality and the agency obtain their 符号 and register their 副本 (a full refresh)."""
    out: dict[str, Any] = {}
    for rt in nation.municipalities():
        linkage = rt.services.get("linkage")
        assert isinstance(linkage, LinkageService)
        out[rt.org_id] = linkage.refresh_now()
    agency = nation.runtime("agency").services["agency"]
    assert isinstance(agency, AgencyService)
    out["nenkin"] = {"fugo": agency.ensure_fugo(), "copies": agency.refresh()}
    return out


def scenarios(nation: Nation, family: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The three scenarios of issue 5 as commands (with real 個人番号: the file is 0600)."""
    topo = nation.topology
    a, b = nation.municipalities()[0], nation.municipalities()[1]
    a_code, b_code = topo.org(a.org_id).lg_code, topo.org(b.org_id).lg_code
    d = topo.root
    out: list[dict[str, Any]] = []
    with a.db.transaction() as s:
        taxed = s.scalar(
            select(Addressee.my_number)
            .join(RecordLink, RecordLink.addressee_id == Addressee.id)
            .join(TaxAssessment, TaxAssessment.record_id == RecordLink.record_id)
            .join(Resident, Resident.id == Addressee.resident_id)
            .where(RecordLink.system == "tax", RecordLink.status == "linked", Resident.status == "active")
            .order_by(Addressee.id)
            .limit(1)
        )
    base = f"kojinbango exchange query --data-dir {d}"
    if family and family["numbers"]:
        out.append({
            "scenario": "B's 児童手当 office asks A for the 地方税関係情報 of a family that lived in A on 1 January",
            "command": f"{base} --querier {b_code} --provider {a_code} --affair child-allowance "
                       f"--info 地方税関係情報 --my-number {family['numbers'][0]}",
            "expect": "answered",
        })  # fmt: skip
    if taxed:
        out.append({
            "scenario": "日本年金機構 asks a municipality for 地方税関係情報 for 国民年金保険料の免除",
            "command": f"{base} --querier nenkin --provider {a_code} --affair pension-exemption "
                       f"--info 地方税関係情報 --my-number {taxed}",
            "expect": "answered",
        })  # fmt: skip
        out.append({
            "scenario": "a query no row of the legal table allows is refused (and recorded)",
            "command": f"{base} --querier nenkin --provider {a_code} --affair pension-exemption "
                       f"--info 児童手当関係情報 --my-number {taxed}",
            "expect": "refused (exit 1)",
        })  # fmt: skip
    return out


def portal_example(nation: Nation) -> dict[str, Any] | None:
    """An exchange about the holder of the first issued demo card of the first municipality, and the
    command (or the portal's page) that then shows it to them with its proof; None without demo
    cards (``kojinbango exchange prepare`` on a nation the demo did not make)."""
    from kojinbango.card.chip import Chip
    from kojinbango.holder import DEMO_CARDS

    topo = nation.topology
    state = topo.root / DEMO_CARDS
    if not state.exists():
        return None
    a = nation.municipalities()[0]
    cards = json.loads(state.read_text(encoding="utf-8"))
    card = next((c for c in cards if c["municipality"] == a.org_id and c["state"] == "issued"), None)
    if card is None or not Path(card["card"]).exists():
        return None
    number = Chip.loads(Path(card["card"]).read_text(encoding="utf-8")).printed_number
    d, a_code = topo.root, topo.org(a.org_id).lg_code
    return {
        "resident": card["name"],
        "card": card["card"],
        "steps": [
            {
                "what": "日本年金機構 asks A for the 住民票関係情報 of the card's holder",
                "command": f"kojinbango exchange query --data-dir {d} --querier nenkin --provider {a_code} "
                           f"--affair pension-exemption --info 住民票関係情報 --my-number {number}",
                "expect": "answered",
            },
            {
                "what": "the holder's やりとり履歴: the exchange, its inclusion proof checked",
                "command": f"kojinbango portal records --data-dir {d} --card {card['card']} --pin {card['auth_pin']}",
                "expect": "the exchange listed with proof_valid true",
            },
        ],
        "portal": f"or log in to マイポータル (its login page is printed when the demo serves) with this card "
                  f"(PIN {card['auth_pin']}) and open やりとり履歴",
    }  # fmt: skip


def prepare(nation: Nation, seed: int = 1, today: dt.date | None = None) -> dict[str, Any]:
    """Everything above, idempotent: a second run adds nothing twice."""
    today = today or today_jst()
    summary: dict[str, Any] = {"business": business_data(nation, seed, today)}
    family = moved_family(nation, today)
    summary["moved_family"] = {k: v for k, v in (family or {}).items() if k != "numbers"}
    summary["agency"] = pensioners(nation, today)
    summary["connected"] = connect(nation)
    path = nation.topology.root / SCENARIOS_FILE
    write_private(path, json.dumps(scenarios(nation, family), ensure_ascii=False, indent=1))
    summary["scenarios_file"] = str(path)
    example = portal_example(nation)
    if example is not None:
        path = nation.topology.root / PORTAL_EXAMPLE_FILE
        write_private(path, json.dumps(example, ensure_ascii=False, indent=1))
        summary["portal_example_file"] = str(path)
    return summary


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
