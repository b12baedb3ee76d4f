"""副本 extraction: what each business system registers at the intermediate server, per person.

Each function reads the 正本 (the register, the 課税台帳, 児童手当) in the municipality's own
database and returns ``{addressee_id: data}`` in the category's layout.  Persons are 統合宛名 — the
副本 is keyed by the 統合宛名番号, never by the 個人番号 (論点3, 論点4).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy import BindParameter, Connection, Select, bindparam, func, select
from sqlalchemy.orm import Session, aliased

from kojinbango.municipality.addressee.models import Addressee, RecordLink
from kojinbango.municipality.business.models import BusinessRecord, ChildAllowance, TaxAssessment
from kojinbango.municipality.register.models import Resident
from kojinbango.municipality.register.service import full_address

LINKED = ("linked", "non_resident_linked")
STATUS = {"active": "current", "moved_out": "moved_out", "dead": "dead"}
# Reads of the 正本 run from an ORM session (the refresh) or a bare connection (direct mode's live
# read, once per query batch): rows, not entities, and statements built once.
Reader = Session | Connection
_ONLY: BindParameter[Any] = bindparam("only", expanding=True)  # the 統合宛名 (Addressee ids) asked about


AnySelect = Select[*tuple[Any, ...]]


def _restricted(query: AnySelect) -> tuple[AnySelect, AnySelect]:
    """A read of linked records for everyone, and the same for the 統合宛名 in ``only``."""
    return query, query.where(RecordLink.addressee_id.in_(_ONLY))


def _rows(s: Reader, statements: tuple[AnySelect, AnySelect], only: Collection[int] | None) -> Any:
    every, some = statements
    return s.execute(every) if only is None else s.execute(some, {"only": list(only)})


_PERSONS = select(Addressee.resident_id, Addressee.id).where(Addressee.resident_id.is_not(None))
_PERSONS_OF = _PERSONS.where(Addressee.id.in_(_ONLY))
_RESIDENTS = select(*Resident.__table__.c)
_HOUSEHOLDS_OF = _RESIDENTS.where(
    Resident.household_id.in_(
        select(Resident.household_id).where(Resident.id.in_(bindparam("residents", expanding=True)))
    )
)


def _name(family: str, given: str) -> str:
    return f"{family}\u3000{given}".strip("\u3000")


def residence(s: Reader, only: Collection[int] | None = None) -> dict[int, dict[str, Any]]:
    """住民票関係情報 with 世帯情報 for every 住登者 (current or removed) of the register (``only``:
    of these 統合宛名 alone, read with their households)."""
    if only is None:
        addressee_of = dict(s.execute(_PERSONS).all())
        residents = list(s.execute(_RESIDENTS))
    else:
        addressee_of = dict(s.execute(_PERSONS_OF, {"only": list(only)}).all())
        residents = list(s.execute(_HOUSEHOLDS_OF, {"residents": list(addressee_of)}))
    households: dict[tuple[int, str], list[Any]] = defaultdict(list)
    for r in residents:
        households[(r.household_id, r.status)].append(r)
    out: dict[int, dict[str, Any]] = {}
    for r in residents:
        aid = addressee_of.get(r.id)
        if aid is None:
            continue
        members = [
            {
                "name": _name(m.family_name, m.given_name),
                "kana": _name(m.family_kana, m.given_kana),
                "birth_date": m.birth_date.isoformat(),
                "sex": m.sex,
                "relationship": m.relationship,
            }
            for m in sorted(households[(r.household_id, r.status)], key=lambda m: m.id)
            if m.id != r.id
        ]
        out[aid] = {
            "status": STATUS.get(r.status, "current"),
            "name": _name(r.family_name, r.given_name),
            "kana": _name(r.family_kana, r.given_kana),
            "birth_date": r.birth_date.isoformat(),
            "sex": r.sex,
            "address": full_address(r.address, r.address_extra),
            "resident_since": r.resident_since.isoformat(),
            "removed_on": r.removed_on.isoformat() if r.removed_on else None,
            "removal_reason": r.removal_reason,
            "relationship": r.relationship,
            "household": {"members": members},
        }
    return out


_TAX = _restricted(
    select(RecordLink.addressee_id, TaxAssessment.fiscal_year, TaxAssessment.income, TaxAssessment.tax_amount)
    .join(TaxAssessment, TaxAssessment.record_id == RecordLink.record_id)
    .where(RecordLink.system == "tax", RecordLink.status.in_(LINKED), RecordLink.addressee_id.is_not(None))
    .order_by(RecordLink.addressee_id, TaxAssessment.fiscal_year, TaxAssessment.id)
)


def local_tax(s: Reader, only: Collection[int] | None = None) -> dict[int, dict[str, Any]]:
    """地方税関係情報: the 課税台帳's assessments of every linked person (``only``: of these), by 年度."""
    by_person: dict[int, dict[int, dict[str, Any]]] = defaultdict(dict)
    for aid, year, income, tax in _rows(s, _TAX, only):
        by_person[aid].setdefault(
            year, {"fiscal_year": year, "taxable": tax > 0, "total_income": income, "tax_amount": tax}
        )
    return {aid: {"assessments": [years[y] for y in sorted(years)]} for aid, years in by_person.items()}


_CHILD = aliased(BusinessRecord)
_ALLOWANCES = _restricted(
    select(
        RecordLink.addressee_id,
        ChildAllowance.started_on,
        ChildAllowance.monthly_amount,
        _CHILD.name,
        _CHILD.birth_date,
    )  # fmt: skip
    .join(ChildAllowance, ChildAllowance.recipient_id == RecordLink.record_id)
    .join(_CHILD, _CHILD.id == ChildAllowance.child_id)
    .where(
        RecordLink.system == "welfare", RecordLink.status.in_(LINKED), RecordLink.addressee_id.is_not(None)
    )
    .order_by(RecordLink.addressee_id, ChildAllowance.id)
)


def child_allowance(s: Reader, only: Collection[int] | None = None) -> dict[int, dict[str, Any]]:
    """児童手当関係情報: every linked recipient (``only``: of these) with the children counted for the
    allowance."""
    out: dict[int, dict[str, Any]] = {}
    for aid, started, amount, name, birth in _rows(s, _ALLOWANCES, only):
        entry = out.setdefault(aid, {"recipient": True, "monthly_amount": 0, "children": []})
        entry["children"].append(
            {
                "name": name,
                "birth_date": birth.isoformat(),
                "started_on": started.isoformat(),
                "monthly_amount": amount,
            }
        )
        entry["monthly_amount"] += amount
    return out


EXTRACTORS: dict[str, Callable[[Reader, Collection[int] | None], dict[int, dict[str, Any]]]] = {
    "住民票関係情報": residence,
    "地方税関係情報": local_tax,
    "児童手当関係情報": child_allowance,
}


def fingerprint(s: Session, category: str) -> str:
    """A cheap summary of the sources of a category: when it changes, the 副本 may have changed."""
    parts: tuple[Any, ...]
    if category == "住民票関係情報":
        parts = tuple(
            s.execute(select(func.count(), func.max(Resident.updated_at)).select_from(Resident)).one()
        )
    elif category == "地方税関係情報":
        parts = (
            *s.execute(
                select(func.count(), func.max(TaxAssessment.id), func.sum(TaxAssessment.income))
            ).one(),
            *s.execute(
                select(func.count(), func.max(RecordLink.decided_at)).where(RecordLink.system == "tax")
            ).one(),
        )
    else:
        parts = (
            *s.execute(select(func.count(), func.max(ChildAllowance.id))).one(),
            *s.execute(
                select(func.count(), func.max(RecordLink.decided_at)).where(RecordLink.system == "welfare")
            ).one(),
        )
    parts = (*parts, s.scalar(select(func.count()).select_from(Addressee)))
    return "|".join(str(p) for p in parts)
