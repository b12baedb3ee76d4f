"""Counter screens of the issuance desk: cards waiting, hand-over with the photo shown and PINs set,
PIN reset, lifting a suspension.  Card numbers are shown by their last 4 digits in lists.

The staff member recorded for every counter operation is the account logged in at the terminal
(the gate puts its session on ``request.state.staff``), never a name typed into the form.  For a
holder under 15 the PINs are set by the 法定代理人, chosen from the parents in the household and
identified with their own document (``domain/guardians.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from kojinbango.card.face import render_face
from kojinbango.common import i18n
from kojinbango.common.errors import BusinessError, NotFound, Unauthorised
from kojinbango.municipality.cards.models import CardInSafe, CounterRecord
from kojinbango.municipality.cards.service import IDENTITY_DOCUMENTS, CardDesk, LegalRepresentative


def acting_staff(request: Request) -> str:
    """The login of the staff member at this terminal, from the gate's session."""
    terminal = getattr(request.state, "staff", None)
    if terminal is None:  # only reachable if the gate is not installed in front of these pages
        raise Unauthorised("ログインしてください（not logged in: no staff member to record）")
    return str(terminal.login)


def _representative(resident_id: str, document: str) -> LegalRepresentative | None:
    """The 法定代理人 chosen on the form (empty when none was chosen)."""
    if not resident_id.strip():
        return None
    if not resident_id.strip().isdigit():
        raise BusinessError("choose the 法定代理人 from the list")
    return LegalRepresentative(int(resident_id), document)


def install(app: FastAPI, desk: CardDesk) -> None:
    templates = i18n.templates(app, Path(__file__).parent / "templates")
    templates.env.globals.update(municipality=desk.name, mode=desk.mode, documents=IDENTITY_DOCUMENTS)
    router = APIRouter(prefix="/staff/cards")

    def page(request: Request, name: str, status: int = 200, **ctx: Any) -> Any:
        return templates.TemplateResponse(request, name, ctx, status_code=status)

    @router.get("/", response_class=HTMLResponse)
    def cards(request: Request) -> Any:
        with desk.db.transaction() as s:
            waiting = list(
                s.scalars(
                    select(CardInSafe)
                    .where(CardInSafe.status.in_(["waiting", "issuing"]))
                    .order_by(CardInSafe.received_at)
                )
            )
            records = list(s.scalars(select(CounterRecord).order_by(CounterRecord.id.desc()).limit(30)))
        return page(request, "cards_list.html", waiting=waiting, records=records)

    def _card(serial: str) -> CardInSafe:
        with desk.db.transaction() as s:
            card = s.get(CardInSafe, serial)
            if card is None:
                raise NotFound("no card with this card number is kept here")
            return card

    def _detail(request: Request, serial: str, status: int = 200, error: str = "") -> Any:
        card = _card(serial)
        return page(
            request,
            "card_detail.html",
            status=status,
            card=card,
            representatives=desk.legal_representatives(card.resident_id),
            error=error,
        )

    @router.get("/pin-reset", response_class=HTMLResponse)
    def pin_reset_form(request: Request) -> Any:
        return page(request, "pin_reset.html", representatives=None)

    @router.post("/pin-reset", response_model=None)
    async def pin_reset(
        request: Request,
        card: UploadFile = File(...),
        which: str = Form(...),
        new_pin: str = Form(...),
        identity_document: str = Form(...),
        representative_id: str = Form(""),
        representative_document: str = Form(""),
    ) -> Any:
        data = await card.read(5_000_001)
        representatives = None
        try:
            if len(data) > 5_000_000:
                raise BusinessError("the card file is too large")
            chip_text = data.decode("utf-8", "replace")
            representative = _representative(representative_id, representative_document)
            if representative is None:
                representatives = desk.representatives_for_card(chip_text)
                if not representatives["required"]:
                    representatives = None
            text = desk.reset_pin(
                chip_text, which, new_pin, identity_document, acting_staff(request), representative
            )
        except BusinessError as exc:
            return page(
                request,
                "pin_reset.html",
                status=exc.status,
                error=str(exc),
                representatives=representatives,
            )
        return Response(
            text,
            media_type="application/json",
            headers={"content-disposition": 'attachment; filename="card.json"'},
        )

    @router.get("/resume", response_class=HTMLResponse)
    def resume_form(request: Request) -> Any:
        return page(request, "resume.html")

    @router.post("/resume", response_class=HTMLResponse)
    def resume(
        request: Request,
        card_serial: str = Form(...),
        identity_document: str = Form(...),
    ) -> Any:
        try:
            desk.lift_suspension(card_serial, identity_document, acting_staff(request))
        except BusinessError as exc:
            return page(request, "resume.html", status=exc.status, error=str(exc))
        return page(request, "resume.html", message=f"カード …{card_serial[-4:]} の一時停止を解除しました")

    @router.get("/{card_serial}", response_class=HTMLResponse)
    def detail(request: Request, card_serial: str) -> Any:
        return _detail(request, card_serial)

    @router.get("/{card_serial}/face.png")
    def face(card_serial: str) -> Response:
        return Response(render_face(_card(card_serial).face), media_type="image/png")

    @router.post("/{card_serial}/hand-over", response_model=None)
    def hand_over(
        request: Request,
        card_serial: str,
        identity_document: str = Form(...),
        auth_pin: str = Form(...),
        sign_pin: str = Form(""),
        photo_checked: str = Form(""),
        representative_id: str = Form(""),
        representative_document: str = Form(""),
    ) -> Any:
        try:
            if photo_checked != "1":
                raise BusinessError("confirm that the photo matches the person at the counter first")
            text = desk.hand_over(
                card_serial,
                identity_document,
                acting_staff(request),
                auth_pin,
                sign_pin or None,
                legal_representative=_representative(representative_id, representative_document),
            )
        except BusinessError as exc:
            return _detail(request, card_serial, exc.status, str(exc))
        return Response(
            text,
            media_type="application/json",
            headers={"content-disposition": 'attachment; filename="card.json"'},
        )

    app.include_router(router)
