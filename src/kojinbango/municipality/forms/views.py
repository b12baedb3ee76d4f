"""Counter screens of the certificate desk (/staff/forms/…) and the public verification page.

Issuing prints a person's data: every person on the document is written to the access log with the
staff member's declared purpose.  ``/documents/verify`` lets anyone check a document's signature.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

from cryptography import x509
from fastapi import APIRouter, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from kojinbango.common import i18n
from kojinbango.common.errors import BusinessError, NotFound
from kojinbango.documents.certificates import ITEM_LABELS
from kojinbango.documents.pades import verify_pdf
from kojinbango.domain.jst import today_jst
from kojinbango.municipality.forms.service import KINDS, REQUESTERS, FormsService
from kojinbango.municipality.register.models import Resident
from kojinbango.municipality.staff.service import StaffService


def install(app: FastAPI, forms: FormsService, staff: StaffService, ca: x509.Certificate) -> None:
    templates = i18n.templates(app, Path(__file__).parent / "templates")
    templates.env.globals.update(
        municipality=forms.municipality, kinds=KINDS, requesters=REQUESTERS, item_labels=ITEM_LABELS
    )
    router = APIRouter()

    def person(resident_id: int) -> Resident:
        with forms.db.transaction() as s:
            r = s.get(Resident, resident_id)
            if r is None:
                raise NotFound("no resident with this id")
            return r

    def page(request: Request, name: str, status: int = 200, **ctx: Any) -> Response:
        ctx.setdefault("terminal", getattr(request.state, "staff", None))
        return templates.TemplateResponse(request, name, ctx, status_code=status)

    @router.get("/staff/forms/", response_class=HTMLResponse)
    def index(request: Request) -> Response:
        return page(request, "forms_index.html")

    @router.get("/staff/forms/residents/{resident_id}", response_class=HTMLResponse)
    def form(request: Request, resident_id: int) -> Response:
        return page(request, "forms_resident.html", r=person(resident_id), values={})

    @router.post("/staff/forms/residents/{resident_id}")
    def issue(
        request: Request,
        resident_id: int,
        kind: str = Form("copy"),
        scope: str = Form("self"),
        requester: str = Form(""),
        with_my_number: str = Form(""),
        with_relationship: str = Form(""),
        items: list[str] = Form([]),
        purpose: str = Form(""),
    ) -> Response:
        terminal = request.state.staff
        values = {
            "kind": kind,
            "scope": scope,
            "requester": requester,
            "with_my_number": with_my_number,
            "with_relationship": with_relationship,
            "items": items,
            "purpose": purpose,
        }
        try:
            issued = forms.resident_certificate(
                resident_id,
                kind,
                scope,
                requester,
                with_my_number == "1",
                with_relationship == "1",
                items,
                purpose,
                "counter",
                terminal.login,
            )
        except BusinessError as exc:
            return page(
                request,
                "forms_resident.html",
                exc.status,
                r=person(resident_id),
                values=values,
                error=str(exc),
            )
        for rid in issued.resident_ids:
            staff.record(
                terminal,
                "print",
                "/staff/forms/residents/{id}",
                "resident",
                rid,
                {"form": kind, "with_my_number": issued.with_my_number, "document": issued.document_number},
            )
        return Response(
            issued.pdf,
            media_type="application/pdf",
            headers={"content-disposition": f'attachment; filename="{kind}-{issued.document_number}.pdf"'},
        )

    @router.post("/staff/forms/residents/{resident_id}/card-ready")
    def card_ready(request: Request, resident_id: int) -> Response:
        terminal = request.state.staff
        deadline = today_jst() + dt.timedelta(days=90)
        issued = forms.card_ready_notice(resident_id, deadline, terminal.login)
        staff.record(
            terminal,
            "print",
            "/staff/forms/residents/{id}/card-ready",
            "resident",
            resident_id,
            {"form": "card_ready", "document": issued.document_number},
        )
        return Response(
            issued.pdf,
            media_type="application/pdf",
            headers={
                "content-disposition": f'attachment; filename="card-ready-{issued.document_number}.pdf"'
            },
        )

    @router.get("/documents/verify", response_class=HTMLResponse)
    def verify_form(request: Request) -> Response:
        return templates.TemplateResponse(request, "verify.html", {})

    @router.post("/documents/verify", response_class=HTMLResponse)
    async def verify(request: Request, document: UploadFile = File(...)) -> Response:
        data = await document.read(20_000_001)
        if len(data) > 20_000_000:
            return templates.TemplateResponse(
                request, "verify.html", {"error": "the file is too large (20 MB at most)"}, status_code=422
            )
        result = await run_in_threadpool(verify_pdf, data, ca)  # pyHanko runs its own event loop
        known = await run_in_threadpool(forms.issued, hashlib.sha256(data).hexdigest())
        return templates.TemplateResponse(request, "verify.html", {"result": result, "known": known})

    app.include_router(router)
