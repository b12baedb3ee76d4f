"""The resident register's business operations: events (異動), numbering (flows 1-1 and 1-2), the CS push.

Every operation is one transaction; every change to 本人確認情報 is written to the CS outbox in the
same transaction, so the push to the prefecture (and on to J-LIS) happens in order and exactly once
per change even if the process is killed in between.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from kojinbango.common.db import Database, sync_id_sequence
from kojinbango.common.documents import sign_document, verify_document
from kojinbango.common.errors import BusinessError, Conflict, NotFound
from kojinbango.common.pki import OrgCredentials
from kojinbango.common.signing import SignatureError, TrustStore
from kojinbango.common.transport import SignedClient
from kojinbango.domain.address import address_key
from kojinbango.domain.clock import utc_now as now
from kojinbango.domain.identifiers import make_atena_number, validate_my_number
from kojinbango.domain.jst import today_jst
from kojinbango.domain.keys import person_keys
from kojinbango.domain.relationships import validate_relationship
from kojinbango.domain.text import kana_search_key, name_key, to_katakana
from kojinbango.municipality.register.models import (
    CodeStock,
    CsOutbox,
    Household,
    Notice,
    PastKey,
    Resident,
    ResidentEvent,
    Setting,
)
from kojinbango.municipality.register.pastkeys import past_keys_of_event, previous_address_key

log = logging.getLogger(__name__)

NUMBER_BATCH = 5_000
PUSH_BATCH = 5_000
CODE_STOCK_LOW = 50  # alert/refill threshold for 空きコード
CODE_STOCK_REFILL = 200
SEXES = {1: "男", 2: "女", 3: "その他"}
TRANSFER_CERTIFICATE = "転出証明書"
ABROAD = "国外転出"


def _active_members(s: Session, h: Household) -> list[Resident]:
    """The household's members still on the register, in internal-id order."""
    return list(
        s.scalars(
            select(Resident)
            .where(Resident.household_id == h.id, Resident.status == "active")
            .order_by(Resident.id)
        )
    )


def check_not_future(label: str, day: dt.date) -> None:
    if day > today_jst():
        raise BusinessError(f"{label} ({day.isoformat()}) is in the future (未来の日付です)")


@dataclass(frozen=True)
class PersonInput:
    """The facts a 届出 gives about one person (validated by ``validate``)."""

    family_name: str
    given_name: str
    family_kana: str
    given_kana: str
    birth_date: dt.date
    sex: int
    relationship: str

    def validate(self, today: dt.date) -> PersonInput:
        problems = []
        if not self.family_name.strip() or not self.given_name.strip():
            problems.append("氏 and 名 are both required")
        kana = to_katakana(self.family_kana + self.given_kana).replace("\u3000", "").replace(" ", "")
        if any(not ("\u30a0" <= ch <= "\u30ff") for ch in kana):
            problems.append("フリガナ must be katakana or hiragana")
        if self.sex not in SEXES:
            problems.append("性別 must be 1 (男), 2 (女) or 3 (その他)")
        if self.birth_date > today:
            problems.append("生年月日 is in the future")
        try:
            validate_relationship(self.relationship)
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            raise BusinessError("; ".join(problems))
        return PersonInput(
            self.family_name.strip(),
            self.given_name.strip(),
            to_katakana(self.family_kana.strip()),
            to_katakana(self.given_kana.strip()),
            self.birth_date,
            self.sex,
            self.relationship,
        )


def identity_record(r: Resident) -> dict[str, Any]:
    """本人確認情報 of a resident as the CS sends it (4情報 + 住民票コード + 個人番号)."""
    return {
        "resident_code": r.resident_code,
        "my_number": r.my_number,
        "family_name": r.family_name,
        "given_name": r.given_name,
        "family_kana": r.family_kana,
        "given_kana": r.given_kana,
        "birth_date": r.birth_date.isoformat(),
        "sex": r.sex,
        "address": full_address(r.address, r.address_extra),
        "address_street": r.address,  # without the 方書: what address matching compares
        "status": "current" if r.status == "active" else "removed",
        "removal_reason": r.removal_reason,
    }


def full_address(address: str, extra: str) -> str:
    return f"{address}\u3000{extra}" if extra else address


def snapshot(r: Resident) -> dict[str, Any]:
    """What a 異動履歴 entry records of the person before/after (the number only masked)."""
    return {
        "family_name": r.family_name,
        "given_name": r.given_name,
        "family_kana": r.family_kana,
        "given_kana": r.given_kana,
        "address": r.address,
        "address_extra": r.address_extra,
        "relationship": r.relationship,
        "status": r.status,
        "my_number_last4": r.my_number[-4:] if r.my_number else None,
    }


class RegisterService:
    """A municipality's resident register and CS, talking to J-LIS and its prefecture over HTTP."""

    def __init__(
        self,
        db: Database,
        org_id: str,
        lg_code: str,
        name: str,
        client: SignedClient,
        trust: TrustStore,
        creds: OrgCredentials,
        jlis_id: str,
        prefecture_id: str,
        files_dir: Path,
        notice_key: bytes,
    ):
        self.db = db
        self.org_id = org_id
        self.lg_code = lg_code
        self.name = name
        self.client = client
        self.trust = trust
        self.creds = creds
        self.jlis_id = jlis_id
        self.prefecture_id = prefecture_id
        self.files_dir = files_dir
        self.notice_key = notice_key
        self._push_lock = threading.Lock()
        self._stock_lock = threading.Lock()

    # --- helpers ------------------------------------------------------------------------
    def _next_serials(self, s: Session, name: str, n: int) -> int:
        """Reserve ``n`` serial numbers of counter ``name``; returns the first."""
        row = s.get(Setting, f"serial:{name}", with_for_update=True)
        if row is None:
            row = Setting(key=f"serial:{name}", value="1")
            s.add(row)
            s.flush()
        first = int(row.value)
        row.value = str(first + n)
        return first

    def _event(
        self,
        s: Session,
        r: Resident,
        event_type: str,
        event_date: dt.date,
        before: dict[str, Any] | None,
        notified_on: dt.date | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        after = {**snapshot(r), **(extra or {})}
        s.add(
            ResidentEvent(
                resident_id=r.id,
                event_type=event_type,
                event_date=event_date,
                notified_on=notified_on,
                processed_at=now(),
                before=before or {},
                after=after,
            )
        )
        # 旧氏名・旧住所 stay searchable: written with the event, never half of it.
        for k in past_keys_of_event(before or {}, after):
            s.add(PastKey(resident_id=r.id, until=event_date, **k))

    def _outbox(self, s: Session, r: Resident, event_type: str, event_date: dt.date) -> None:
        s.add(
            CsOutbox(
                event_type=event_type, event_date=event_date, record=identity_record(r), created_at=now()
            )
        )

    def application_id(self, resident_id: int, version: int) -> str:
        """申請書ID (23 digits): keyed so it reveals nothing and cannot be guessed."""
        mac = hmac.new(self.notice_key, f"{resident_id}:{version}".encode(), hashlib.sha256).digest()
        return f"{int.from_bytes(mac[:12], 'big') % 10**23:023d}"

    @staticmethod
    def _active_household(s: Session, household_id: int) -> Household:
        h = s.get(Household, household_id)
        if h is None or h.status != "active":
            raise NotFound(f"no active household with internal id {household_id}")
        return h

    def get_resident(self, s: Session, resident_id: int) -> Resident:
        r = s.get(Resident, resident_id)
        if r is None:
            raise NotFound(f"no resident with internal id {resident_id}")
        return r

    # --- 空きコード stock -----------------------------------------------------------------
    def free_codes(self) -> int:
        with self.db.transaction() as s:
            return s.scalar(select(func.count()).select_from(CodeStock).where(CodeStock.used.is_(False))) or 0

    def ensure_code_stock(self, needed: int = 0) -> int:
        """Keep at least ``needed`` + the alert threshold of unused codes, asking J-LIS for a bundle."""
        with self._stock_lock:
            free = self.free_codes()
            if free >= needed + CODE_STOCK_LOW:
                return 0
            count = needed + CODE_STOCK_REFILL - free
            request_id = self._pending_bundle_request() or uuid.uuid4().hex
            with self.db.transaction() as s:
                s.merge(Setting(key="pending_bundle_request", value=request_id))
            answer = self.client.call(
                self.jlis_id, "POST", "/api/code-bundles", {"request_id": request_id, "count": count}
            )
            codes = answer["resident_codes"]
            with self.db.transaction() as s:
                s.execute(
                    insert(CodeStock),
                    [{"resident_code": c, "bundle_request": request_id, "used": False} for c in codes],
                )
                s.execute(update(Setting).where(Setting.key == "pending_bundle_request").values(value=""))
            log.info("received a bundle of %d 住民票コード from J-LIS", len(codes))
            return len(codes)

    def _pending_bundle_request(self) -> str | None:
        # A bundle asked for but not stored (killed in between) is asked for again with the same
        # request id, so J-LIS hands back the same codes instead of wasting a new bundle.
        with self.db.transaction() as s:
            row = s.get(Setting, "pending_bundle_request")
            return row.value if row is not None and row.value else None

    def _take_codes(self, s: Session, n: int) -> list[str]:
        codes = list(
            s.scalars(
                select(CodeStock.resident_code)
                .where(CodeStock.used.is_(False))
                .order_by(CodeStock.resident_code)
                .limit(n)
            )
        )
        if len(codes) < n:
            raise BusinessError("the 住民票コード stock is exhausted; ask J-LIS for a bundle first")
        s.execute(update(CodeStock).where(CodeStock.resident_code.in_(codes)).values(used=True))
        return codes

    # --- initial registration (the register as it stood before numbering) -----------------
    def register_households(self, households: Sequence[Any], as_of: dt.date) -> int:
        """Load households (synth.HouseholdSpec) into an empty register, codes from the stock."""
        total = sum(len(h.members) for h in households)
        self.ensure_code_stock(total)
        with self.db.transaction() as s:
            codes = self._take_codes(s, total)
            h_first = self._next_serials(s, "household", len(households))
            p_first = self._next_serials(s, "person", total)
            hh_rows, res_rows, ev_rows, out_rows = [], [], [], []
            base_hid = (s.scalar(select(func.max(Household.id))) or 0) + 1
            base_rid = (s.scalar(select(func.max(Resident.id))) or 0) + 1
            ts = now()
            i = 0
            for hi, h in enumerate(households):
                hid = base_hid + hi
                hh_rows.append(
                    {
                        "id": hid,
                        "household_number": make_atena_number(h_first + hi),
                        "postal_code": h.postal_code,
                        "address": h.address,
                        "address_extra": h.address_extra,
                        "status": "active",
                    }
                )
                for p in h.members:
                    rid = base_rid + i
                    born_here = p.resident_since == p.birth_date
                    row = {
                        "id": rid,
                        "atena_number": make_atena_number(p_first + i),
                        "household_id": hid,
                        "relationship": p.relationship,
                        "resident_code": codes[i],
                        "my_number": None,
                        "family_name": p.family_name,
                        "given_name": p.given_name,
                        "family_kana": p.family_kana,
                        "given_kana": p.given_kana,
                        "birth_date": p.birth_date,
                        "sex": p.sex,
                        "postal_code": h.postal_code,
                        "address": h.address,
                        "address_extra": h.address_extra,
                        "resident_since": p.resident_since,
                        "address_since": p.resident_since,
                        "previous_address": "",
                        "status": "active",
                        "removed_on": None,
                        "removal_reason": None,
                        "updated_at": ts,
                        **person_keys(p.family_name, p.given_name, p.family_kana, p.given_kana, h.address),
                    }
                    res_rows.append(row)
                    event_type = "出生" if born_here else "国内転入"
                    after = {
                        k: row[k]
                        for k in (
                            "family_name",
                            "given_name",
                            "family_kana",
                            "given_kana",
                            "address",
                            "address_extra",
                            "relationship",
                            "status",
                        )
                    }
                    ev_rows.append(
                        {
                            "resident_id": rid,
                            "event_type": event_type,
                            "event_date": p.resident_since,
                            "notified_on": p.resident_since,
                            "processed_at": ts,
                            "before": {},
                            "after": after,
                        }
                    )
                    record = {
                        "resident_code": codes[i],
                        "my_number": None,
                        "family_name": p.family_name,
                        "given_name": p.given_name,
                        "family_kana": p.family_kana,
                        "given_kana": p.given_kana,
                        "birth_date": p.birth_date.isoformat(),
                        "sex": p.sex,
                        "address": full_address(h.address, h.address_extra),
                        "address_street": h.address,
                        "status": "current",
                        "removal_reason": None,
                    }
                    out_rows.append(
                        {
                            "event_type": "出生" if born_here else "転入",
                            "event_date": p.resident_since,
                            "record": record,
                            "created_at": ts,
                        }
                    )
                    i += 1
            s.execute(insert(Household), hh_rows)
            s.execute(insert(Resident), res_rows)
            sync_id_sequence(s, Household.__table__)  # type: ignore[arg-type]
            sync_id_sequence(s, Resident.__table__)  # type: ignore[arg-type]
            s.execute(insert(ResidentEvent), ev_rows)
            s.execute(insert(CsOutbox), out_rows)
        return total

    # --- flows 1-1 / 1-2: designating numbers ----------------------------------------------
    def residents_without_number(self) -> int:
        with self.db.transaction() as s:
            return (
                s.scalar(
                    select(func.count())
                    .select_from(Resident)
                    .where(Resident.my_number.is_(None), Resident.status == "active")
                )
                or 0
            )

    def designate_numbers(
        self, batch: int = NUMBER_BATCH, progress: Callable[[int], None] | None = None
    ) -> int:
        """Ask J-LIS for the numbers of every active resident who has none and designate them.

        Each batch is one transaction (numbers, 異動履歴, notices, CS outbox); J-LIS answers the same
        number for the same code, so a run killed anywhere can simply be run again.
        """
        done = 0
        last_id = 0
        while True:
            with self.db.transaction() as s:
                rows = s.execute(
                    select(Resident.id, Resident.resident_code)
                    .where(Resident.my_number.is_(None), Resident.status == "active", Resident.id > last_id)
                    .order_by(Resident.id)
                    .limit(batch)
                ).all()
            if not rows:
                return done
            last_id = rows[-1][0]
            answer = self.client.call(
                self.jlis_id, "POST", "/api/numbers/generate", {"resident_codes": [code for _, code in rows]}
            )
            by_code = {n["resident_code"]: validate_my_number(n["my_number"]) for n in answer["numbers"]}
            if set(by_code) != {code for _, code in rows}:
                raise BusinessError("J-LIS answered numbers for other codes than asked")
            self._record_designations(rows, by_code)
            done += len(rows)
            if progress:
                progress(len(rows))

    def _record_designations(self, rows: Sequence[Any], by_code: dict[str, str]) -> None:
        ids = [rid for rid, _ in rows]
        with self.db.transaction() as s:
            # Re-read inside the transaction: skip anyone numbered meanwhile (idempotent re-run).
            residents = list(
                s.scalars(select(Resident).where(Resident.id.in_(ids), Resident.my_number.is_(None)))
            )
            ts = now()
            today = today_jst(ts)
            events, notices, outbox = [], [], []
            for r in residents:
                before = snapshot(r)
                r.my_number = by_code[r.resident_code]
                r.updated_at = ts
                events.append(
                    {
                        "resident_id": r.id,
                        "event_type": "個人番号の職権記載",
                        "event_date": today,
                        "notified_on": None,
                        "processed_at": ts,
                        "before": before,
                        "after": snapshot(r),
                    }
                )
                notices.append(
                    {
                        "resident_id": r.id,
                        "my_number_version": 0,
                        "application_id": self.application_id(r.id, 0),
                        "created_at": ts,
                    }
                )
                outbox.append(
                    {
                        "event_type": "個人番号の職権記載",
                        "event_date": today,
                        "record": identity_record(r),
                        "created_at": ts,
                    }
                )
            s.flush()
            if events:
                s.execute(insert(ResidentEvent), events)
                s.execute(insert(Notice), notices)
                s.execute(insert(CsOutbox), outbox)

    # --- events ---------------------------------------------------------------------------
    def register_birth(
        self, household_id: int, person: PersonInput, notified_on: dt.date | None = None
    ) -> int:
        """出生届 (flow 1-2): a new 住民票 with a code from the stock, then its number, notice and push."""
        today = today_jst()
        person = person.validate(today)
        self.ensure_code_stock(1)
        with self.db.transaction() as s:
            h = self._active_household(s, household_id)
            code = self._take_codes(s, 1)[0]
            serial = self._next_serials(s, "person", 1)
            r = Resident(
                atena_number=make_atena_number(serial),
                household_id=h.id,
                relationship=person.relationship,
                resident_code=code,
                family_name=person.family_name,
                given_name=person.given_name,
                family_kana=person.family_kana,
                given_kana=person.given_kana,
                birth_date=person.birth_date,
                sex=person.sex,
                postal_code=h.postal_code,
                address=h.address,
                address_extra=h.address_extra,
                resident_since=person.birth_date,
                address_since=person.birth_date,
                status="active",
                updated_at=now(),
                **person_keys(
                    person.family_name, person.given_name, person.family_kana, person.given_kana, h.address
                ),
            )
            s.add(r)
            s.flush()
            self._event(s, r, "出生", person.birth_date, None, notified_on or today)
            self._outbox(s, r, "出生", person.birth_date)
            rid, rcode = r.id, r.resident_code
        answer = self.client.call(self.jlis_id, "POST", "/api/numbers/generate", {"resident_codes": [rcode]})
        number = validate_my_number(answer["numbers"][0]["my_number"])
        self._record_designations([(rid, rcode)], {rcode: number})
        return rid

    def move_within(
        self,
        household_id: int,
        postal_code: str,
        address: str,
        address_extra: str,
        moved_on: dt.date,
        notified_on: dt.date | None = None,
    ) -> None:
        """転居: the whole household moves to another address in this municipality."""
        if not address.strip():
            raise BusinessError("the new 住所 is required")
        check_not_future("転居日", moved_on)
        with self.db.transaction() as s:
            h = self._active_household(s, household_id)
            h.postal_code, h.address, h.address_extra = postal_code, address, address_extra
            for r in s.scalars(
                select(Resident).where(Resident.household_id == h.id, Resident.status == "active")
            ):
                before = snapshot(r)
                r.previous_address, r.postal_code, r.address, r.address_extra = (
                    r.address,
                    postal_code,
                    address,
                    address_extra,
                )
                r.address_since, r.updated_at = moved_on, now()
                r.address_key = address_key(address)
                self._event(s, r, "転居", moved_on, before, notified_on)
                self._outbox(s, r, "転居", moved_on)

    def record_death(self, resident_id: int, died_on: dt.date, notified_on: dt.date | None = None) -> None:
        """死亡: the 住民票 is removed (消除) and J-LIS told."""
        check_not_future("死亡日", died_on)
        with self.db.transaction() as s:
            r = self.get_resident(s, resident_id)
            if r.status != "active":
                raise Conflict("this person is not an active resident")
            if died_on < r.birth_date:
                raise BusinessError(
                    f"死亡日 ({died_on.isoformat()}) is before the 生年月日 ({r.birth_date.isoformat()})"
                )
            before = snapshot(r)
            r.status, r.removed_on, r.removal_reason, r.updated_at = "dead", died_on, "死亡", now()
            self._event(s, r, "死亡", died_on, before, notified_on)
            self._outbox(s, r, "死亡", died_on)

    def change_name(
        self,
        resident_id: int,
        family_name: str,
        given_name: str,
        family_kana: str,
        given_kana: str,
        changed_on: dt.date,
    ) -> None:
        """氏名変更 (e.g. marriage): the number does not change."""
        if not family_name.strip() or not given_name.strip():
            raise BusinessError("氏 and 名 are both required")
        check_not_future("変更日", changed_on)
        with self.db.transaction() as s:
            r = self.get_resident(s, resident_id)
            if r.status != "active":
                raise Conflict("this person is not an active resident")
            before = snapshot(r)
            r.family_name, r.given_name = family_name.strip(), given_name.strip()
            r.family_kana, r.given_kana = to_katakana(family_kana.strip()), to_katakana(given_kana.strip())
            r.name_key = name_key(r.family_name + r.given_name)
            r.kana_key = kana_search_key(r.family_kana + r.given_kana)
            r.updated_at = now()
            self._event(s, r, "氏名変更", changed_on, before)
            self._outbox(s, r, "氏名変更", changed_on)

    def change_number(self, resident_id: int, reason: str, requested_on: dt.date | None = None) -> None:
        """個人番号の変更 (番号法7条2項): only when the number may have leaked; J-LIS makes a new one."""
        if not reason.strip():
            raise BusinessError("a reason is required for changing a 個人番号 (番号法7条2項)")
        with self.db.transaction() as s:
            r = self.get_resident(s, resident_id)
            if r.status != "active" or r.my_number is None:
                raise Conflict("only an active resident with a number can have it changed")
            code = r.resident_code
        answer = self.client.call(
            self.jlis_id, "POST", "/api/numbers/change", {"resident_code": code, "reason": reason}
        )
        number = validate_my_number(answer["my_number"])
        with self.db.transaction() as s:
            r = self.get_resident(s, resident_id)
            before = snapshot(r)
            version = (
                s.scalar(select(func.max(Notice.my_number_version)).where(Notice.resident_id == r.id)) or 0
            ) + 1
            r.my_number, r.updated_at = number, now()
            day = requested_on or today_jst()
            self._event(s, r, "個人番号の変更請求", day, before, day)
            s.add(
                Notice(
                    resident_id=r.id,
                    my_number_version=version,
                    application_id=self.application_id(r.id, version),
                    created_at=now(),
                )
            )
            self._outbox(s, r, "個人番号の変更", day)

    def move_out(
        self, household_id: int, destination_lg_code: str, destination_address: str, moved_on: dt.date
    ) -> dict[str, Any]:
        """転出届: the household's 住民票 are removed and a signed 転出証明書 is issued to carry along."""
        with self.db.transaction() as s:
            h = self._active_household(s, household_id)
            members = _active_members(s, h)
            if not members:
                raise BusinessError("the household has no active members")
            persons = []
            for r in members:
                before = snapshot(r)
                r.status, r.removed_on, r.removal_reason, r.updated_at = "moved_out", moved_on, "転出", now()
                self._event(s, r, "国内転出", moved_on, before)
                self._outbox(s, r, "転出", moved_on)
                persons.append(
                    {
                        **identity_record(r),
                        "relationship": r.relationship,
                        "resident_since": r.resident_since.isoformat(),
                    }
                )
            h.status = "dissolved"
            payload = {
                "from_municipality": self.lg_code,
                "from_address": full_address(h.address, h.address_extra),
                "destination_municipality": destination_lg_code,
                "destination_address": destination_address,
                "moved_on": moved_on.isoformat(),
                "persons": persons,
            }
            return sign_document(self.creds, TRANSFER_CERTIFICATE, payload)

    def move_in(
        self,
        certificate: dict[str, Any],
        postal_code: str,
        address: str,
        address_extra: str,
        moved_in_on: dt.date,
    ) -> int:
        """転入届 with a 転出証明書: code and number travel with the person; returns the household id."""
        try:
            signer, payload = verify_document(certificate, self.trust, TRANSFER_CERTIFICATE)
        except SignatureError as exc:
            raise BusinessError(f"the 転出証明書 is not genuine: {exc}") from None
        if payload["destination_municipality"] != self.lg_code:
            raise BusinessError("the 転出証明書 names another destination municipality")
        persons = payload["persons"]
        codes = [p["resident_code"] for p in persons]
        with self.db.transaction() as s:
            if s.scalar(
                select(func.count())
                .select_from(Resident)
                .where(Resident.resident_code.in_(codes), Resident.status == "active")
            ):
                raise Conflict("these persons are already registered here (転入 recorded twice?)")
            first = self._next_serials(s, "household", 1)
            h = Household(
                household_number=make_atena_number(first),
                postal_code=postal_code,
                address=address,
                address_extra=address_extra,
                status="active",
            )
            s.add(h)
            s.flush()
            for p in persons:
                existing = s.scalar(select(Resident).where(Resident.resident_code == p["resident_code"]))
                if existing is not None:  # returning former resident: reuse the 住民票 row
                    r = existing
                    before = snapshot(r)
                else:
                    r = Resident(
                        atena_number=make_atena_number(self._next_serials(s, "person", 1)),
                        resident_code=p["resident_code"],
                    )
                    before = None
                    s.add(r)
                r.household_id, r.relationship = h.id, p["relationship"]
                r.my_number = validate_my_number(p["my_number"]) if p.get("my_number") else None
                r.family_name, r.given_name = p["family_name"], p["given_name"]
                r.family_kana, r.given_kana = p["family_kana"], p["given_kana"]
                r.birth_date, r.sex = dt.date.fromisoformat(p["birth_date"]), int(p["sex"])
                r.postal_code, r.address, r.address_extra = postal_code, address, address_extra
                r.previous_address = payload["from_address"]
                r.resident_since = r.address_since = moved_in_on
                r.status, r.removed_on, r.removal_reason, r.updated_at = "active", None, None, now()
                for k, v in person_keys(
                    r.family_name, r.given_name, r.family_kana, r.given_kana, address
                ).items():
                    setattr(r, k, v)
                s.flush()
                self._event(s, r, "国内転入", moved_in_on, before)
                s.add(
                    PastKey(
                        resident_id=r.id, until=moved_in_on, **previous_address_key(payload["from_address"])
                    )
                )
                self._outbox(s, r, "転入", moved_in_on)
            hid = h.id
        # 転入通知: tell the former municipality the move is complete.
        from_org = signer
        try:
            self.client.call(
                from_org,
                "POST",
                "/api/moves/arrival",
                {"resident_codes": codes, "moved_in_on": moved_in_on.isoformat()},
            )
        except Exception as exc:  # the arrival notice is retried by staff; the 転入 itself stands
            log.warning("転入通知 to the former municipality failed: %s", type(exc).__name__)
        return hid

    def move_abroad(
        self,
        household_id: int,
        moved_on: dt.date,
        destination_country: str,
        resident_ids: Sequence[int] | None = None,
        notified_on: dt.date | None = None,
    ) -> list[int]:
        """国外転出: the persons leave Japan; their 住民票 are removed with 消除事由 国外転出.

        No 転出証明書 (no municipality receives them); J-LIS, on the push, revokes both electronic
        certificates and abolishes the card.  ``resident_ids`` picks members of the household (all
        active members when None); the 世帯主 may leave alone only if the whole household goes."""
        if not destination_country.strip():
            raise BusinessError(
                "the 転出先 country is required for a 国外転出 (転出先の国名を入力してください)"
            )
        with self.db.transaction() as s:
            h = self._active_household(s, household_id)
            members = _active_members(s, h)
            leaving = members if resident_ids is None else [r for r in members if r.id in set(resident_ids)]
            if not leaving or (resident_ids is not None and len(leaving) != len(set(resident_ids))):
                raise BusinessError(
                    "choose active members of this household (この世帯の住民を選んでください)"
                )
            staying = [r for r in members if r not in leaving]
            if staying and any(r.relationship == "世帯主" for r in leaving):
                raise BusinessError(
                    "the 世帯主 cannot leave while others stay: record a 世帯主変更 first "
                    "(世帯主のみの国外転出には先に世帯主変更が必要です)"
                )
            for r in leaving:
                if moved_on < r.birth_date:
                    raise BusinessError(f"転出日 ({moved_on.isoformat()}) is before a 生年月日")
                before = snapshot(r)
                r.status, r.removed_on, r.removal_reason, r.updated_at = "moved_out", moved_on, ABROAD, now()
                self._event(
                    s, r, ABROAD, moved_on, before, notified_on, {"destination": destination_country.strip()}
                )
                self._outbox(s, r, ABROAD, moved_on)
            if not staying:
                h.status = "dissolved"
            return [r.id for r in leaving]

    def move_in_from_abroad(
        self,
        person: PersonInput,
        postal_code: str,
        address: str,
        address_extra: str,
        moved_in_on: dt.date,
        from_country: str,
        notified_on: dt.date | None = None,
    ) -> int:
        """国外からの転入: a person arriving from abroad with no 転出証明書 becomes 世帯主 of a new
        household, with a 住民票コード from the stock and a 個人番号 from J-LIS (as at a birth).

        Returns the resident id.  A returning person who already had a code is not looked up on
        住基ネット here (README: limitations)."""
        person = person.validate(today_jst())
        problems = []
        if not address.strip():
            problems.append("住所 is required")
        if not from_country.strip():
            problems.append("転入前の国 (the country arrived from) is required")
        if not (len(postal_code) == 7 and postal_code.isdigit()):
            problems.append("郵便番号 must be 7 digits")
        if moved_in_on < person.birth_date:
            problems.append("転入日 is before the 生年月日")
        if moved_in_on > today_jst():
            problems.append("転入日 is in the future")
        if problems:
            raise BusinessError("; ".join(problems))
        self.ensure_code_stock(1)
        with self.db.transaction() as s:
            code = self._take_codes(s, 1)[0]
            h = Household(
                household_number=make_atena_number(self._next_serials(s, "household", 1)),
                postal_code=postal_code,
                address=address,
                address_extra=address_extra,
                status="active",
            )
            s.add(h)
            s.flush()
            r = Resident(
                atena_number=make_atena_number(self._next_serials(s, "person", 1)),
                household_id=h.id,
                relationship=person.relationship,
                resident_code=code,
                family_name=person.family_name,
                given_name=person.given_name,
                family_kana=person.family_kana,
                given_kana=person.given_kana,
                birth_date=person.birth_date,
                sex=person.sex,
                postal_code=postal_code,
                address=address,
                address_extra=address_extra,
                resident_since=moved_in_on,
                address_since=moved_in_on,
                previous_address=from_country.strip(),
                status="active",
                updated_at=now(),
                **person_keys(
                    person.family_name, person.given_name, person.family_kana, person.given_kana, address
                ),
            )
            s.add(r)
            s.flush()
            self._event(
                s, r, "国外転入", moved_in_on, None, notified_on, {"from_country": from_country.strip()}
            )
            self._outbox(s, r, "転入", moved_in_on)
            rid, rcode = r.id, r.resident_code
        answer = self.client.call(self.jlis_id, "POST", "/api/numbers/generate", {"resident_codes": [rcode]})
        self._record_designations(
            [(rid, rcode)], {rcode: validate_my_number(answer["numbers"][0]["my_number"])}
        )
        return rid

    def record_arrival_notice(
        self, sender_lg_code: str, resident_codes: Sequence[str], moved_in_on: dt.date
    ) -> int:
        """転入通知受理: another municipality reports that our former residents arrived there."""
        n = 0
        with self.db.transaction() as s:
            for r in s.scalars(
                select(Resident).where(
                    Resident.resident_code.in_(list(resident_codes)), Resident.status == "moved_out"
                )
            ):
                before = snapshot(r)
                self._event(s, r, "転入通知受理", moved_in_on, before)
                n += 1
        if n != len(resident_codes):
            raise NotFound("some of these persons did not move out of this municipality")
        return n

    # --- CS push ---------------------------------------------------------------------------
    def pending_push(self) -> int:
        with self.db.transaction() as s:
            return s.scalar(select(func.count()).select_from(CsOutbox).where(CsOutbox.sent_at.is_(None))) or 0

    def push(self) -> int:
        """Send the CS outbox to the prefecture in order; an unreachable prefecture leaves it pending."""
        sent = 0
        with self._push_lock:
            while True:
                with self.db.transaction() as s:
                    batch = s.execute(
                        select(CsOutbox.seq, CsOutbox.event_type, CsOutbox.event_date, CsOutbox.record)
                        .where(CsOutbox.sent_at.is_(None))
                        .order_by(CsOutbox.seq)
                        .limit(PUSH_BATCH)
                    ).all()
                if not batch:
                    return sent
                changes = [
                    {
                        "source": self.lg_code,
                        "seq": seq,
                        "event_type": et,
                        "event_date": ed.isoformat(),
                        "record": rec,
                    }
                    for seq, et, ed, rec in batch
                ]
                self.client.call(self.prefecture_id, "POST", "/api/identity/changes", {"changes": changes})
                with self.db.transaction() as s:
                    s.execute(
                        update(CsOutbox)
                        .where(CsOutbox.seq.in_([c["seq"] for c in changes]))
                        .values(sent_at=now())
                    )
                sent += len(changes)

    # --- reading ------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        with self.db.transaction() as s:
            active = (
                s.scalar(select(func.count()).select_from(Resident).where(Resident.status == "active")) or 0
            )
            numbered = (
                s.scalar(
                    select(func.count())
                    .select_from(Resident)
                    .where(Resident.status == "active", Resident.my_number.is_not(None))
                )
                or 0
            )
            notices = s.scalar(select(func.count()).select_from(Notice)) or 0
            return {"residents": active, "numbered": numbered, "notices": notices}
