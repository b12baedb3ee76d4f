"""Business systems' records: CSV import as municipalities move data, and bulk loading.

``import_csv`` reads UTF-8 CSV with the header ``legacy_id,name,kana,birth_date,sex,address``
(birth_date 西暦 YYYY-MM-DD or 和暦 like 昭和55年4月1日; sex 1 男 / 2 女 / 3 その他; kana may be empty).
Every row it cannot read is reported with its line number and what is wrong; the other rows are
imported in one transaction.  Re-importing a file is harmless: unchanged rows stay as they are,
changed rows are updated (and relinked by the next ``link run``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update

from kojinbango.common.db import Database
from kojinbango.common.errors import BusinessError
from kojinbango.domain.address import address_key
from kojinbango.domain.clock import utc_now as now
from kojinbango.domain.jst import today_jst
from kojinbango.domain.text import kana_search_key, name_key, to_katakana
from kojinbango.domain.wareki import DateParseError, parse_date
from kojinbango.municipality.business.models import BusinessRecord

CSV_HEADER = ("legacy_id", "name", "kana", "birth_date", "sex", "address")
SEX_LABELS = {"1": 1, "2": 2, "3": 3, "男": 1, "女": 2, "その他": 3}
SYSTEM_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")
MAX_ERRORS_SHOWN = 1000


def validate_system(system: str) -> str:
    """A business system's name: 1-40 lower-case letters, digits, '_' or '-' (e.g. tax, welfare)."""
    s = system.strip()
    if not s or len(s) > 40 or any(c not in SYSTEM_NAME_CHARS for c in s):
        raise BusinessError(
            "a business system name is 1-40 lower-case letters, digits, '_' or '-' (e.g. tax, welfare)"
        )
    return s


def _is_kana(text: str) -> bool:
    kata = to_katakana(text)
    return all("\u30a0" <= c <= "\u30ff" or c.isspace() or c in "ー－-‐・･ﾞﾟ゛゜" for c in kata)


@dataclass(frozen=True)
class RecordInput:
    """One business record as given (validated by ``parse_row``)."""

    legacy_id: str
    name: str
    kana: str
    birth_date_text: str
    birth_date: dt.date
    sex: int
    address: str

    def keys(self) -> dict[str, str]:
        return {
            "name_key": name_key(self.name),
            "kana_key": kana_search_key(self.kana) if self.kana.strip() else "",
            "address_key": address_key(self.address),
        }

    def same_as(self, r: BusinessRecord) -> bool:
        return (self.name, self.kana, self.birth_date_text, self.sex, self.address) == (
            r.name,
            r.kana,
            r.birth_date_text,
            r.sex,
            r.address,
        )


def parse_row(values: dict[str, str], today: dt.date) -> RecordInput:
    """Validate one row; BusinessError says every field that is wrong (never quoting identifiers)."""
    problems: list[str] = []
    legacy_id = values.get("legacy_id", "").strip()
    if not legacy_id:
        problems.append("legacy_id is empty")
    elif len(legacy_id) > 40:
        problems.append("legacy_id is longer than 40 characters")
    name = values.get("name", "").strip()
    if not name:
        problems.append("name is empty")
    elif len(name) > 200:
        problems.append("name is longer than 200 characters")
    kana = values.get("kana", "").strip()
    if kana and not _is_kana(kana):
        problems.append("kana must be katakana or hiragana (or empty)")
    elif len(kana) > 200:
        problems.append("kana is longer than 200 characters")
    birth_text = values.get("birth_date", "").strip()
    birth: dt.date | None = None
    if not birth_text:
        problems.append("birth_date is empty")
    else:
        try:
            birth = parse_date(birth_text)
        except DateParseError as exc:
            problems.append(f"birth_date: {exc}")
        else:
            if birth > today:
                problems.append("birth_date is in the future")
    sex = SEX_LABELS.get(values.get("sex", "").strip())
    if sex is None:
        problems.append("sex must be 1 (男), 2 (女) or 3 (その他)")
    address = values.get("address", "").strip()
    if not address:
        problems.append("address is empty")
    elif len(address) > 400:
        problems.append("address is longer than 400 characters")
    if problems or birth is None or sex is None:
        raise BusinessError("; ".join(problems))
    return RecordInput(legacy_id, name, kana, birth_text, birth, sex, address)


@dataclass
class ImportResult:
    system: str
    rows: int = 0
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "rows": self.rows,
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": len(self.errors),
            "errors": self.errors[:MAX_ERRORS_SHOWN],
        }


class BusinessService:
    """The business systems' records in the municipality's database."""

    def __init__(self, db: Database):
        self.db = db

    def read_csv(self, data: bytes, today: dt.date) -> tuple[list[tuple[int, RecordInput]], ImportResult]:
        """Parse CSV bytes: (line, record) for readable rows, and the rejected rows with line numbers."""
        result = ImportResult(system="")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise BusinessError(
                f"the file is not UTF-8 (byte {exc.start} cannot be read); save it as UTF-8 and retry"
            ) from None
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader)
        except StopIteration:
            raise BusinessError("the file is empty; expected the header " + ",".join(CSV_HEADER)) from None
        except csv.Error as exc:
            raise BusinessError(f"line 1: the header is not valid CSV ({exc})") from None
        columns = [h.strip() for h in header]
        missing = [c for c in CSV_HEADER if c not in columns]
        if missing:
            raise BusinessError(
                f"line 1: the header lacks {', '.join(missing)}; expected " + ",".join(CSV_HEADER)
            )
        dupes = {c for c in columns if columns.count(c) > 1}
        if dupes:
            raise BusinessError(f"line 1: the header names {', '.join(sorted(dupes))} twice")
        rows: list[tuple[int, RecordInput]] = []
        seen: dict[str, int] = {}
        line = reader.line_num
        while True:
            start = line + 1
            try:
                raw = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                result.errors.append({"line": start, "error": f"not valid CSV ({exc})"})
                line = reader.line_num
                continue
            line = reader.line_num
            if not raw or all(not v.strip() for v in raw):
                continue  # blank line
            result.rows += 1
            if len(raw) != len(columns):
                result.errors.append(
                    {"line": start, "error": f"expected {len(columns)} fields, found {len(raw)}"}
                )
                continue
            try:
                rec = parse_row(dict(zip(columns, raw, strict=True)), today)
            except BusinessError as exc:
                result.errors.append({"line": start, "error": str(exc)})
                continue
            if rec.legacy_id in seen:
                result.errors.append(
                    {"line": start, "error": f"legacy_id repeats the one on line {seen[rec.legacy_id]}"}
                )
                continue
            seen[rec.legacy_id] = start
            rows.append((start, rec))
        return rows, result

    def import_csv(
        self, system: str, path: Path, today: dt.date | None = None, strict: bool = False
    ) -> ImportResult:
        """Import a CSV file into business system ``system``: one transaction for all readable rows.

        With ``strict`` any rejected row rejects the whole file (nothing is written).
        """
        system = validate_system(system)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BusinessError(f"cannot read {path}: {exc.strerror}") from None
        rows, result = self.read_csv(data, today or today_jst())
        result.system = system
        if strict and result.errors:
            return result
        counts = self.upsert(system, [r for _, r in rows], source=path.name)
        result.imported, result.updated, result.unchanged = counts
        return result

    def upsert(self, system: str, records: Sequence[RecordInput], source: str = "") -> tuple[int, int, int]:
        """Insert new records, update changed ones; returns (imported, updated, unchanged)."""
        system = validate_system(system)
        ts = now()
        imported = updated = unchanged = 0
        with self.db.transaction() as s:
            existing: dict[str, BusinessRecord] = {}
            ids = [r.legacy_id for r in records]
            for i in range(0, len(ids), 900):
                for row in s.scalars(
                    select(BusinessRecord).where(
                        BusinessRecord.system == system, BusinessRecord.legacy_id.in_(ids[i : i + 900])
                    )
                ):
                    existing[row.legacy_id] = row
            new_rows: list[dict[str, Any]] = []
            for rec in records:
                old = existing.get(rec.legacy_id)
                if old is None:
                    new_rows.append(self._row(system, rec, source, ts))
                    imported += 1
                elif rec.same_as(old):
                    unchanged += 1
                else:
                    s.execute(
                        update(BusinessRecord)
                        .where(BusinessRecord.id == old.id)
                        .values(
                            name=rec.name,
                            kana=rec.kana,
                            birth_date_text=rec.birth_date_text,
                            birth_date=rec.birth_date,
                            sex=rec.sex,
                            address=rec.address,
                            source=source,
                            updated_at=ts,
                            **rec.keys(),
                        )
                    )
                    updated += 1
            for i in range(0, len(new_rows), 5000):
                s.execute(insert(BusinessRecord), new_rows[i : i + 5000])
        return imported, updated, unchanged

    @staticmethod
    def _row(system: str, rec: RecordInput, source: str, ts: dt.datetime) -> dict[str, Any]:
        return {
            "system": system,
            "legacy_id": rec.legacy_id,
            "name": rec.name,
            "kana": rec.kana,
            "birth_date_text": rec.birth_date_text,
            "birth_date": rec.birth_date,
            "sex": rec.sex,
            "address": rec.address,
            "source": source,
            "imported_at": ts,
            "updated_at": ts,
            **rec.keys(),
        }

    def record_ids(self, system: str, legacy_ids: Iterable[str]) -> dict[str, int]:
        ids = list(legacy_ids)
        out: dict[str, int] = {}
        with self.db.transaction() as s:
            for i in range(0, len(ids), 900):
                for lid, rid in s.execute(
                    select(BusinessRecord.legacy_id, BusinessRecord.id).where(
                        BusinessRecord.system == system, BusinessRecord.legacy_id.in_(ids[i : i + 900])
                    )
                ):
                    out[lid] = rid
        return out

    def systems(self) -> list[str]:
        with self.db.transaction() as s:
            return list(s.scalars(select(BusinessRecord.system).distinct().order_by(BusinessRecord.system)))
