"""The legal table (番号法 別表第二, since 2023 a 主務省令): who may ask whom for what, for which 事務.

The table is data the network's operator edits: a JSON file in the data directory
(``linkage/legal-table.json`` by default, ``settings.linkage.legal_table`` in the topology).  Each
row is one 項 flattened to one provider kind::

    {"id": "child-allowance", "querier": "municipality", "affair": "…", "provider": "municipality",
     "info": ["地方税関係情報", "住民票関係情報"], "illustrative": true, "source": "…"}

``querier`` and ``provider`` are organisation kinds (``municipality``, ``prefecture``, ``agency``);
``querier_orgs`` / ``provider_orgs`` may narrow a row to named organisations (e.g. ``["nenkin"]``
for 厚生労働大臣 (日本年金機構)).  ``info`` names categories as their layouts name them.  The rows
kojinbango writes are illustrative (DOMAIN.md §8): their shapes are right, their 項 numbers and
wording are not verified, and each says so.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kojinbango.common.layouts import CATEGORIES

log = logging.getLogger(__name__)
DEFAULT_PATH = "linkage/legal-table.json"
ROW_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
KINDS = ("municipality", "prefecture", "agency")
ILLUSTRATIVE = "illustrative row (DOMAIN.md §8): shape as in 番号法 別表第二 / its 主務省令; 項 number and wording unverified"


class LegalTableError(Exception):
    """The legal table file is missing, unreadable or contradicts itself."""


@dataclass(frozen=True)
class Row:
    id: str
    querier: str
    querier_name: str
    affair: str
    provider: str
    provider_name: str
    info: tuple[str, ...]
    illustrative: bool
    source: str
    querier_orgs: tuple[str, ...] = ()
    provider_orgs: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "querier": self.querier,
            "querier_name": self.querier_name,
            "affair": self.affair,
            "provider": self.provider,
            "provider_name": self.provider_name,
            "info": list(self.info),
            "illustrative": self.illustrative,
            "source": self.source,
        }
        if self.querier_orgs:
            out["querier_orgs"] = list(self.querier_orgs)
        if self.provider_orgs:
            out["provider_orgs"] = list(self.provider_orgs)
        return out


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    row: Row | None = None


def _row(i: int, raw: Any) -> Row:
    where = f"row {i + 1}"
    if not isinstance(raw, dict):
        raise LegalTableError(f"{where} is not an object")
    problems = []
    rid = raw.get("id")
    if not isinstance(rid, str) or not ROW_ID.match(rid):
        problems.append("id must be 1-40 of a-z, 0-9 and '-'")
    for key in ("querier", "provider"):
        if raw.get(key) not in KINDS:
            problems.append(f"{key} must be one of {', '.join(KINDS)}")
    affair = raw.get("affair")
    if not isinstance(affair, str) or not affair.strip():
        problems.append("affair (事務) is empty")
    info = raw.get("info")
    if not isinstance(info, list) or not info:
        problems.append("info must be a non-empty list of categories")
    else:
        unknown = [c for c in info if c not in CATEGORIES]
        if unknown:
            problems.append(f"info names unknown categories {unknown} (known: {', '.join(CATEGORIES)})")
    for key in ("querier_orgs", "provider_orgs"):
        v = raw.get(key, [])
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            problems.append(f"{key} must be a list of organisation ids")
    if problems:
        raise LegalTableError(f"{where}: " + "; ".join(problems))
    assert isinstance(rid, str) and isinstance(affair, str) and isinstance(info, list)
    return Row(
        id=rid,
        querier=raw["querier"],
        querier_name=str(raw.get("querier_name", raw["querier"])),
        affair=affair.strip(),
        provider=raw["provider"],
        provider_name=str(raw.get("provider_name", raw["provider"])),
        info=tuple(info),
        illustrative=bool(raw.get("illustrative", False)),
        source=str(raw.get("source", "")),
        querier_orgs=tuple(raw.get("querier_orgs", [])),
        provider_orgs=tuple(raw.get("provider_orgs", [])),
    )


def parse(text: str, origin: str = "legal table") -> list[Row]:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LegalTableError(f"{origin} is not valid JSON: {exc}") from None
    rows_raw = raw.get("rows") if isinstance(raw, dict) else None
    if not isinstance(rows_raw, list):
        raise LegalTableError(f"{origin} has no list of rows")
    rows = [_row(i, r) for i, r in enumerate(rows_raw)]
    seen: set[str] = set()
    for r in rows:
        if r.id in seen:
            raise LegalTableError(f"{origin}: row id {r.id!r} appears twice")
        seen.add(r.id)
    return rows


def load(path: Path) -> list[Row]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LegalTableError(f"the legal table {path} does not exist") from None
    return parse(text, str(path))


class LegalTable:
    """The table as the network reads it: reloaded when the operator changes the file."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._rows: dict[str, Row] = {}
        self._broken: str | None = None
        self.reload()

    def reload(self) -> None:
        st = os.stat(self.path)
        rows = load(self.path)
        with self._lock:
            self._rows = {r.id: r for r in rows}
            self._stamp = (st.st_mtime_ns, st.st_size)

    def _fresh(self) -> dict[str, Row]:
        try:
            st = os.stat(self.path)
            if (st.st_mtime_ns, st.st_size) != self._stamp:
                self.reload()
        except (OSError, LegalTableError) as exc:
            # Keep the last good table; say so once per broken version of the file.
            if self._broken != str(exc):
                self._broken = str(exc)
                log.error("the legal table was not reloaded (the last good one stays in force): %s", exc)
        return self._rows

    def rows(self) -> list[Row]:
        return list(self._fresh().values())

    def authorise(
        self, querier_kind: str, querier_id: str, provider_kind: str, provider_id: str, affair: str, info: str
    ) -> Decision:
        """May ``querier`` ask ``provider`` for ``info`` in the 事務 of row ``affair``?"""
        row = self._fresh().get(affair)
        if row is None:
            return Decision(False, f"no row {affair!r} in the legal table")
        if querier_id == provider_id:
            return Decision(False, "an organisation does not query itself over the network", row)
        if row.querier != querier_kind or (row.querier_orgs and querier_id not in row.querier_orgs):
            return Decision(False, f"row {row.id} does not let a {querier_kind} ({querier_id}) ask", row)
        if row.provider != provider_kind or (row.provider_orgs and provider_id not in row.provider_orgs):
            return Decision(
                False, f"row {row.id} does not name a {provider_kind} ({provider_id}) as provider", row
            )
        if info not in row.info:
            return Decision(
                False, f"row {row.id} does not allow {info} (it allows {', '.join(row.info)})", row
            )
        return Decision(True, "allowed", row)


def _r(
    rid: str,
    querier: str,
    querier_name: str,
    affair: str,
    provider: str,
    provider_name: str,
    info: list[str],
    **extra: Any,
) -> dict[str, Any]:
    row = {
        "id": rid,
        "querier": querier,
        "querier_name": querier_name,
        "affair": affair,
        "provider": provider,
        "provider_name": provider_name,
        "info": info,
        "illustrative": True,
        "source": ILLUSTRATIVE,
    }
    row.update(extra)
    return row


TAX, JUMIN, JIDO, NENKIN = CATEGORIES
NENKIN_ORGS = {"provider_orgs": ["nenkin"]}


def default_rows() -> list[dict[str, Any]]:
    """The illustrative rows of DOMAIN.md §8, flattened to one provider kind each."""
    return [
        _r("child-allowance", "municipality", "市町村長", "児童手当法による児童手当又は特例給付の支給に関する事務",
           "municipality", "市町村長", [TAX, JUMIN]),
        _r("child-allowance-transfer", "municipality", "市町村長",
           "児童手当法による児童手当の支給に関する事務 (転入者の前住所地における受給状況の確認)",
           "municipality", "市町村長", [JIDO],
           source=ILLUSTRATIVE + "; added by kojinbango to exercise 児童手当関係情報"),
        _r("nhi-municipality", "municipality", "市町村長", "国民健康保険法による保険給付の支給又は保険料の徴収に関する事務",
           "municipality", "市町村長", [TAX, JUMIN]),
        _r("nhi-pension", "municipality", "市町村長", "国民健康保険法による保険給付の支給又は保険料の徴収に関する事務",
           "agency", "厚生労働大臣 (日本年金機構)", [NENKIN], **NENKIN_ORGS),
        _r("ltc-municipality", "municipality", "市町村長", "介護保険法による保険給付の支給又は保険料の徴収に関する事務",
           "municipality", "市町村長", [TAX, JUMIN]),
        _r("ltc-pension", "municipality", "市町村長", "介護保険法による保険給付の支給又は保険料の徴収に関する事務",
           "agency", "日本年金機構", [NENKIN], **NENKIN_ORGS),
        _r("public-assistance-municipality", "prefecture", "都道府県知事等", "生活保護法による保護の決定及び実施に関する事務",
           "municipality", "市町村長", [TAX, JUMIN]),
        _r("public-assistance-pension", "prefecture", "都道府県知事等", "生活保護法による保護の決定及び実施に関する事務",
           "agency", "厚生労働大臣 (日本年金機構)", [NENKIN], **NENKIN_ORGS),
        _r("child-rearing-municipality", "prefecture", "都道府県知事等", "児童扶養手当法による児童扶養手当の支給に関する事務",
           "municipality", "市町村長", [TAX, JUMIN]),
        _r("childcare", "municipality", "市町村長", "子ども・子育て支援法による支給認定又は保育料の徴収に関する事務",
           "municipality", "市町村長", [TAX, JUMIN]),
        _r("public-housing", "municipality", "都道府県知事又は市町村長 (公営住宅法の事業主体)",
           "公営住宅法による公営住宅の管理 (家賃の決定) に関する事務", "municipality", "市町村長", [TAX, JUMIN]),
        _r("pension-exemption", "agency", "厚生労働大臣 (日本年金機構)", "国民年金法による保険料の免除に関する事務",
           "municipality", "市町村長", [TAX, JUMIN], querier_orgs=["nenkin"]),
    ]  # fmt: skip


def write_default(path: Path) -> None:
    """Write the illustrative table (only when there is none: the operator's edits are kept)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "note": (
            "番号法 別表第二 (令和5年改正後は主務省令) as data. Edit freely: the network reloads this file on change. "
            "Rows marked illustrative are not the real 項 texts (DOMAIN.md §8)."
        ),
        "version": 1,
        "rows": default_rows(),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(path)
