"""Counter screens (/staff/counter/…): the resident's card in the counter's reader.

1. The screen shows the card's face (photo) and checks its 利用者証明用電子証明書 — chain and
   OCSP status at J-LIS — so the staff member sees whether the card is valid.
2. The resident types the 券面事項入力補助 PIN on the counter's PIN pad; the reader returns the
   number and 4情報 as text (never typed by staff).
3. The number is sent in a POST body; the register's person opens only when the card's 氏名 and
   生年月日 agree with the register (the person in front of me = the record on screen, §9.6).
4. From the record, 福祉 staff enter a 児童手当 認定請求 (the child, the account, the income
   declaration) and write it to the 児童手当 system's tables in one transaction together with its
   access-log entry; any staff may send a 3-3 query and see the provider's answer on screen.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from kojinbango.card.profile import KIND_AUTH
from kojinbango.card.relying import JpkiError, JpkiVerifier
from kojinbango.card.verify import load_certificate, verify_chain
from kojinbango.common import i18n
from kojinbango.common.errors import BusinessError
from kojinbango.common.layouts import CATEGORIES
from kojinbango.common.linkage import writing
from kojinbango.common.transport import RemoteError, Unreachable
from kojinbango.domain.identifiers import mask_my_number
from kojinbango.domain.jst import today_jst
from kojinbango.domain.text import name_key
from kojinbango.domain.wareki import to_wareki
from kojinbango.municipality.business.applications import (
    ClaimInput,
    addressee_of,
    eligible_children,
    receive_child_allowance_claim,
)
from kojinbango.municipality.register.models import Household, Resident
from kojinbango.municipality.register.service import SEXES
from kojinbango.municipality.staff.service import StaffService

LOCAL_READER = re.compile(r"http://(127\.0\.0\.1|localhost):[0-9]{1,5}")
STATUS_LABELS = {"good": "有効", "suspended": "一時停止中", "revoked": "失効"}
NO_NETWORK = "情報連携（ネットワーク）がこの環境にありません"


class CertificateCheck(BaseModel):
    certificate: str = Field(min_length=1, max_length=20_000)


class OpenRequest(BaseModel):
    my_number: str = Field(min_length=12, max_length=12, pattern=r"^[0-9]{12}$")
    name: str = Field(min_length=1, max_length=200)
    birth_date: str = Field(min_length=8, max_length=20)


def install(
    app: FastAPI,
    db: Any,
    staff: StaffService,
    verifier: JpkiVerifier,
    municipality: str,
    reader_url: str,
    linkage: Callable[[], Any] = lambda: None,
    sync_addressees: Callable[[Any], Any] | None = None,
) -> None:
    """``linkage`` gives the municipality's 情報連携 service (issue 5) when the deployment has the
    network, for the 3-3 query from the counter screen; ``sync_addressees(session)`` gives new
    residents their 統合宛名 (``AddresseeService.sync_residents``) before a claim is written."""
    templates = i18n.templates(app, Path(__file__).parent / "templates")
    templates.env.globals.update(
        municipality=municipality, wareki=to_wareki, sexes=SEXES, mask=mask_my_number
    )
    router = APIRouter(prefix="/staff/counter")

    @router.get("/", response_class=HTMLResponse)
    def page(request: Request, reader: str = "") -> Response:
        """``?reader=`` points the page at another local reader (127.0.0.1/localhost only)."""
        use = reader if LOCAL_READER.fullmatch(reader) else reader_url
        return templates.TemplateResponse(
            request, "counter.html", {"reader_url": use, "terminal": request.state.staff}
        )

    @router.post("/certificate")
    def certificate(body: CertificateCheck) -> JSONResponse:
        try:
            cert = load_certificate(body.certificate)
            verify_chain(cert, verifier.ca, KIND_AUTH)
            status = verifier.status(cert)
        except JpkiError as exc:
            return JSONResponse({"valid": False, "reason": exc.reason, "label": exc.message})
        return JSONResponse(
            {
                "valid": status == "good",
                "status": status,
                "label": STATUS_LABELS.get(status, status),
                "not_after": today_jst(cert.not_valid_after_utc).isoformat(),
            }
        )

    @router.post("/open")
    def open_person(body: OpenRequest, request: Request) -> JSONResponse:
        with db.transaction() as s:
            r = s.scalar(select(Resident).where(Resident.my_number == body.my_number))
        if r is None or r.status != "active":
            return JSONResponse(
                {"detail": "no current resident of this municipality holds this card's number"},
                status_code=404,
            )
        card_birth = _date(body.birth_date)
        if name_key(body.name) != name_key(f"{r.family_name}{r.given_name}") or card_birth != r.birth_date:
            staff.record(request.state.staff, "mismatch", "/staff/counter/open", "resident", r.id)
            return JSONResponse(
                {
                    "detail": "the card's 氏名 or 生年月日 differ from the register: check the person and the card"
                },
                status_code=409,
            )
        return JSONResponse({"url": f"/staff/counter/residents/{r.id}"})

    def _person_page(request: Request, resident_id: int, status: int = 200, **extra: Any) -> Response:
        today = today_jst()
        with db.transaction() as s:
            r = s.get(Resident, resident_id)
            if r is None:
                return HTMLResponse("no resident with this id", status_code=404)
            household = s.get(Household, r.household_id)
            members = list(
                s.scalars(
                    select(Resident)
                    .where(Resident.household_id == r.household_id, Resident.status == "active")
                    .order_by(Resident.id)
                )
            )
            children = eligible_children(s, r, today)
        return templates.TemplateResponse(
            request,
            "counter_person.html",
            {
                "r": r,
                "household": household,
                "members": members,
                "terminal": request.state.staff,
                "can_query": linkage() is not None,
                "categories": CATEGORIES,
                "children": children,
                "income_year": today.year - 1,
                "claim_form": {},
                **extra,
            },
            status_code=status,
        )

    @router.get("/residents/{resident_id}", response_class=HTMLResponse)
    def person(request: Request, resident_id: int) -> Response:
        response = _person_page(request, resident_id)
        if response.status_code == 200:
            staff.record(
                request.state.staff,
                "view",
                "/staff/counter/residents/{id}",
                "resident",
                resident_id,
                {"via": "card"},
            )
        return response

    def _number(resident_id: int) -> str | None:
        """The register's number of a current resident (never the browser's)."""
        with db.transaction() as s:
            r = s.get(Resident, resident_id)
            return r.my_number if r is not None and r.status == "active" else None

    @router.post("/residents/{resident_id}/query", response_class=HTMLResponse)
    async def query(
        request: Request,
        resident_id: int,
        provider: str = Form(""),
        affair: str = Form(""),
        info: str = Form(""),
    ) -> Response:
        """3-3 from the counter: ask another body for this person's information; the number is
        taken from the register here, never from the browser.  On the event loop: the wait for
        the exchange holds no thread; the database work and the page run on a worker thread."""

        async def page(status: int = 200, **extra: Any) -> Response:
            return await run_in_threadpool(_person_page, request, resident_id, status, **extra)

        service = linkage()
        if service is None:
            return await page(503, error=NO_NETWORK)
        missing = [
            label
            for label, v in (("情報提供者", provider), ("事務", affair), ("特定個人情報", info))
            if not v.strip()
        ]
        if missing:
            return await page(422, error="入力してください: " + "、".join(missing))
        number = await run_in_threadpool(_number, resident_id)
        if number is None:
            return await page(404, error="この方には個人番号がありません")
        try:
            answer = await service.aquery(number, provider, affair, info, request.state.staff.login, 10.0)
        except BusinessError as exc:
            return await page(exc.status, error=str(exc))
        except (RemoteError, Unreachable) as exc:
            return await page(502, error=f"照会できませんでした: {type(exc).__name__}")
        await run_in_threadpool(
            staff.record,
            request.state.staff,
            "query",
            "/staff/counter/residents/{id}/query",
            "resident",
            resident_id,
            {"provider": provider, "affair": affair, "info": info},
        )
        return await page(
            answer=answer,
            answer_data=json.dumps(answer.get("data"), ensure_ascii=False, indent=1, default=str)
            if answer.get("data") is not None
            else "",
        )

    def _waiting_page(request: Request, collect: bool) -> Response:
        """照会の回答待ち: this municipality's queries not yet answered; ``collect``: each asked for
        again first (結果取得要求), recorded in the access log."""
        context: dict[str, Any] = {"terminal": request.state.staff, "waiting": [], "collected": None}
        service = linkage()
        status = 200
        if service is None:
            context["error"], status = NO_NETWORK, 503
        else:
            context.update(service.waiting(collect))
            if collect:
                staff.record(
                    request.state.staff, "collect", "/staff/counter/waiting", "linkage", None,
                    {"collected": context["collected"], "failed": len(context["collect_failed"])},
                )  # fmt: skip
        return templates.TemplateResponse(request, "counter_waiting.html", context, status_code=status)

    @router.get("/waiting", response_class=HTMLResponse)
    def waiting(request: Request) -> Response:
        return _waiting_page(request, False)

    @router.post("/waiting", response_class=HTMLResponse)
    def collect(request: Request) -> Response:
        return _waiting_page(request, True)

    @router.post("/residents/{resident_id}/child-allowance", response_class=HTMLResponse)
    async def child_allowance(request: Request, resident_id: int) -> Response:
        """児童手当 認定請求: what was gathered at the counter, written to the 児童手当 system."""
        form = {k: str(v) for k, v in (await request.form()).items()}
        # the database work runs on a worker thread, off the event loop
        return await run_in_threadpool(_claim, request, resident_id, form)

    def _claim(request: Request, resident_id: int, form: dict[str, str]) -> Response:
        terminal = request.state.staff
        screen = "/staff/counter/residents/{id}/child-allowance"
        if not terminal.has("welfare"):
            staff.record(terminal, "denied", screen, "resident", resident_id)
            return _person_page(
                request,
                resident_id,
                403,
                claim_error="児童手当の受付は福祉の職員が行います (welfare staff only)",
            )
        today = today_jst()
        try:
            claim = ClaimInput.parse(form, today)
            with writing(db) as s:  # the claim and its access-log entry: one transaction
                result = receive_child_allowance_claim(
                    s, resident_id, claim, terminal.login, terminal.purpose or "", today,
                    addressee_of(sync_addressees or (lambda _s: None)),
                )  # fmt: skip
                staff._log(
                    s, terminal.staff_id, terminal.login, "update", screen=screen, subject_kind="resident",
                    subject_id=resident_id, purpose=terminal.purpose,
                    detail={"system": "welfare", "claim": result["claim"], "child": claim.child_resident_id},
                )  # fmt: skip
        except BusinessError as exc:
            return _person_page(request, resident_id, exc.status, claim_error=str(exc), claim_form=form)
        return _person_page(request, resident_id, claim_result=result)

    app.include_router(router)


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        return None
