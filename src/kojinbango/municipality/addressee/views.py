"""Staff screens of the review queue (紐付け確認): /staff/links/…

The record and its candidates side by side, each field marked as agreeing or not; decisions (link,
not this person, contact the resident) and undo, each with who and why.  "Who" is the staff account
logged in at the terminal (the gate puts it on ``request.state.staff``), never a name typed into the
form.  URLs carry only internal ids; numbers are shown masked to their last 4 digits.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select

from kojinbango.common import i18n
from kojinbango.common.errors import BusinessError, Unauthorised
from kojinbango.domain.identifiers import mask_my_number
from kojinbango.domain.wareki import to_wareki
from kojinbango.municipality.addressee.matcher import FIELD_LABELS, LEVEL_LABELS, REASON_LABELS
from kojinbango.municipality.addressee.models import LinkDecision, RecordLink
from kojinbango.municipality.addressee.service import STATUSES, AddresseeService
from kojinbango.municipality.business.models import BusinessRecord

PAGE = 100
STATUS_LABELS = {
    "linked": "紐付け済",
    "review": "要確認",
    "unmatched": "該当なし",
    "non_resident_linked": "住登外者として紐付け",
}
ACTION_LABELS = {
    "auto_link": "自動紐付け",
    "auto_review": "要確認へ",
    "auto_unmatched": "該当なし",
    "jukinet_link": "住基ネット照会で紐付け",
    "link": "職員が紐付け",
    "not_this_person": "本人ではない",
    "contact_resident": "本人に確認する",
    "undo": "紐付けの取消",
}
EXTRA_REASONS = {
    "undone": "紐付けが取り消された",
    "jukinet_not_found": "住基ネット: 該当なし",
    "jukinet_ambiguous": "住基ネット: 複数該当",
    "jukinet_insufficient": "住基ネット: 情報不足",
    "jukinet_error": "住基ネットに照会できなかった",
}


def _reason_label(code: str) -> str:
    return REASON_LABELS.get(code, EXTRA_REASONS.get(code, code))


def _level_class(level: str | None) -> str:
    if level in ("exact", "history"):
        return "agree"
    if level in ("similar", "given"):
        return "near"
    if level in (None, "", "missing"):
        return "none"
    return "differ"


def acting_staff(request: Request) -> str:
    """The login of the staff member at this terminal (記録する職員), from the gate's session."""
    terminal = getattr(request.state, "staff", None)
    if terminal is None:  # only reachable if the gate is not installed in front of these pages
        raise Unauthorised("ログインしてください（not logged in: no staff member to record）")
    return str(terminal.login)


def install(app: FastAPI, service: AddresseeService) -> None:
    templates = i18n.templates(app, Path(__file__).parent / "templates")
    templates.env.globals.update(
        municipality=service.municipality_name,
        wareki=lambda d: to_wareki(d) if d else "",
        mask=lambda n: mask_my_number(n) if n else "（なし）",
        status_labels=STATUS_LABELS,
        action_labels=ACTION_LABELS,
        field_labels=FIELD_LABELS,
        level_labels=LEVEL_LABELS,
        reason_label=_reason_label,
        level_class=_level_class,
        sexes={1: "男", 2: "女", 3: "その他"},
    )
    router = APIRouter(prefix="/staff/links")

    @router.get("/", response_class=HTMLResponse)
    def queue(request: Request, status: str = "review", system: str = "", page: int = 0) -> Any:
        status = status if status in STATUSES else "review"
        q = select(RecordLink, BusinessRecord).join(BusinessRecord, BusinessRecord.id == RecordLink.record_id)
        q = q.where(RecordLink.status == status)
        if system:
            q = q.where(RecordLink.system == system)
        with service.db.transaction() as s:
            total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
            rows = s.execute(q.order_by(RecordLink.record_id).offset(max(page, 0) * PAGE).limit(PAGE)).all()
            counts = dict(
                s.execute(select(RecordLink.status, func.count()).group_by(RecordLink.status)).all()
            )
            systems = list(s.scalars(select(RecordLink.system).distinct().order_by(RecordLink.system)))
        return templates.TemplateResponse(
            request,
            "links.html",
            {
                "rows": rows,
                "status": status,
                "system": system,
                "total": total,
                "page": page,
                "pages": (total + PAGE - 1) // PAGE,
                "counts": counts,
                "systems": systems,
            },
        )

    def _item(request: Request, record_id: int, error: str = "", status_code: int = 200) -> Response:
        with service.db.transaction() as s:
            rec = s.get(BusinessRecord, record_id)
            link = s.get(RecordLink, record_id)
            if rec is None or link is None:
                return HTMLResponse("この業務宛名は紐付け処理の対象になっていません。", status_code=404)
            candidates = []
            for c in link.candidates:
                person = service.person_view(s, int(c["addressee_id"]))
                candidates.append({**c, "person": person})
            linked = service.person_view(s, link.addressee_id) if link.addressee_id else None
            decisions = list(
                s.scalars(
                    select(LinkDecision).where(LinkDecision.record_id == record_id).order_by(LinkDecision.id)
                )
            )
        return templates.TemplateResponse(
            request,
            "link.html",
            {
                "rec": rec,
                "link": link,
                "candidates": candidates,
                "linked": linked,
                "decisions": decisions,
                "error": error,
            },
            status_code=status_code,
        )

    @router.get("/{record_id}", response_class=HTMLResponse)
    def item(request: Request, record_id: int) -> Response:
        return _item(request, record_id)

    def _act(request: Request, record_id: int, action: Callable[[str], None]) -> Response:
        try:
            action(acting_staff(request))
        except BusinessError as exc:
            return _item(request, record_id, str(exc), exc.status)
        return RedirectResponse(f"/staff/links/{record_id}", status_code=303)

    @router.post("/{record_id}/link")
    def link(
        request: Request,
        record_id: int,
        reason: str = Form(""),
        addressee_id: int | None = Form(None),
        integrated_number: str = Form(""),
    ) -> Response:
        def do(actor: str) -> None:
            target = addressee_id
            if integrated_number.strip():
                target = service.find_addressee(integrated_number)
            if target is None:
                raise BusinessError("choose a candidate or give a 統合宛名番号")
            service.link(record_id, target, actor, reason)

        return _act(request, record_id, do)

    @router.post("/{record_id}/reject")
    def reject(
        request: Request,
        record_id: int,
        addressee_id: int = Form(...),
        reason: str = Form(""),
    ) -> Response:
        return _act(
            request,
            record_id,
            lambda actor: service.not_this_person(record_id, addressee_id, actor, reason),
        )

    @router.post("/{record_id}/contact")
    def contact(request: Request, record_id: int, reason: str = Form("")) -> Response:
        return _act(request, record_id, lambda actor: service.contact_resident(record_id, actor, reason))

    @router.post("/{record_id}/undo")
    def undo(request: Request, record_id: int, reason: str = Form("")) -> Response:
        return _act(request, record_id, lambda actor: service.undo(record_id, actor, reason))

    app.include_router(router)
