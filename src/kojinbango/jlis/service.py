"""J-LIS services: 住民票コード bundles, number generation (flows 1-1 and 1-2), the 住基ネット store."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from kojinbango.common.db import Database
from kojinbango.common.errors import BusinessError, NotFound
from kojinbango.domain.address import address_key
from kojinbango.domain.clock import utc_now as _now
from kojinbango.domain.identifiers import validate_my_number, validate_resident_code
from kojinbango.domain.keys import person_keys
from kojinbango.domain.text import name_key
from kojinbango.jlis.bulk import persist_issued_numbers
from kojinbango.jlis.models import CodeBundle, Counter, IdentityChange, IdentityRecord, IssuedNumber
from kojinbango.jlis.numbering import NumberGenerator

log = logging.getLogger(__name__)

CODE_SERIAL = "resident_code_serial"
MAX_BUNDLE = 1_000_000
MAX_NUMBERS_PER_CALL = 50_000
_CHUNK = 900  # stays below every backend's bound-parameter limit


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass(frozen=True)
class LookupResult:
    """The answer of a 住基ネット lookup: found (one person), not_found, ambiguous or insufficient."""

    status: str
    record: IdentityRecord | None = None
    candidates: int = 0
    reason: str = ""


class JlisService:
    """What J-LIS does, over its own database.  Callers are authenticated organisations."""

    def __init__(self, db: Database, generator: NumberGenerator):
        self.db = db
        self.generator = generator
        # Run inside the transaction that applies 本人確認情報 changes, with the touched records
        # (住民票コード → record after the changes): the card centre revokes certificates there.
        self.change_hooks: list[Callable[[Session, dict[str, dict[str, Any]]], None]] = []

    # --- 住民票コード stock -------------------------------------------------------------
    def issue_bundle(self, municipality: str, count: int, request_id: str) -> list[str]:
        """Hand ``municipality`` a bundle of unused 住民票コード (空きコード); idempotent per request id."""
        if not 1 <= count <= MAX_BUNDLE:
            raise BusinessError(f"bundle size must be between 1 and {MAX_BUNDLE}, got {count}")
        with self.db.transaction() as s:
            bundle = s.scalar(select(CodeBundle).where(CodeBundle.request_id == request_id))
            if bundle is None:
                counter = s.get(Counter, CODE_SERIAL, with_for_update=True)
                if counter is None:
                    counter = Counter(name=CODE_SERIAL, value=0)
                    s.add(counter)
                    s.flush()
                bundle = CodeBundle(
                    request_id=request_id,
                    municipality=municipality,
                    start_serial=counter.value,
                    count=count,
                    issued_at=_now(),
                )
                counter.value += count
                s.add(bundle)
            elif bundle.municipality != municipality:
                raise BusinessError("this bundle request id belongs to another municipality")
            start, n = bundle.start_serial, bundle.count
        codes = self.generator.resident_codes_batch(start, n)
        return [f"{int(c):011d}" for c in codes]

    # --- 個人番号とすべき番号の生成 (番号法8条) -----------------------------------------------
    def generate_numbers(self, municipality: str, resident_codes: Sequence[str]) -> dict[str, str]:
        """Numbers for these 住民票コード: the current one if already generated, else a new one (version 0)."""
        if len(resident_codes) > MAX_NUMBERS_PER_CALL:
            raise BusinessError(f"at most {MAX_NUMBERS_PER_CALL} codes per call")
        codes = [validate_resident_code(c) for c in resident_codes]
        if len(set(codes)) != len(codes):
            raise BusinessError("the same 住民票コード appears twice in one request")
        result: dict[str, str] = {}
        with self.db.transaction() as s:
            for chunk in _chunks(codes):
                rows = s.execute(
                    select(IssuedNumber.resident_code, IssuedNumber.version, IssuedNumber.my_number)
                    .where(IssuedNumber.resident_code.in_(chunk))
                    .order_by(IssuedNumber.version)
                ).all()
                for code, _version, number in rows:
                    result[code] = number  # ordered by version: the newest wins
        fresh = [c for c in codes if c not in result]
        if fresh:
            bases = np.fromiter((int(c[:10]) for c in fresh), dtype=np.int64, count=len(fresh))
            numbers = self.generator.my_numbers_batch(bases, 0)
            texts = [f"{int(n):012d}" for n in numbers]
            # One bulk transaction (COPY on PostgreSQL); the primary key refuses a concurrent duplicate.
            persist_issued_numbers(
                self.db.engine,
                IssuedNumber.__table__,  # type: ignore[arg-type]
                {
                    "resident_code": np.array(fresh),
                    "version": np.zeros(len(fresh), dtype=np.int64),
                    "my_number": np.array(texts),
                    "municipality": municipality,
                    "issued_at": _now(),
                },
            )
            result.update(zip(fresh, texts, strict=True))
        log.info("generated numbers for %d codes (%d new) for %s", len(codes), len(fresh), municipality)
        return {c: result[c] for c in codes}

    def change_number(self, municipality: str, resident_code: str) -> str:
        """個人番号の変更 (番号法7条2項): a new number that was never issued before."""
        code = validate_resident_code(resident_code)
        with self.db.transaction() as s:
            current = s.scalar(
                select(func.max(IssuedNumber.version)).where(IssuedNumber.resident_code == code)
            )
            if current is None:
                raise NotFound("no number has been generated for this 住民票コード")
            version = current + 1
            if version > NumberGenerator.MAX_VERSION:
                raise BusinessError(
                    "this 住民票コード has used all its number versions; change the 住民票コード"
                )
            number = self.generator.my_number(code, version)
            s.add(
                IssuedNumber(
                    resident_code=code,
                    version=version,
                    my_number=number,
                    municipality=municipality,
                    issued_at=_now(),
                )
            )
        return number

    # --- 住基ネット: 本人確認情報 -----------------------------------------------------------
    def apply_changes(self, changes: Sequence[dict[str, Any]]) -> int:
        """Apply 本人確認情報 changes relayed by a prefecture, in order; idempotent per (source, seq)."""
        if not changes:
            return 0
        with self.db.transaction() as s:
            seen: set[tuple[str, int]] = set()
            by_source: dict[str, list[int]] = {}
            for ch in changes:
                by_source.setdefault(str(ch["source"]), []).append(int(ch["seq"]))
            for source, seqs in by_source.items():
                for chunk in _chunks(seqs):
                    seen.update(
                        (source, q)
                        for q in s.scalars(
                            select(IdentityChange.seq).where(
                                IdentityChange.source == source, IdentityChange.seq.in_(chunk)
                            )
                        )
                    )
            fresh = []
            for ch in changes:
                key = (str(ch["source"]), int(ch["seq"]))
                if key not in seen:
                    seen.add(key)
                    fresh.append(ch)
            codes = sorted({validate_resident_code(ch["record"]["resident_code"]) for ch in fresh})
            current: dict[str, dict[str, Any]] = {}
            for chunk in _chunks(codes):
                for rec in s.scalars(select(IdentityRecord).where(IdentityRecord.resident_code.in_(chunk))):
                    current[rec.resident_code] = {c: getattr(rec, c) for c in _RECORD_COLUMNS}
            existing = set(current)
            ts = _now()
            rows = []
            for ch in fresh:
                event_date = dt.date.fromisoformat(str(ch["event_date"]))
                rows.append(
                    {
                        "source": str(ch["source"]),
                        "seq": int(ch["seq"]),
                        "event_type": str(ch["event_type"]),
                        "event_date": event_date,
                        "resident_code": ch["record"]["resident_code"],
                        "payload": ch["record"],
                        "received_at": ts,
                    }
                )
                updated = _apply_one(
                    current.get(ch["record"]["resident_code"]),
                    str(ch["source"]),
                    str(ch["event_type"]),
                    event_date,
                    ch["record"],
                    ts,
                )
                if updated is not None:
                    current[updated["resident_code"]] = updated
            if rows:
                s.execute(insert(IdentityChange), rows)
            touched = {r["resident_code"] for r in rows}
            new_rows = [current[c] for c in touched if c not in existing and c in current]
            upd_rows = [current[c] for c in touched if c in existing]
            if new_rows:
                s.execute(insert(IdentityRecord), new_rows)
            if upd_rows:
                s.execute(update(IdentityRecord), upd_rows)
            if self.change_hooks:
                records = {c: current[c] for c in touched if c in current}
                for hook in self.change_hooks:
                    hook(s, records)
        return len(fresh)

    def lookup_by_number(self, my_number: str) -> LookupResult:
        number = validate_my_number(my_number)
        with self.db.transaction() as s:
            rec = s.scalar(select(IdentityRecord).where(IdentityRecord.my_number == number))
            return LookupResult("found", rec, 1) if rec else LookupResult("not_found")

    def lookup_by_code(self, resident_code: str) -> LookupResult:
        code = validate_resident_code(resident_code)
        with self.db.transaction() as s:
            rec = s.get(IdentityRecord, code)
            return LookupResult("found", rec, 1) if rec else LookupResult("not_found")

    def lookup_by_attributes(
        self,
        name: str,
        birth_date: dt.date,
        sex: int | None = None,
        address: str | None = None,
    ) -> LookupResult:
        """4情報 lookup (DOMAIN.md §9.6): a person only when all four agree after normalisation,
        or 氏名 + 生年月日 + 住所; several matches answer "ambiguous", never a first hit."""
        if not address:
            return LookupResult(
                "insufficient",
                reason="a person is identified only by all four 情報 or by 氏名・生年月日・住所; 住所 is missing",
            )
        nkey = name_key(name)
        # Compare street addresses: the asked address may carry a 方書 after a space, or none.
        akeys = {address_key(address)} | {address_key(address.split(sep, 1)[0]) for sep in ("\u3000", " ")}
        with self.db.transaction() as s:
            q = select(IdentityRecord).where(
                IdentityRecord.name_key == nkey,
                IdentityRecord.birth_date == birth_date,
                IdentityRecord.address_key.in_(sorted(akeys)),
            )
            if sex is not None:
                q = q.where(IdentityRecord.sex == sex)
            matches = list(s.scalars(q))
        if not matches:
            return LookupResult("not_found")
        if len(matches) > 1:
            return LookupResult("ambiguous", candidates=len(matches), reason="more than one person agrees")
        return LookupResult("found", matches[0], 1)

    def counts(self) -> dict[str, int]:
        with self.db.transaction() as s:
            return {
                "identity_records": s.scalar(select(func.count()).select_from(IdentityRecord)) or 0,
                "numbers_issued": s.scalar(select(func.count()).select_from(IssuedNumber)) or 0,
                "changes_received": s.scalar(select(func.count()).select_from(IdentityChange)) or 0,
            }


_RECORD_COLUMNS = [c.name for c in IdentityRecord.__table__.columns]


def _apply_one(
    current: dict[str, Any] | None,
    source: str,
    event_type: str,
    event_date: dt.date,
    rec: dict[str, Any],
    ts: dt.datetime,
) -> dict[str, Any] | None:
    """The record after one change, or None when the change must not touch the current record."""
    # A municipality speaks for a person only while it holds them; a late 転出 from the old
    # municipality must not undo the 転入 the new one already reported.
    if current is not None and current["municipality"] != source and event_type != "転入":
        return None
    my_number = rec.get("my_number")
    family_kana, given_kana = rec.get("family_kana") or "", rec.get("given_kana") or ""
    return {
        "resident_code": rec["resident_code"],
        "my_number": validate_my_number(my_number) if my_number else None,
        "family_name": rec["family_name"],
        "given_name": rec["given_name"],
        "family_kana": family_kana,
        "given_kana": given_kana,
        "birth_date": dt.date.fromisoformat(str(rec["birth_date"])),
        "sex": int(rec["sex"]),
        "address": rec["address"],
        "municipality": source,
        "status": rec.get("status", "current"),
        "removal_reason": rec.get("removal_reason"),
        "last_event": event_type,
        "last_event_date": event_date,
        "updated_at": ts,
        # The address key leaves out the 方書 (building, room): forms often omit or abbreviate it.
        **person_keys(
            rec["family_name"],
            rec["given_name"],
            family_kana,
            given_kana,
            rec.get("address_street") or rec["address"],
        ),
    }


def record_to_dict(rec: IdentityRecord) -> dict[str, Any]:
    """本人確認情報 as sent to an authorised caller."""
    return {
        "resident_code": rec.resident_code,
        "my_number": rec.my_number,
        "family_name": rec.family_name,
        "given_name": rec.given_name,
        "family_kana": rec.family_kana,
        "given_kana": rec.given_kana,
        "birth_date": rec.birth_date.isoformat(),
        "sex": rec.sex,
        "address": rec.address,
        "municipality": rec.municipality,
        "status": rec.status,
        "removal_reason": rec.removal_reason,
    }
