"""Counter screens of the issuance desk: cards waiting, hand-over with the photo shown and PINs set,
PIN reset, lifting a suspension.  Card numbers are shown by their last 4 digits in lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from kojinbango.card.face import render_face
from kojinbango.common.errors import BusinessError, NotFound
from kojinbango.municipality.cards.models import CardInSafe, CounterRecord
from kojinbango.municipality.cards.service import IDENTITY_DOCUMENTS, CardDesk


def install(app: FastAPI, desk: CardDesk) -> None:
    templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
    templates.env.globals.update(municipality=desk.name, mode=desk.mode, documents=IDENTITY_DOCUMENTS)
    router = APIRouter(prefix="/staff/cards")

    def page(request: Request, name: str, status: int = 200, **ctx: Any) -> Any:
        return templates.TemplateResponse(request, name, ctx, status_code=status)

    @router.get("/", response_class=HTMLResponse)
    def cards(request: Request) -> Any:
        with desk.db.transaction() as s:
            waiting = list(
                s.scalars(
                    select(CardInSafe).where(CardInSafe.status == "waiting").order_by(CardInSafe.received_at)
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

    @router.get("/pin-reset", response_class=HTMLResponse)
    def pin_reset_form(request: Request) -> Any:
        return page(request, "pin_reset.html")

    @router.post("/pin-reset", response_model=None)
    async def pin_reset(
        request: Request,
        card: UploadFile = File(...),
        which: str = Form(...),
        new_pin: str = Form(...),
        identity_document: str = Form(...),
        staff: str = Form(...),
    ) -> Any:
        data = await card.read(5_000_001)
        try:
            if len(data) > 5_000_000:
                raise BusinessError("the card file is too large")
            text = desk.reset_pin(data.decode("utf-8", "replace"), which, new_pin, identity_document, staff)
        except BusinessError as exc:
            return page(request, "pin_reset.html", status=exc.status, error=str(exc))
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
        staff: str = Form(...),
    ) -> Any:
        try:
            desk.lift_suspension(card_serial, identity_document, staff)
        except BusinessError as exc:
            return page(request, "resume.html", status=exc.status, error=str(exc))
        return page(request, "resume.html", message=f"カード …{card_serial[-4:]} の一時停止を解除しました")

    @router.get("/{card_serial}", response_class=HTMLResponse)
    def detail(request: Request, card_serial: str) -> Any:
        return page(request, "card_detail.html", card=_card(card_serial))

    @router.get("/{card_serial}/face.png")
    def face(card_serial: str) -> Response:
        return Response(render_face(_card(card_serial).face), media_type="image/png")

    @router.post("/{card_serial}/hand-over", response_model=None)
    def hand_over(
        request: Request,
        card_serial: str,
        identity_document: str = Form(...),
        staff: str = Form(...),
        auth_pin: str = Form(...),
        sign_pin: str = Form(""),
        photo_checked: str = Form(""),
    ) -> Any:
        try:
            if photo_checked != "1":
                raise BusinessError("confirm that the photo matches the person at the counter first")
            text = desk.hand_over(card_serial, identity_document, staff, auth_pin, sign_pin or None)
        except BusinessError as exc:
            return page(
                request, "card_detail.html", status=exc.status, card=_card(card_serial), error=str(exc)
            )
        return Response(
            text,
            media_type="application/json",
            headers={"content-disposition": 'attachment; filename="card.json"'},
        )

    app.include_router(router)
