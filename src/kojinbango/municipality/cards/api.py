"""The card desk's routes.

* ``/api/cards/…``: signed calls from J-LIS (resolving an application, delivering a card);
* ``/staff/cards/api/…``: the issuance desk's terminal as JSON for the ``kojinbango`` commands,
  which run on the municipality's side: outside the staff login, but every request must be signed
  with the municipality's own key (``SignatureMiddleware``'s internal interfaces); the typed staff
  name is recorded marked as having come that way (``INTERNAL_STAFF_MARK``).  The screens under
  ``/staff/cards/`` are behind the login and record the logged-in account.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, Field

from kojinbango.common.errors import BusinessError, Unauthorised
from kojinbango.common.topology import Topology
from kojinbango.common.transport import caller, internal_staff, require_internal
from kojinbango.municipality.cards.service import CardDesk, LegalRepresentative

CARD_SERIAL = Field(pattern=r"^[0-9]{16}$")
APPLICATION_ID = Field(pattern=r"^[0-9]{23}$")
STAFF_LENGTH = 40  # card_counter_records.staff


class ResolveRequest(BaseModel):
    application_id: str = APPLICATION_ID
    channel: str = "online"


class Delivery(BaseModel):
    card_serial: str = CARD_SERIAL
    application_id: str = APPLICATION_ID
    expires_on: str
    chip: str = Field(min_length=2, max_length=5_000_000)


class Representative(BaseModel):
    """法定代理人 of a holder under 15: a household member (internal id) and the document shown."""

    resident_id: int
    identity_document: str

    def value(self) -> LegalRepresentative:
        return LegalRepresentative(self.resident_id, self.identity_document)


def _rep(r: Representative | None) -> LegalRepresentative | None:
    return None if r is None else r.value()


class FindRequest(BaseModel):
    resident_code: str


class CounterApplication(BaseModel):
    application_id: str = APPLICATION_ID
    photo: str = Field(min_length=1, description="base64 JPEG or PNG")
    identity_document: str
    staff: str
    auth_pin: str | None = None
    sign_pin: str | None = None
    reissue: bool = False
    legal_representative: Representative | None = None


class HandOver(BaseModel):
    card_serial: str = CARD_SERIAL
    identity_document: str
    staff: str
    auth_pin: str
    sign_pin: str | None = None
    legal_representative: Representative | None = None


class PinReset(BaseModel):
    card: str = Field(min_length=2, max_length=5_000_000, description="the card file's content")
    which: str = Field(pattern=r"^(auth|sign|juki|hojo)$")
    new_pin: str
    identity_document: str
    staff: str
    legal_representative: Representative | None = None


class CardFile(BaseModel):
    card: str = Field(min_length=2, max_length=5_000_000, description="the card file's content")


class CounterCard(BaseModel):
    card_serial: str = CARD_SERIAL
    identity_document: str
    staff: str


class Abolish(BaseModel):
    card_serial: str = CARD_SERIAL
    reason: str
    staff: str
    identity_document: str | None = None


def decode_photo(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise BusinessError("the photo must be base64-encoded JPEG or PNG") from None


def install(app: FastAPI, desk: CardDesk, topology: Topology) -> None:
    api = APIRouter(prefix="/api/cards")

    def from_jlis(request: Request) -> None:
        if topology.org(caller(request)).kind != "jlis":
            raise Unauthorised("only J-LIS makes this request")

    @api.post("/applications/resolve")
    def resolve(body: ResolveRequest, request: Request) -> dict[str, Any]:
        from_jlis(request)
        return desk.resolve(body.application_id, body.channel)

    @api.post("/deliveries")
    def deliveries(body: Delivery, request: Request) -> dict[str, Any]:
        from_jlis(request)
        return desk.receive_delivery(body.card_serial, body.application_id, body.expires_on, body.chip)

    app.include_router(api)

    staff = APIRouter(prefix="/staff/cards/api", dependencies=[Depends(require_internal)])

    def who(request: Request, typed: str) -> str:
        return internal_staff(request, typed, STAFF_LENGTH)

    @staff.post("/find")
    def find(body: FindRequest) -> dict[str, Any]:
        return desk.find(body.resident_code)

    @staff.post("/apply")
    def apply(body: CounterApplication, request: Request) -> dict[str, Any]:
        return desk.apply_at_counter(
            body.application_id,
            decode_photo(body.photo),
            body.identity_document,
            who(request, body.staff),
            body.auth_pin,
            body.sign_pin,
            body.reissue,
            _rep(body.legal_representative),
        )

    @staff.post("/waiting")
    def waiting(body: FindRequest) -> dict[str, Any]:
        rid = desk.find(body.resident_code)["resident_id"]
        return {"card_serial": desk.waiting_card(rid)}

    @staff.post("/hand-over")
    def hand_over(body: HandOver, request: Request) -> dict[str, Any]:
        card = desk.hand_over(
            body.card_serial,
            body.identity_document,
            who(request, body.staff),
            body.auth_pin,
            body.sign_pin,
            legal_representative=_rep(body.legal_representative),
        )
        return {"card": card}

    @staff.post("/pin-reset")
    def pin_reset(body: PinReset, request: Request) -> dict[str, Any]:
        return {
            "card": desk.reset_pin(
                body.card,
                body.which,
                body.new_pin,
                body.identity_document,
                who(request, body.staff),
                _rep(body.legal_representative),
            )
        }

    @staff.post("/representatives")
    def representatives(body: CardFile) -> dict[str, Any]:
        """Whether the holder of this card is under 15, and who may act as 法定代理人."""
        return desk.representatives_for_card(body.card)

    @staff.post("/resume")
    def resume(body: CounterCard, request: Request) -> dict[str, Any]:
        return desk.lift_suspension(body.card_serial, body.identity_document, who(request, body.staff))

    @staff.post("/abolish")
    def abolish(body: Abolish, request: Request) -> dict[str, Any]:
        return desk.abolish(body.card_serial, body.reason, who(request, body.staff), body.identity_document)

    app.include_router(staff)
