"""児童手当 認定請求 taken at the counter (seed 3-2): what staff gathered, written to the 児童手当 system.

The counter has opened the applicant's record with their card; staff enter the child, the account
the allowance is paid to and the income declaration.  ``receive_child_allowance_claim`` writes it
all in the caller's transaction — the recipient's and the child's 業務宛名 in the 児童手当 system
(``welfare``, reused when the person is already linked there), their 紐付け to the 統合宛名 (by
staff, identity checked with the card), the 支給 (``ChildAllowance``), the 振込口座, the number as
written on the 認定請求書 and the claim itself — so nothing is half-written.  The next 副本 refresh
carries the new 児童手当関係情報 to the intermediate server.

Amounts follow the 2024-10 rules, simplified: 15,000円 a month under 3, 10,000円 from 3 until 18,
30,000円 for a third or later child counted for the same recipient.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kojinbango.common.errors import BusinessError, Conflict, NotFound
from kojinbango.domain.clock import utc_now as _now
from kojinbango.domain.text import to_katakana
from kojinbango.municipality.addressee.models import Addressee, LinkDecision, RecordLink
from kojinbango.municipality.business.models import (
    BankAccount,
    BusinessRecord,
    ChildAllowance,
    ChildAllowanceClaim,
    FormNumber,
)
from kojinbango.municipality.business.service import RecordInput
from kojinbango.municipality.register.models import Resident
from kojinbango.municipality.register.service import full_address

SYSTEM = "welfare"  # the 児童手当 system's records (as the 3-0 import and the 副本 extraction use)
FORM = "児童手当認定請求書"
ACCOUNT_TYPES = {"1": 1, "2": 2}  # 普通, 当座
MAX_CHILD_AGE = 18
HALF_KANA = re.compile(r"^[\uff66-\uff9f\u0020]+$")


@dataclass(frozen=True)
class ClaimInput:
    """The counter form, validated: every problem is named (in Japanese and English)."""

    child_resident_id: int
    bank_code: str
    branch_code: str
    account_type: int
    account_number: str
    holder_kana: str
    income_year: int
    declared_income: int

    @classmethod
    def parse(cls, form: dict[str, str], today: dt.date) -> ClaimInput:
        problems: list[str] = []

        def digits(key: str, label: str, length: int, pad: bool = False) -> str:
            raw = str(form.get(key) or "").strip()
            if pad and raw.isdigit() and 1 <= len(raw) <= length:
                raw = raw.zfill(length)
            if not (raw.isdigit() and len(raw) == length):
                problems.append(f"{label}は{length}桁の数字です ({label} must be {length} digits)")
            return raw

        child = str(form.get("child") or "").strip()
        if not child.isdigit():
            problems.append("対象の児童を選んでください (choose the child)")
        bank = digits("bank_code", "金融機関コード", 4)
        branch = digits("branch_code", "店番", 3)
        number = digits("account_number", "口座番号", 7, pad=True)
        account_type = ACCOUNT_TYPES.get(str(form.get("account_type") or ""))
        if account_type is None:
            problems.append("預金種目は普通(1)か当座(2)です (account type: 1 普通 or 2 当座)")
        holder = to_katakana(str(form.get("holder_kana") or "").strip())
        if not holder or len(holder) > 100 or not (_is_kana(holder) or HALF_KANA.match(holder)):
            problems.append("口座名義はカタカナで入力してください (account holder in katakana)")
        year_raw = str(form.get("income_year") or "").strip()
        year = int(year_raw) if year_raw.isdigit() else 0
        if not (today.year - 3 <= year <= today.year):
            problems.append(f"所得の年は{today.year - 3}〜{today.year}年です (income year out of range)")
        income_raw = str(form.get("declared_income") or "").replace(",", "").strip()
        if not income_raw.isdigit() or int(income_raw) > 10**12:
            problems.append("所得額は0以上の整数（円）です (declared income: whole yen, 0 or more)")
        if problems or account_type is None:
            raise BusinessError("; ".join(problems))
        return cls(int(child), bank, branch, account_type, number, holder, year, int(income_raw))


def _is_kana(text: str) -> bool:
    return all("\u30a0" <= c <= "\u30ff" or c in " \u3000" for c in text)


def monthly_amount(child_birth: dt.date, on: dt.date, order: int) -> int:
    """月額 for one child: ``order`` is 1 for the recipient's first counted child, 2, 3 …"""
    if order >= 3:
        return 30_000
    age = on.year - child_birth.year - ((on.month, on.day) < (child_birth.month, child_birth.day))
    return 15_000 if age < 3 else 10_000


def eligible_children(s: Session, applicant: Resident, today: dt.date) -> list[Resident]:
    """The applicant's household members under 18 — who a claim can name as 児童."""
    members = s.scalars(
        select(Resident)
        .where(Resident.household_id == applicant.household_id, Resident.status == "active")
        .order_by(Resident.birth_date.desc(), Resident.id)
    )
    return [m for m in members if m.id != applicant.id and _age(m.birth_date, today) < MAX_CHILD_AGE]


def _age(birth: dt.date, day: dt.date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _business_record(s: Session, person: Resident, addressee_id: int, staff: str) -> int:
    """The person's 業務宛名 in the 児童手当 system: the one linked to them, or a new one linked now."""
    existing = s.scalar(
        select(RecordLink.record_id)
        .join(BusinessRecord, BusinessRecord.id == RecordLink.record_id)
        .where(
            RecordLink.system == SYSTEM,
            RecordLink.addressee_id == addressee_id,
            RecordLink.status.in_(("linked", "non_resident_linked")),
        )
        .order_by(RecordLink.record_id)
        .limit(1)
    )
    if existing is not None:
        return int(existing)
    t = _now()
    rec = RecordInput(
        "CTR-" + secrets.token_hex(6),  # the 児童手当 system's own 宛名番号 for a new person
        f"{person.family_name}\u3000{person.given_name}",  # as the register holds it
        f"{person.family_kana}\u3000{person.given_kana}",
        person.birth_date.isoformat(),
        person.birth_date,
        person.sex,
        full_address(person.address, person.address_extra),
    )
    row = BusinessRecord(
        system=SYSTEM,
        legacy_id=rec.legacy_id,
        name=rec.name,
        kana=rec.kana,
        birth_date_text=rec.birth_date_text,
        birth_date=rec.birth_date,
        sex=rec.sex,
        address=rec.address,
        source="counter",
        imported_at=t,
        updated_at=t,
        **rec.keys(),
    )
    s.add(row)
    s.flush()
    reason = "窓口で個人番号カードにより本人確認のうえ登録"
    s.add(
        RecordLink(record_id=row.id, system=SYSTEM, status="linked", addressee_id=addressee_id, method="staff",
                   reasons=[reason], candidates=[], contact_requested=False, record_updated_at=t, decided_at=t)
    )  # fmt: skip
    s.add(
        LinkDecision(record_id=row.id, system=SYSTEM, action="link", addressee_id=addressee_id, actor=staff,
                     reason=reason, at=t, details={"via": "counter"})
    )  # fmt: skip
    return int(row.id)


def receive_child_allowance_claim(
    s: Session,
    applicant_id: int,
    claim: ClaimInput,
    staff: str,
    purpose: str,
    today: dt.date,
    addressee_of: Any,
) -> dict[str, Any]:
    """Write the claim in ``s`` (the caller's one transaction).  ``addressee_of(s, resident_id)``
    gives the person's 統合宛名 id (creating it if the register has a newer resident)."""
    applicant = s.get(Resident, applicant_id)
    if applicant is None or applicant.status != "active":
        raise NotFound("no current resident with this id")
    if not applicant.my_number:
        raise BusinessError("この方には個人番号がありません (the applicant has no 個人番号)")
    child = next((c for c in eligible_children(s, applicant, today) if c.id == claim.child_resident_id), None)
    if child is None:
        raise BusinessError(
            "児童は申請者の世帯の18歳未満の方から選んでください (the child must be under 18 in the household)"
        )
    recipient_id = _business_record(s, applicant, addressee_of(s, applicant.id), staff)
    child_id = _business_record(s, child, addressee_of(s, child.id), staff)
    if s.scalar(select(ChildAllowance.id).where(ChildAllowance.recipient_id == recipient_id,
                                                ChildAllowance.child_id == child_id)) is not None:  # fmt: skip
        raise Conflict("この児童の児童手当はすでに支給されています (already paid for this child)")
    counted = s.scalar(select(func.count()).where(ChildAllowance.recipient_id == recipient_id)) or 0
    start = (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)  # 請求の翌月分から
    allowance = ChildAllowance(
        recipient_id=recipient_id,
        child_id=child_id,
        started_on=start,
        monthly_amount=monthly_amount(child.birth_date, start, counted + 1),
    )
    s.add(allowance)
    account = s.scalar(
        select(BankAccount).where(BankAccount.record_id == recipient_id).order_by(BankAccount.id)
    )
    if account is None:
        account = BankAccount(record_id=recipient_id, bank_code=claim.bank_code, branch_code=claim.branch_code,
                              account_type=claim.account_type, account_number=claim.account_number,
                              holder_kana=claim.holder_kana)  # fmt: skip
        s.add(account)
    else:  # the claim names the account to pay to from now on
        account.bank_code, account.branch_code = claim.bank_code, claim.branch_code
        account.account_type, account.account_number = claim.account_type, claim.account_number
        account.holder_kana = claim.holder_kana
    s.add(FormNumber(record_id=recipient_id, my_number=applicant.my_number, form=FORM, received_on=today))
    s.flush()
    row = ChildAllowanceClaim(
        recipient_record_id=recipient_id,
        child_record_id=child_id,
        allowance_id=allowance.id,
        bank_account_id=account.id,
        received_on=today,
        income_year=claim.income_year,
        declared_income=claim.declared_income,
        staff=staff[:40],
        purpose=purpose[:60],
        created_at=_now(),
    )
    s.add(row)
    s.flush()
    return {
        "claim": int(row.id),
        "recipient_record": recipient_id,
        "child_record": child_id,
        "child_name": f"{child.family_name}\u3000{child.given_name}",
        "started_on": start,
        "monthly_amount": allowance.monthly_amount,
    }


def addressee_of(sync: Any) -> Any:
    """``(s, resident_id) → 統合宛名 id``, running the 統合宛名 sync once if the person is missing."""

    def find(s: Session, resident_id: int) -> int:
        q = select(Addressee.id).where(Addressee.resident_id == resident_id)
        aid = s.scalar(q)
        if aid is None:
            sync(s)
            aid = s.scalar(q)
        if aid is None:
            raise NotFound("this resident has no 統合宛名")
        return int(aid)

    return find
