"""団体内統合宛名's business operations: 統合宛名 per person, linking (3-0), staff decisions, 総点検.

* ``sync_residents`` gives every person of the register a 統合宛名番号 (once; a former 住登外者 who
  moves in keeps theirs) and keeps the 個人番号 beside it current.
* ``run`` links a business system's new (or changed) records: the matcher against the register and
  its history; for a record not found in the register whose address lies elsewhere, a 住基ネット 4情報
  lookup at J-LIS (住登外者).  Every outcome is written with its decision record, in transactions of
  ``CHUNK`` records, so a killed run resumes where it stopped.
* Staff decisions (link / not this person / contact the resident / undo) record who, when and why.
* ``audit`` (総点検) re-checks every link against the current 本人確認情報.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from kojinbango.common.db import Database
from kojinbango.common.errors import BusinessError, Conflict, NotFound
from kojinbango.domain.address import split_prefecture
from kojinbango.domain.clock import utc_now as now
from kojinbango.domain.identifiers import make_atena_number, mask_my_number, validate_atena_number
from kojinbango.municipality.addressee.matcher import (
    EXACT,
    HISTORY,
    Decision,
    Keys,
    Lookup,
    Matcher,
    PersonFacts,
    RecordFacts,
    compare,
    person_facts,
    record_facts,
)
from kojinbango.municipality.addressee.models import Addressee, Counter, LinkDecision, RecordLink
from kojinbango.municipality.business.models import BankAccount, BusinessRecord, FormNumber
from kojinbango.municipality.business.service import validate_system
from kojinbango.municipality.register.models import Resident, ResidentEvent

log = logging.getLogger(__name__)

CHUNK = 2000
STATUSES = ("linked", "review", "unmatched", "non_resident_linked")
LINKED = ("linked", "non_resident_linked")
MATCHER = "matcher"


def _require(actor: str, reason: str) -> tuple[str, str]:
    actor, reason = actor.strip(), reason.strip()
    problems = []
    if not actor:
        problems.append("who decides (職員) is required")
    if not reason:
        problems.append("why (理由) is required")
    if len(actor) > 100:
        problems.append("the staff name is longer than 100 characters")
    if len(reason) > 1000:
        problems.append("the reason is longer than 1000 characters")
    if problems:
        raise BusinessError("; ".join(problems))
    return actor, reason


@dataclass
class PendingRecord:
    id: int
    legacy_id: str
    name: str
    kana: str
    birth: dt.date
    sex: int
    address: str
    updated_at: dt.datetime


class AddresseeService:
    """The 団体内統合宛名 system of one municipality, in the municipality's database."""

    def __init__(self, db: Database, lg_code: str, municipality_name: str, lookup: Lookup | None = None):
        self.db = db
        self.lg_code = lg_code
        self.municipality_name = municipality_name
        pref, city = split_prefecture(municipality_name)
        self.keys = Keys((pref, city) if pref else ())
        self.lookup = lookup

    # --- 統合宛名番号 ----------------------------------------------------------------------
    def _serials(self, s: Session, n: int) -> int:
        row = s.get(Counter, "integrated_number", with_for_update=True)
        if row is None:
            row = Counter(name="integrated_number", value=1)
            s.add(row)
            s.flush()
        first = row.value
        row.value = first + n
        return first

    def sync_residents(self, s: Session) -> int:
        """Give every person of the register a 統合宛名 and keep its 個人番号 current; returns new ones."""
        have = {rid: (aid, num) for aid, rid, num in s.execute(
            select(Addressee.id, Addressee.resident_id, Addressee.my_number).where(
                Addressee.resident_id.is_not(None)
            )
        )}  # fmt: skip
        non_residents = dict(
            s.execute(
                select(Addressee.resident_code, Addressee.id).where(
                    Addressee.kind == "non_resident", Addressee.resident_code.is_not(None)
                )
            ).all()
        )
        ts = now()
        new: list[dict[str, Any]] = []
        for rid, code, number in s.execute(select(Resident.id, Resident.resident_code, Resident.my_number)):
            if rid in have:
                aid, old = have[rid]
                if number and number != old:
                    s.execute(
                        update(Addressee).where(Addressee.id == aid).values(my_number=number, updated_at=ts)
                    )
                continue
            if code in non_residents:  # a 住登外者 who became a resident keeps their 統合宛名番号
                s.execute(
                    update(Addressee)
                    .where(Addressee.id == non_residents[code])
                    .values(kind="resident", resident_id=rid, my_number=number, updated_at=ts)
                )
                continue
            new.append({"resident_id": rid, "resident_code": code, "my_number": number})
        if new:
            first = self._serials(s, len(new))
            for i, row in enumerate(new):
                row.update(
                    integrated_number=make_atena_number(first + i),
                    kind="resident",
                    created_at=ts,
                    updated_at=ts,
                )
            for i in range(0, len(new), 5000):
                s.execute(insert(Addressee), new[i : i + 5000])
        return len(new)

    # --- what the matcher knows of each person -------------------------------------------------
    def _register_facts(self, s: Session, addressee_of: dict[Any, int]) -> Iterator[PersonFacts]:
        history: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for rid, before, after in s.execute(
            select(ResidentEvent.resident_id, ResidentEvent.before, ResidentEvent.after).order_by(
                ResidentEvent.id.desc()
            )
        ):
            if before:
                history[rid].append(before)
            if after:
                history[rid].append(after)
        for r in s.execute(
            select(
                Resident.id,
                Resident.family_name,
                Resident.given_name,
                Resident.family_kana,
                Resident.given_kana,
                Resident.birth_date,
                Resident.sex,
                Resident.address,
                Resident.previous_address,
                Resident.status,
            )
        ):
            aid = addressee_of.get(r.id)
            if aid is None:
                continue
            names = [(r.family_name, r.given_name)]
            kanas = [(r.family_kana, r.given_kana)]
            addresses = [r.address]
            for snap in history.get(r.id, ()):
                if snap.get("family_name") and snap.get("given_name"):
                    names.append((str(snap["family_name"]), str(snap["given_name"])))
                    kanas.append((str(snap.get("family_kana") or ""), str(snap.get("given_kana") or "")))
                if snap.get("address"):
                    addresses.append(str(snap["address"]))
            if r.previous_address:
                addresses.append(r.previous_address)
            yield person_facts(self.keys, aid, names, kanas, r.birth_date, r.sex, addresses, r.status)

    def _non_resident_facts(self, a: Addressee) -> PersonFacts:
        assert a.birth_date is not None and a.sex is not None
        return person_facts(
            self.keys,
            a.id,
            [(a.family_name or "", a.given_name or "")],
            [(a.family_kana or "", a.given_kana or "")],
            a.birth_date,
            a.sex,
            [a.address or ""],
            "non_resident",
        )

    def load_matcher(self, s: Session) -> Matcher:
        addressee_of = dict(
            s.execute(
                select(Addressee.resident_id, Addressee.id).where(Addressee.resident_id.is_not(None))
            ).all()
        )
        m = Matcher(self._register_facts(s, addressee_of))
        for a in s.scalars(select(Addressee).where(Addressee.kind == "non_resident")):
            m.add(self._non_resident_facts(a))
        return m

    def _rejected(self, s: Session, record_ids: Sequence[int]) -> dict[int, set[int]]:
        """Persons staff said a record is not (not this person, or an undone link)."""
        out: dict[int, set[int]] = defaultdict(set)
        for i in range(0, len(record_ids), 900):
            rows = s.execute(
                select(LinkDecision.record_id, LinkDecision.action, LinkDecision.addressee_id)
                .where(
                    LinkDecision.record_id.in_(record_ids[i : i + 900]),
                    LinkDecision.action.in_(("not_this_person", "undo", "link")),
                )
                .order_by(LinkDecision.id)
            )
            for rid, action, aid in rows:
                if aid is None:
                    continue
                if action == "link":
                    out[rid].discard(aid)
                else:
                    out[rid].add(aid)
        return out

    # --- linking ---------------------------------------------------------------------------------
    def _pending(self, s: Session, system: str, recheck: bool) -> list[PendingRecord]:
        cond = or_(RecordLink.record_id.is_(None), RecordLink.record_updated_at != BusinessRecord.updated_at)
        if recheck:
            cond = or_(
                cond, and_(RecordLink.status.in_(("review", "unmatched")), RecordLink.method.is_(None))
            )
        rows = s.execute(
            select(
                BusinessRecord.id,
                BusinessRecord.legacy_id,
                BusinessRecord.name,
                BusinessRecord.kana,
                BusinessRecord.birth_date,
                BusinessRecord.sex,
                BusinessRecord.address,
                BusinessRecord.updated_at,
            )
            .outerjoin(RecordLink, RecordLink.record_id == BusinessRecord.id)
            .where(BusinessRecord.system == system, cond)
            .order_by(BusinessRecord.id)
        )
        return [PendingRecord(*r) for r in rows]

    def run(self, system: str, recheck: bool = False) -> dict[str, Any]:
        """Link the system's records not linked yet (new or changed since); print-ready counts.

        With ``recheck``, records in review or unmatched that no staff member has decided on are tried
        again (the register may have changed since).
        """
        system = validate_system(system)
        t0 = time.perf_counter()
        with self.db.transaction() as s:
            if not s.scalar(
                select(func.count()).select_from(BusinessRecord).where(BusinessRecord.system == system)
            ):
                raise NotFound(f"business system {system!r} has no records; import some first (link import)")
            created = self.sync_residents(s)
        with self.db.transaction() as s:
            matcher = self.load_matcher(s)
            pending = self._pending(s, system, recheck)
            rejected = self._rejected(s, [p.id for p in pending])
        counts = dict.fromkeys(STATUSES, 0)
        lookups = 0
        for i in range(0, len(pending), CHUNK):
            chunk = pending[i : i + CHUNK]
            outcomes: list[tuple[PendingRecord, Decision, dict[str, Any] | None]] = []
            for p in chunk:
                rec = record_facts(self.keys, p.name, p.kana, p.birth, p.sex, p.address)
                d = matcher.decide(rec, rejected.get(p.id, ()))
                jukinet = None
                if d.outcome != "link" and self.lookup is not None and not self.keys.is_local(p.address):
                    jukinet = self._ask_jukinet(p)
                    lookups += 1
                outcomes.append((p, d, jukinet))
            with self.db.transaction() as s:
                for p, d, jukinet in outcomes:
                    status = self._write_outcome(s, system, p, d, jukinet, matcher)
                    counts[status] += 1
        with self.db.transaction() as s:
            totals = dict.fromkeys(STATUSES, 0)
            totals.update(
                dict(
                    s.execute(
                        select(RecordLink.status, func.count())
                        .where(RecordLink.system == system)
                        .group_by(RecordLink.status)
                    ).all()
                )
            )
            records = s.scalar(
                select(func.count()).select_from(BusinessRecord).where(BusinessRecord.system == system)
            )
        return {
            "system": system,
            "processed": len(pending),
            **counts,
            "jukinet_lookups": lookups,
            "new_addressees": created,
            "records": records,
            "totals": totals,
            "seconds": round(time.perf_counter() - t0, 2),
        }

    def _full_address(self, address: str) -> str:
        """An address written without its prefecture is read as in this municipality's prefecture."""
        pref, _ = split_prefecture(address)
        if pref or not self.keys.home:
            return address
        return split_prefecture(self.municipality_name)[0] + address.strip()

    def _ask_jukinet(self, p: PendingRecord) -> dict[str, Any] | None:
        assert self.lookup is not None
        try:
            return self.lookup(
                {
                    "name": p.name,
                    "birth_date": p.birth.isoformat(),
                    "sex": p.sex,
                    "address": self._full_address(p.address),
                }
            )
        except Exception as exc:  # J-LIS unreachable: the record waits in review, nothing is lost
            log.warning("住基ネット lookup failed (%s); the record goes to review", type(exc).__name__)
            return {"status": "error", "record": None}

    def _write_outcome(
        self,
        s: Session,
        system: str,
        p: PendingRecord,
        d: Decision,
        jukinet: dict[str, Any] | None,
        matcher: Matcher,
    ) -> str:
        ts = now()
        candidates = d.candidates_json()
        reasons = list(d.reasons)
        aid: int | None = None
        method: str | None = None
        if d.outcome == "link":
            aid, method, action = d.pid, "auto", "auto_link"
            assert aid is not None
            status = "non_resident_linked" if matcher.persons[aid].status == "non_resident" else "linked"
        elif jukinet is not None and jukinet.get("status") == "found" and jukinet.get("record"):
            addressee = self._non_resident(s, jukinet["record"], ts)
            aid, method, action = addressee.id, "jukinet", "jukinet_link"
            person = matcher.persons.get(addressee.id)
            active = addressee.kind == "resident" and person is not None and person.status == "active"
            status = "linked" if active else "non_resident_linked"
            if addressee.kind == "non_resident":
                matcher.add(self._non_resident_facts(addressee))
        else:
            if jukinet is not None:
                reasons.append("jukinet_" + str(jukinet.get("status")))
            if d.outcome == "review" or (
                jukinet is not None and jukinet.get("status") in ("ambiguous", "error")
            ):
                status, action = "review", "auto_review"
            else:
                status, action = "unmatched", "auto_unmatched"
        row = s.get(RecordLink, p.id)
        if row is None:
            row = RecordLink(record_id=p.id, system=system)
            s.add(row)
        row.status, row.addressee_id, row.method = status, aid, method
        row.reasons, row.candidates, row.contact_requested = reasons, candidates, False
        row.record_updated_at, row.decided_at = p.updated_at, ts
        s.add(
            LinkDecision(
                record_id=p.id,
                system=system,
                action=action,
                addressee_id=aid,
                actor=MATCHER,
                reason=",".join(reasons),
                at=ts,
                details={"candidates": candidates[:3]} if candidates else {},
            )
        )
        return status

    def _non_resident(self, s: Session, rec: dict[str, Any], ts: dt.datetime) -> Addressee:
        """The 統合宛名 of a person 住基ネット identified: existing (by 住民票コード) or a new 住登外者."""
        code = str(rec["resident_code"])
        a = s.scalar(select(Addressee).where(Addressee.resident_code == code))
        if a is not None:
            if a.kind == "non_resident":  # refresh the 4情報 as 住基ネット answers them now
                self._copy_identity(a, rec, ts)
            return a
        first = self._serials(s, 1)
        a = Addressee(
            integrated_number=make_atena_number(first), kind="non_resident", resident_code=code, created_at=ts
        )
        self._copy_identity(a, rec, ts)
        s.add(a)
        s.flush()
        return a

    @staticmethod
    def _copy_identity(a: Addressee, rec: dict[str, Any], ts: dt.datetime) -> None:
        a.my_number = rec.get("my_number")
        a.family_name, a.given_name = rec["family_name"], rec["given_name"]
        a.family_kana, a.given_kana = rec.get("family_kana") or "", rec.get("given_kana") or ""
        a.birth_date = dt.date.fromisoformat(str(rec["birth_date"]))
        a.sex, a.address, a.updated_at = int(rec["sex"]), rec["address"], ts

    # --- staff decisions -----------------------------------------------------------------------------
    def _link_row(self, s: Session, record_id: int) -> RecordLink:
        row = s.get(RecordLink, record_id, with_for_update=True)
        if row is None:
            raise NotFound(f"business record {record_id} has not been through `link run` yet")
        return row

    def _addressee(self, s: Session, addressee_id: int) -> Addressee:
        a = s.get(Addressee, addressee_id)
        if a is None:
            raise NotFound(f"no 統合宛名 with internal id {addressee_id}")
        return a

    def find_addressee(self, integrated_number: str) -> int:
        number = validate_atena_number(integrated_number)
        with self.db.transaction() as s:
            aid = s.scalar(select(Addressee.id).where(Addressee.integrated_number == number))
        if aid is None:
            raise NotFound("no 統合宛名 has this 統合宛名番号")
        return aid

    def link(self, record_id: int, addressee_id: int, actor: str, reason: str) -> None:
        """A staff member ties a record to a person (from the review queue)."""
        actor, reason = _require(actor, reason)
        with self.db.transaction() as s:
            row = self._link_row(s, record_id)
            if row.status in LINKED:
                raise Conflict("this record is already linked; undo the link first")
            a = self._addressee(s, addressee_id)
            row.status = "non_resident_linked" if a.kind == "non_resident" else "linked"
            row.addressee_id, row.method, row.contact_requested, row.decided_at = a.id, "staff", False, now()
            s.add(
                LinkDecision(
                    record_id=record_id,
                    system=row.system,
                    action="link",
                    addressee_id=a.id,
                    actor=actor,
                    reason=reason,
                    at=row.decided_at,
                )
            )

    def not_this_person(self, record_id: int, addressee_id: int, actor: str, reason: str) -> None:
        """A staff member rules a candidate out; with no candidate left the record is unmatched."""
        actor, reason = _require(actor, reason)
        with self.db.transaction() as s:
            row = self._link_row(s, record_id)
            if row.status != "review":
                raise Conflict("only a record in review has candidates to rule out")
            if not any(c["addressee_id"] == addressee_id for c in row.candidates):
                raise BusinessError("this person is not among the record's candidates")
            row.candidates = [c for c in row.candidates if c["addressee_id"] != addressee_id]
            if not row.candidates:
                row.status = "unmatched"
            row.method, row.decided_at = "staff", now()
            s.add(
                LinkDecision(
                    record_id=record_id,
                    system=row.system,
                    action="not_this_person",
                    addressee_id=addressee_id,
                    actor=actor,
                    reason=reason,
                    at=row.decided_at,
                )
            )

    def contact_resident(self, record_id: int, actor: str, reason: str) -> None:
        """Staff cannot tell from the records: ask the resident (the record stays in review)."""
        actor, reason = _require(actor, reason)
        with self.db.transaction() as s:
            row = self._link_row(s, record_id)
            if row.status not in ("review", "unmatched"):
                raise Conflict("only a record in review or unmatched waits for the resident")
            row.contact_requested, row.method, row.decided_at = True, "staff", now()
            s.add(
                LinkDecision(
                    record_id=record_id,
                    system=row.system,
                    action="contact_resident",
                    actor=actor,
                    reason=reason,
                    at=row.decided_at,
                )
            )

    def undo(self, record_id: int, actor: str, reason: str) -> None:
        """Undo a link (automatic or by staff): the record returns to review; the undo is recorded."""
        actor, reason = _require(actor, reason)
        with self.db.transaction() as s:
            row = self._link_row(s, record_id)
            if row.status not in LINKED or row.addressee_id is None:
                raise Conflict("this record is not linked")
            undone = row.addressee_id
            if not any(c["addressee_id"] == undone for c in row.candidates):
                row.candidates = [{"addressee_id": undone, "score": 0.0, "levels": {}}, *row.candidates]
            # method "staff": a staff decision stands; ``run --recheck`` leaves the record alone
            row.status, row.addressee_id, row.method = "review", None, "staff"
            row.reasons, row.decided_at = ["undone"], now()
            s.add(
                LinkDecision(
                    record_id=record_id,
                    system=row.system,
                    action="undo",
                    addressee_id=undone,
                    actor=actor,
                    reason=reason,
                    at=row.decided_at,
                )
            )

    # --- export ---------------------------------------------------------------------------------------------
    def export_rows(self, system: str) -> tuple[list[tuple[str, str, str]], int]:
        """(legacy_id, status, my_number) for every record of the system, and how many are not run yet."""
        system = validate_system(system)
        with self.db.transaction() as s:
            rows = s.execute(
                select(BusinessRecord.legacy_id, RecordLink.status, Addressee.my_number)
                .outerjoin(RecordLink, RecordLink.record_id == BusinessRecord.id)
                .outerjoin(Addressee, Addressee.id == RecordLink.addressee_id)
                .where(BusinessRecord.system == system)
                .order_by(BusinessRecord.id)
            ).all()
        out: list[tuple[str, str, str]] = []
        pending = 0
        for legacy_id, status, number in rows:
            if status is None:
                pending += 1
                status = "unmatched"
            out.append((legacy_id, status, (number or "") if status in LINKED else ""))
        return out, pending

    # --- reading (staff screens) ------------------------------------------------------------------------
    def person_view(self, s: Session, addressee_id: int) -> dict[str, Any]:
        """What the staff screen shows of a person: 4情報 now and the history the matcher used."""
        a = self._addressee(s, addressee_id)
        view: dict[str, Any] = {
            "id": a.id,
            "integrated_number": a.integrated_number,
            "kind": a.kind,
            "my_number": a.my_number,
            "history_names": [],
            "history_addresses": [],
        }
        if a.resident_id is not None:
            r = s.get(Resident, a.resident_id)
            assert r is not None
            view.update(
                name=f"{r.family_name}\u3000{r.given_name}",
                kana=f"{r.family_kana}\u3000{r.given_kana}",
                birth_date=r.birth_date,
                sex=r.sex,
                address=r.address + (f"\u3000{r.address_extra}" if r.address_extra else ""),
                status=r.status,
            )
            names, addrs = [], []
            for before, after in s.execute(
                select(ResidentEvent.before, ResidentEvent.after).where(ResidentEvent.resident_id == r.id)
            ):
                for snap in (before or {}, after or {}):
                    if snap.get("family_name"):
                        names.append(f"{snap['family_name']}\u3000{snap.get('given_name', '')}")
                    if snap.get("address"):
                        addrs.append(str(snap["address"]))
            if r.previous_address:
                addrs.append(r.previous_address)
            view["history_names"] = sorted({n for n in names if n != view["name"]})
            view["history_addresses"] = sorted({x for x in addrs if x != r.address})
        else:
            view.update(
                name=f"{a.family_name}\u3000{a.given_name}",
                kana=f"{a.family_kana}\u3000{a.given_kana}",
                birth_date=a.birth_date,
                sex=a.sex,
                address=a.address,
                status="non_resident",
            )
        return view

    # --- 総点検 ---------------------------------------------------------------------------------------------
    def audit(self) -> dict[str, Any]:
        """Re-check every link against the current 本人確認情報; list what disagrees.

        Also flags one 個人番号 on forms of records of different people, several numbers on one
        record, a form number that is not the linked person's, one bank account on different people,
        and one person linked to records in one system that disagree on 生年月日.
        """
        findings: list[dict[str, Any]] = []
        with self.db.transaction() as s:
            self.sync_residents(s)
        with self.db.transaction() as s:
            addressee_of = dict(
                s.execute(
                    select(Addressee.resident_id, Addressee.id).where(Addressee.resident_id.is_not(None))
                ).all()
            )
            register_numbers = dict(s.execute(select(Resident.id, Resident.my_number)).all())
            persons = {p.pid: p for p in self._register_facts(s, addressee_of)}
            addressees = {a.id: a for a in s.scalars(select(Addressee))}
            links = s.execute(
                select(RecordLink, BusinessRecord)
                .join(BusinessRecord, BusinessRecord.id == RecordLink.record_id)
                .where(RecordLink.status.in_(LINKED))
                .order_by(RecordLink.record_id)
            ).all()
            forms = s.execute(select(FormNumber.record_id, FormNumber.my_number, FormNumber.form)).all()
            accounts = s.execute(
                select(
                    BankAccount.record_id,
                    BankAccount.bank_code,
                    BankAccount.branch_code,
                    BankAccount.account_type,
                    BankAccount.account_number,
                )
            ).all()
            records = {
                r.id: r
                for r in s.scalars(
                    select(BusinessRecord).where(
                        BusinessRecord.id.in_({f[0] for f in forms} | {a[0] for a in accounts} | {0})
                    )
                )
            }
        link_of: dict[int, int] = {}
        by_addressee: dict[tuple[int, str], list[BusinessRecord]] = defaultdict(list)
        for link, rec in links:
            assert link.addressee_id is not None
            link_of[rec.id] = link.addressee_id
            records[rec.id] = rec
            by_addressee[(link.addressee_id, rec.system)].append(rec)
            a = addressees[link.addressee_id]
            facts = persons.get(a.id)
            base = {
                "system": rec.system,
                "legacy_id": rec.legacy_id,
                "integrated_number": a.integrated_number,
                "method": link.method,
            }
            if a.resident_id is not None and a.my_number != register_numbers.get(a.resident_id):
                findings.append(
                    {
                        **base,
                        "kind": "number_out_of_date",
                        "detail": "統合宛名's 個人番号 is not the register's",
                    }
                )
            if facts is None and a.kind == "non_resident":
                facts, problem = self._current_non_resident(a)
                if problem:
                    findings.append({**base, "kind": "not_in_jukinet", "detail": problem})
                    continue
            if facts is None:
                findings.append(
                    {**base, "kind": "person_missing", "detail": "the linked person is not in the register"}
                )
                continue
            c = compare(
                record_facts(self.keys, rec.name, rec.kana, rec.birth_date, rec.sex, rec.address), facts
            )
            differs = {f: lv for f, lv in c.levels.items() if lv not in (EXACT, HISTORY, "missing")}
            if differs:
                findings.append(
                    {
                        **base,
                        "kind": "disagrees" if not c.strong else "minor_difference",
                        "fields": differs,
                        "detail": "the record's 4情報 do not agree with the person's current 本人確認情報"
                        if not c.strong
                        else "氏名・生年月日・住所 agree; other fields differ",
                    }
                )
        # 個人番号 written on forms
        numbers_of: dict[int, set[str]] = defaultdict(set)
        holders: dict[str, set[int]] = defaultdict(set)
        for record_id, number, _form in forms:
            numbers_of[record_id].add(number)
            holders[number].add(link_of.get(record_id, -record_id))
        number_of_addressee = {a.id: a.my_number for a in addressees.values()}
        for record_id, numbers in numbers_of.items():
            rec = records[record_id]
            base = {"system": rec.system, "legacy_id": rec.legacy_id}
            if len(numbers) > 1:
                findings.append(
                    {
                        **base,
                        "kind": "several_numbers_on_record",
                        "numbers": sorted(mask_my_number(n) for n in numbers),
                    }
                )
            aid = link_of.get(record_id)
            if aid is not None and number_of_addressee.get(aid) not in numbers:
                findings.append(
                    {
                        **base,
                        "kind": "form_number_not_linked_person",
                        "integrated_number": addressees[aid].integrated_number,
                        "numbers": sorted(mask_my_number(n) for n in numbers),
                    }
                )
        for number, people in holders.items():
            if len(people) > 1:
                recs = sorted(r for r, ns in numbers_of.items() if number in ns)
                findings.append(
                    {
                        "kind": "number_on_different_people",
                        "number": mask_my_number(number),
                        "records": [
                            {"system": records[r].system, "legacy_id": records[r].legacy_id} for r in recs
                        ],
                    }
                )
        # one bank account, different people
        owners: dict[tuple[str, str, int, str], set[int]] = defaultdict(set)
        account_records: dict[tuple[str, str, int, str], list[int]] = defaultdict(list)
        for record_id, bank, branch, kind, number in accounts:
            key = (bank, branch, kind, number)
            owners[key].add(link_of.get(record_id, -record_id))
            account_records[key].append(record_id)
        for key, people in owners.items():
            if len(people) > 1:
                findings.append(
                    {
                        "kind": "account_on_different_people",
                        "account": f"{key[0]}-{key[1]}-{'*' * 3}{key[3][-4:]}",
                        "records": [
                            {"system": records[r].system, "legacy_id": records[r].legacy_id}
                            for r in sorted(account_records[key])
                        ],
                    }
                )
        # one person, records in one system that cannot be the same person
        for (aid, system), linked_recs in by_addressee.items():
            if len({r.birth_date for r in linked_recs}) > 1:
                findings.append(
                    {
                        "kind": "records_of_different_people_on_one_person",
                        "system": system,
                        "integrated_number": addressees[aid].integrated_number,
                        "records": sorted(r.legacy_id for r in linked_recs),
                    }
                )
        counts: dict[str, int] = defaultdict(int)
        for f in findings:
            counts[f["kind"]] += 1
        return {"links_checked": len(links), "findings": findings, "counts": dict(sorted(counts.items()))}

    def _current_non_resident(self, a: Addressee) -> tuple[PersonFacts | None, str]:
        """A 住登外者's current 本人確認情報 from 住基ネット (by 個人番号)."""
        if self.lookup is None or not a.my_number:
            return self._non_resident_facts(a), ""
        try:
            answer = self.lookup({"my_number": a.my_number})
        except Exception as exc:
            return None, f"住基ネット could not be asked ({type(exc).__name__})"
        if answer.get("status") != "found" or not answer.get("record"):
            return None, "住基ネット does not know this person's number"
        rec = answer["record"]
        return (
            person_facts(
                self.keys,
                a.id,
                [(rec["family_name"], rec["given_name"]), (a.family_name or "", a.given_name or "")],
                [
                    (rec.get("family_kana") or "", rec.get("given_kana") or ""),
                    (a.family_kana or "", a.given_kana or ""),
                ],
                dt.date.fromisoformat(rec["birth_date"]),
                int(rec["sex"]),
                [rec["address"], a.address or ""],
                "non_resident",
            ),
            "",
        )


def facts_for(keys: Keys, records: Iterable[BusinessRecord]) -> list[RecordFacts]:
    return [record_facts(keys, r.name, r.kana, r.birth_date, r.sex, r.address) for r in records]
