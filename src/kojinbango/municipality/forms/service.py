"""The certificate desk: build, sign and record the municipality's documents.

Each call reads what it needs, renders and signs its own PDF in memory, and records the issue in
one transaction — no document is ever held in a shared place between requests (the 2023 コンビニ
交付 incidents, DOMAIN.md §9.4), so a concurrent request cannot receive it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from kojinbango.common.db import Database
from kojinbango.common.errors import BusinessError, NotFound
from kojinbango.documents.certificates import (
    ITEM_LABELS,
    Letter,
    PersonEntry,
    ResidentCertificate,
    render_certificate,
    render_letter,
)
from kojinbango.documents.pades import DocumentSigner
from kojinbango.domain.clock import utc_now
from kojinbango.domain.jst import jst_text, today_jst
from kojinbango.domain.wareki import to_wareki
from kojinbango.municipality.forms.models import IssuedDocument
from kojinbango.municipality.register.models import Household, Resident
from kojinbango.municipality.register.service import SEXES, full_address

REQUESTERS = {
    "self": "本人",
    "household": "同一世帯の方",
    "agent": "代理人（委任状）",
    "third_party": "第三者（自己の権利行使等）",
}
KINDS = {"copy": "住民票の写し", "items": "住民票記載事項証明書"}


@dataclass(frozen=True)
class Issued:
    pdf: bytes
    document_number: str
    resident_ids: tuple[int, ...]
    with_my_number: bool


class FormsService:
    def __init__(
        self,
        db: Database,
        municipality: str,
        mayor: str,
        signer_factory: Callable[[], DocumentSigner],
    ):
        self.db = db
        self.municipality = municipality
        self.mayor = mayor
        self._signer_factory = signer_factory
        self._signer: DocumentSigner | None = None
        self._lock = threading.Lock()

    def signer(self) -> DocumentSigner:
        if self._signer is None:
            with self._lock:
                if self._signer is None:
                    try:
                        self._signer = self._signer_factory()
                    except FileNotFoundError as exc:
                        raise BusinessError(f"documents cannot be signed here: {exc}", 503) from None
        return self._signer

    # --- 住民票の写し / 記載事項証明書 -------------------------------------------------------
    def resident_certificate(
        self,
        resident_id: int,
        kind: str = "copy",
        scope: str = "self",
        requester: str = "self",
        with_my_number: bool = False,
        with_relationship: bool = True,
        items: Sequence[str] = (),
        purpose: str = "",
        channel: str = "counter",
        issued_by: str = "",
        requester_id: int | None = None,
    ) -> Issued:
        problems = []
        if kind not in KINDS:
            problems.append("choose 住民票の写し or 住民票記載事項証明書")
        if scope not in ("self", "household"):
            problems.append("choose whether the document covers this person or the whole household")
        if requester not in REQUESTERS:
            problems.append("say who is asking (本人, 同一世帯, 代理人 or 第三者)")
        if with_my_number and requester not in ("self", "household"):
            problems.append(
                "個人番号入りの住民票の写しは本人又は同一世帯の方の請求に限ります（住民基本台帳法12条）"
            )
        if kind == "items":
            if with_my_number:
                problems.append("住民票記載事項証明書には個人番号を記載しません")
            unknown = [i for i in items if i not in ITEM_LABELS]
            if not items or unknown:
                problems.append("choose the items to certify (" + ", ".join(ITEM_LABELS) + ")")
        if requester in ("agent", "third_party") and not purpose.strip():
            problems.append("代理人・第三者の請求には使用目的が必要です")
        if problems:
            raise BusinessError("; ".join(problems))
        with self.db.transaction() as s:
            person = s.get(Resident, resident_id)
            if person is None:
                raise NotFound("no resident with this id")
            if person.status != "active":
                raise BusinessError("this person is no longer registered here; a 除票 is issued separately")
            household = s.get(Household, person.household_id)
            assert household is not None
            members = list(
                s.scalars(
                    select(Resident)
                    .where(Resident.household_id == person.household_id, Resident.status == "active")
                    .order_by(Resident.id)
                )
            )
            if (
                requester_id is not None
                and requester == "household"
                and requester_id not in {m.id for m in members}
            ):
                raise BusinessError("the requester is not a member of this household")
            people = members if scope == "household" else [person]
            head = next((m for m in members if m.relationship == "世帯主"), members[0])
            entries = [_entry(m, with_my_number) for m in people]
            address = full_address(person.address, person.address_extra)
            head_name = f"{head.family_name}　{head.given_name}"
            ids = tuple(m.id for m in people)
        number = _document_number()
        doc = ResidentCertificate(
            kind=kind,
            municipality=self.municipality,
            mayor=self.mayor,
            address=address,
            household_head=head_name,
            people=entries,
            issued_on=today_jst(),
            document_number=number,
            purpose=purpose.strip(),
            items=tuple(items),
            with_relationship=with_relationship,
            with_my_number=with_my_number,
            channel="コンビニ交付" if channel == "kiosk" else "窓口",
        )
        pdf = self.signer().sign(render_certificate(doc), KINDS[kind], self.municipality)
        self._record(number, kind, ids, requester_id, with_my_number, channel, issued_by, pdf)
        return Issued(pdf, number, ids, with_my_number)

    # --- letters -------------------------------------------------------------------------
    def card_ready_notice(self, resident_id: int, deadline: dt.date, issued_by: str) -> Issued:
        """個人番号カード交付通知書: the card is ready; come to the counter with this letter."""
        paragraphs = [
            "あなたの個人番号カードができあがりましたので、お知らせします。",
            f"{to_wareki(deadline)}までに、この通知書と本人確認書類、個人番号通知書をお持ちのうえ、ご本人が窓口へお越しください。",
            "窓口では顔写真による本人確認の後、暗証番号を設定していただきます。",
        ]
        return self.letter(
            resident_id,
            "個人番号カード交付通知書",
            paragraphs,
            issued_by,
            kind="card_ready",
            table=[("受取期限", to_wareki(deadline)), ("受取場所", f"{self.municipality} 区民課窓口")],
        )

    def letter(
        self,
        resident_id: int,
        title: str,
        paragraphs: Sequence[str],
        issued_by: str,
        kind: str = "letter",
        table: Sequence[tuple[str, str]] = (),
        channel: str = "counter",
    ) -> Issued:
        with self.db.transaction() as s:
            person = s.get(Resident, resident_id)
            if person is None:
                raise NotFound("no resident with this id")
            addressee = f"{person.family_name}　{person.given_name}"
            postal, address = person.postal_code, full_address(person.address, person.address_extra)
        number = _document_number()
        doc = Letter(
            municipality=self.municipality,
            sender=self.mayor,
            postal_code=postal,
            address=address,
            addressee=addressee,
            title=title,
            paragraphs=list(paragraphs),
            issued_on=today_jst(),
            document_number=number,
            table=list(table),
        )
        pdf = self.signer().sign(render_letter(doc), title, self.municipality)
        self._record(number, kind, (resident_id,), None, False, channel, issued_by, pdf)
        return Issued(pdf, number, (resident_id,), False)

    def _record(
        self,
        number: str,
        kind: str,
        ids: Sequence[int],
        requester_id: int | None,
        with_my_number: bool,
        channel: str,
        issued_by: str,
        pdf: bytes,
    ) -> None:
        with self.db.transaction() as s:
            s.add(
                IssuedDocument(
                    document_number=number,
                    kind=kind,
                    resident_ids=list(ids),
                    requester_id=requester_id,
                    with_my_number=with_my_number,
                    channel=channel,
                    issued_by=issued_by[:60] or "?",
                    issued_at=utc_now(),
                    sha256=hashlib.sha256(pdf).hexdigest(),
                )
            )

    def issued(self, sha256: str) -> dict[str, Any] | None:
        """Was this exact file issued here?  (number, kind and date; never the people)."""
        with self.db.transaction() as s:
            doc = s.scalar(select(IssuedDocument).where(IssuedDocument.sha256 == sha256))
            if doc is None:
                return None
            return {
                "document_number": doc.document_number,
                "kind": doc.kind,
                "issued_at": jst_text(doc.issued_at),
            }


def _entry(r: Resident, with_my_number: bool) -> PersonEntry:
    return PersonEntry(
        name=f"{r.family_name}　{r.given_name}",
        kana=f"{r.family_kana}　{r.given_kana}",
        birth_date=r.birth_date,
        sex=SEXES.get(r.sex, ""),
        relationship=r.relationship,
        resident_since=r.resident_since,
        address_since=r.address_since,
        previous_address=r.previous_address,
        my_number=r.my_number if with_my_number else None,
    )


def _document_number() -> str:
    return f"{today_jst():%Y%m%d}-{secrets.token_hex(5).upper()}"
