"""Staff pages of the resident register: search, the 住民票 with its history, a notice on demand.

Numbers are always masked to their last 4 digits; URLs carry only internal ids.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, or_, select

from kojinbango.domain.identifiers import mask_my_number, mask_resident_code
from kojinbango.domain.text import kana_search_key, name_key
from kojinbango.domain.wareki import to_wareki
from kojinbango.municipality.register.models import Household, Resident, ResidentEvent
from kojinbango.municipality.register.notices import NoticePrinter
from kojinbango.municipality.register.service import SEXES, RegisterService

PAGE = 100
JST_OFFSET = dt.timedelta(hours=9)
STATUSES = {"active": "住民", "moved_out": "転出", "dead": "死亡"}


def _is_kana(q: str) -> bool:
    from kojinbango.domain.text import to_katakana

    kata = to_katakana(q)
    return all("\u30a0" <= ch <= "\u30ff" or ch in "　 " for ch in kata)


def _describe(e: ResidentEvent) -> str:
    changes = []
    for key, label in (("family_name", "氏"), ("given_name", "名"), ("address", "住所"), ("status", "状態")):
        b, a = (e.before or {}).get(key), (e.after or {}).get(key)
        if b is not None and a is not None and a != b:
            changes.append(f"{label}: {b} → {a}")
    bn, an = (e.before or {}).get("my_number_last4"), (e.after or {}).get("my_number_last4")
    if an and an != bn:
        changes.append(f"個人番号 ********{an} を記載")
    return "、".join(changes)


def _jst(moment: dt.datetime) -> str:
    """Stored times are naive UTC; staff read them in Japan time."""
    return (moment + JST_OFFSET).strftime("%Y-%m-%d %H:%M")


def install(app: FastAPI, service: RegisterService, printer: NoticePrinter) -> None:
    templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
    env = templates.env
    env.globals.update(
        municipality=service.name,
        wareki=to_wareki,
        mask=lambda n: mask_my_number(n) if n else "（未指定）",
        mask_code=mask_resident_code,
        sexes=SEXES,
        statuses=STATUSES,
        describe=_describe,
        jst=_jst,
    )
    router = APIRouter(prefix="/staff")

    @router.get("/", response_class=HTMLResponse)
    def residents(request: Request, q: str = "", all: str = "") -> Any:
        query = select(Resident)
        if not all:
            query = query.where(Resident.status == "active")
        q = q.strip()
        if q:
            if _is_kana(q):
                query = query.where(Resident.kana_key.like(kana_search_key(q) + "%"))
            else:
                key = name_key(q)
                query = query.where(
                    or_(Resident.name_key.like(key + "%"), Resident.name_key.like("%" + key + "%"))
                )
        with service.db.transaction() as s:
            total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = list(s.scalars(query.order_by(Resident.kana_key, Resident.id).limit(PAGE)))
        return templates.TemplateResponse(
            request, "residents.html", {"rows": rows, "q": q, "total": total, "show_all": bool(all)}
        )

    @router.get("/residents/{resident_id}", response_class=HTMLResponse)
    def resident(request: Request, resident_id: int) -> Any:
        with service.db.transaction() as s:
            r = service.get_resident(s, resident_id)
            household = s.get(Household, r.household_id)
            members = list(
                s.scalars(
                    select(Resident).where(Resident.household_id == r.household_id).order_by(Resident.id)
                )
            )
            events = list(
                s.scalars(
                    select(ResidentEvent).where(ResidentEvent.resident_id == r.id).order_by(ResidentEvent.id)
                )
            )
        return templates.TemplateResponse(
            request, "resident.html", {"r": r, "household": household, "members": members, "events": events}
        )

    @router.post("/residents/{resident_id}/notice")
    def notice(resident_id: int) -> FileResponse:
        path = printer.print_for_resident(resident_id)
        return FileResponse(path, media_type="application/pdf", filename="notice.pdf")

    app.include_router(router)
