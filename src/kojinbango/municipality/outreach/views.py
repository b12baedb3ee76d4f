"""Staff screens of push notices (/staff/outreach/…): conditions, count and sample, the text,
confirmation, sending, read status and the letters for residents without the portal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kojinbango.common import i18n
from kojinbango.common.errors import BusinessError
from kojinbango.domain.wareki import to_wareki
from kojinbango.municipality.outreach.service import Conditions, OutreachService
from kojinbango.municipality.staff.service import StaffService

FIELDS = ("min_age", "max_age", "child_under", "min_household", "district", "benefit", "unit")


def install(app: FastAPI, outreach: OutreachService, staff: StaffService) -> None:
    templates = i18n.templates(app, Path(__file__).parent / "templates")
    templates.env.globals.update(municipality=outreach.municipality, wareki=to_wareki)
    router = APIRouter(prefix="/staff/outreach")

    def page(request: Request, name: str, status: int = 200, **ctx: Any) -> Response:
        ctx.setdefault("terminal", getattr(request.state, "staff", None))
        return templates.TemplateResponse(request, name, ctx, status_code=status)

    @router.get("/", response_class=HTMLResponse)
    def index(request: Request) -> Response:
        return page(request, "outreach_list.html", notices=outreach.notices())

    @router.get("/new", response_class=HTMLResponse)
    def new(request: Request) -> Response:
        return page(request, "outreach_new.html", form={}, preview=None)

    @router.post("/preview", response_class=HTMLResponse)
    async def preview(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        try:
            result = outreach.preview(Conditions.parse(form))
        except BusinessError as exc:
            return page(request, "outreach_new.html", exc.status, form=form, preview=None, error=str(exc))
        staff.record(
            request.state.staff,
            "search",
            "/staff/outreach/preview",
            None,
            None,
            {"targets": result.count, "sample": [s["id"] for s in result.sample]},
        )
        return page(request, "outreach_new.html", form=form, preview=result)

    @router.post("/", response_class=HTMLResponse)
    async def create(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        try:
            c = Conditions.parse(form)
            notice_id = outreach.draft(
                c, form.get("title", ""), form.get("body", ""), request.state.staff.login
            )
        except BusinessError as exc:
            return page(request, "outreach_new.html", exc.status, form=form, preview=None, error=str(exc))
        return RedirectResponse(f"/staff/outreach/{notice_id}", status_code=303)

    def _detail(request: Request, notice_id: int, status: int = 200, **extra: Any) -> Response:
        notice = outreach.get(notice_id)
        c = outreach.conditions_of(notice)
        ctx: dict[str, Any] = {"notice": notice, "conditions": c}
        if notice.status == "draft":
            ctx["preview"] = outreach.preview(c)
        else:
            ctx["deliveries"] = outreach.deliveries(notice_id)
        return page(request, "outreach_detail.html", status, **ctx, **extra)

    @router.get("/{notice_id}", response_class=HTMLResponse)
    def detail(request: Request, notice_id: int) -> Response:
        return _detail(request, notice_id)

    @router.post("/{notice_id}/send", response_class=HTMLResponse)
    def send(
        request: Request, notice_id: int, confirmed_count: int = Form(-1), confirm: str = Form("")
    ) -> Response:
        try:
            if confirm != "1":
                raise BusinessError("tick the box to confirm the list of targets first")
            result = outreach.send(notice_id, confirmed_count, request.state.staff.login)
        except BusinessError as exc:
            return _detail(request, notice_id, exc.status, error=str(exc))
        return _detail(request, notice_id, message=result)

    @router.get("/{notice_id}/letters.pdf")
    def letters(request: Request, notice_id: int) -> Response:
        try:
            pdf = outreach.letters_pdf(notice_id)
        except BusinessError as exc:
            return _detail(request, notice_id, exc.status, error=str(exc))
        for d in outreach.deliveries(notice_id):
            if d["channel"] == "letter":
                staff.record(
                    request.state.staff,
                    "print",
                    "/staff/outreach/{id}/letters.pdf",
                    "resident",
                    d["resident_id"],
                    {"notice": notice_id},
                )
        return Response(pdf, media_type="application/pdf")

    app.include_router(router)
