"""HTTP routes of the card centre and the JPKI CA.

* ``/api/cards/…``, ``/api/jpki/…``: signed calls from municipalities and relying parties;
* ``/jpki/…``: the CA certificate, the CRL (DER) and the OCSP responder, published over plain HTTP;
* ``/cards/…``: what a resident does without an organisation's key (online application, the
  24-hour line, receiving a mailed card);
* ``/staff/cards/…``: J-LIS operators (the manufacture batch, keying postal applications).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from kojinbango.common.errors import BusinessError, Unauthorised
from kojinbango.common.topology import Topology
from kojinbango.common.transport import caller, require_internal
from kojinbango.jlis.cards.centre import CardCentre

CARD_SERIAL = Field(pattern=r"^[0-9]{16}$")
APPLICATION_ID = Field(pattern=r"^[0-9]{23}$")
BIRTH_DATE = Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class CounterApplication(BaseModel):
    application_id: str = APPLICATION_ID
    photo: str = Field(min_length=1)
    resolved: dict[str, Any]
    pin_verifiers: dict[str, Any] | None = None
    channel: str = "counter"
    reissue: bool = False


class OnlineApplication(BaseModel):
    lg_code: str = Field(pattern=r"^[0-9]{6}$")
    application_id: str = APPLICATION_ID
    photo: str = Field(min_length=1)


class IssueRequest(BaseModel):
    card_serial: str = CARD_SERIAL
    auth_public_key: str = Field(min_length=100, max_length=2000)
    sign_public_key: str | None = Field(default=None, min_length=100, max_length=2000)
    issue_key: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{16,64}$")


class CardRequest(BaseModel):
    card_serial: str = CARD_SERIAL


class AbolishRequest(BaseModel):
    card_serial: str = CARD_SERIAL
    reason: str = Field(min_length=1, max_length=40)


class ResidentCardsRequest(BaseModel):
    resident_code: str


class SuspendRequest(BaseModel):
    card_serial: str = CARD_SERIAL
    name: str = Field(min_length=1, max_length=100)
    birth_date: str = BIRTH_DATE


class ReceiveRequest(BaseModel):
    application_id: str = APPLICATION_ID
    birth_date: str = BIRTH_DATE


class SubscriberRequest(BaseModel):
    serial: str = Field(pattern=r"^[0-9]{1,50}$")


class LoginCheckRequest(SubscriberRequest):
    ocsp_request: str = Field(min_length=1, max_length=10_000, description="base64 DER OCSP request")


def install(app: FastAPI, centre: CardCentre, topology: Topology) -> None:
    api = APIRouter(prefix="/api")

    def municipality(request: Request) -> str:
        org = topology.org(caller(request))
        if org.kind != "municipality" or not org.lg_code:
            raise Unauthorised("only a municipality may make this request")
        return org.lg_code

    @api.post("/cards/applications")
    def counter_application(body: CounterApplication, request: Request) -> dict[str, Any]:
        """An application received at the municipality (申請時来庁方式 at the counter, or keyed by staff)."""
        lg = municipality(request)
        return centre.apply(
            lg,
            body.application_id,
            body.photo,
            body.channel,
            resolved=body.resolved,
            pin_verifiers=body.pin_verifiers,
            reissue=body.reissue,
        )

    @api.post("/cards/issue")
    def issue(body: IssueRequest, request: Request) -> dict[str, Any]:
        return centre.issue_at_counter(
            municipality(request),
            body.card_serial,
            body.auth_public_key,
            body.sign_public_key,
            body.issue_key,
        )

    @api.post("/cards/resume")
    def resume(body: CardRequest, request: Request) -> dict[str, Any]:
        return centre.resume(municipality(request), body.card_serial)

    @api.post("/cards/abolish")
    def abolish(body: AbolishRequest, request: Request) -> dict[str, Any]:
        lg = municipality(request)
        centre.card_info(body.card_serial, lg)  # the municipality of the card only
        return centre.abolish(lg, body.card_serial, body.reason)

    @api.post("/cards/info")
    def info(body: CardRequest, request: Request) -> dict[str, Any]:
        return centre.card_info(body.card_serial, municipality(request))

    @api.post("/cards/of-resident")
    def of_resident(body: ResidentCardsRequest, request: Request) -> dict[str, Any]:
        return {"cards": centre.cards_of(municipality(request), body.resident_code)}

    @api.get("/jpki/ca")
    def ca_certificate() -> dict[str, str]:
        return {"certificate_pem": centre.ca.pem().decode()}

    @api.post("/jpki/subscriber")
    def subscriber(body: SubscriberRequest, request: Request) -> dict[str, Any]:
        org = topology.org(caller(request))
        if org.kind != "portal":
            raise Unauthorised("only the portal may resolve a 利用者証明用電子証明書 to a person")
        return centre.subscriber(body.serial, org.id)

    @api.post("/jpki/login-check")
    def login_check(body: LoginCheckRequest, request: Request) -> dict[str, Any]:
        """The portal's login: OCSP status and subscriber in one signed call."""
        org = topology.org(caller(request))
        if org.kind != "portal":
            raise Unauthorised("only the portal may resolve a 利用者証明用電子証明書 to a person")
        try:
            der = base64.b64decode(body.ocsp_request, validate=True)
        except (ValueError, binascii.Error):
            raise BusinessError("ocsp_request is not base64") from None
        return centre.login_check(body.serial, org.id, der)

    @api.post("/jpki/holder")
    def holder(body: SubscriberRequest, request: Request) -> dict[str, Any]:
        """証明書情報連携: serial → 住民票コード, only for the holder's own municipality."""
        return centre.holder_of(body.serial, municipality(request))

    app.include_router(api)

    public = APIRouter()

    @public.get("/jpki/ca.pem")
    def ca_pem() -> Response:
        return Response(centre.ca.pem(), media_type="application/x-pem-file")

    @public.get("/jpki/ca.der")
    def ca_der() -> Response:
        return Response(centre.ca.der(), media_type="application/pkix-cert")

    @public.get("/jpki/crl.der")
    def crl() -> Response:
        return Response(centre.crl(), media_type="application/pkix-crl")

    @public.post("/jpki/ocsp")
    async def ocsp_post(request: Request) -> Response:
        body = await request.body()
        if len(body) > 10_000:
            raise BusinessError("an OCSP request is at most 10 KB")
        return Response(centre.ocsp(body), media_type="application/ocsp-response")

    @public.get("/jpki/ocsp/{encoded:path}")
    def ocsp_get(encoded: str) -> Response:
        try:
            der = base64.b64decode(encoded.replace("%2F", "/").replace("%2B", "+").replace("%3D", "="))
        except (ValueError, binascii.Error):
            raise BusinessError("the OCSP request in the URL is not base64") from None
        return Response(centre.ocsp(der), media_type="application/ocsp-response")

    @public.post("/cards/apply")
    def apply_online(body: OnlineApplication) -> dict[str, Any]:
        """オンライン申請: the resident sends the 申請書ID from the notice and a photo."""
        return centre.apply(body.lg_code, body.application_id, body.photo, "online")

    @public.post("/cards/callcentre/suspend")
    def suspend(body: SuspendRequest) -> dict[str, Any]:
        """マイナンバー総合フリーダイヤル (24h): suspend a lost card."""
        return centre.suspend(body.card_serial, body.name, body.birth_date)

    @public.post("/cards/post/receive")
    def receive(body: ReceiveRequest) -> dict[str, Any]:
        return {"card": centre.receive_by_post(body.application_id, body.birth_date)}

    @public.get("/cards/applications/{application}")
    def application_status(application: int) -> dict[str, Any]:
        return centre.application_status(application)

    @public.post("/staff/cards/manufacture", dependencies=[Depends(require_internal)])
    def manufacture() -> dict[str, int]:
        return centre.manufacture()

    @public.post("/staff/cards/applications/postal", dependencies=[Depends(require_internal)])
    def postal(body: OnlineApplication) -> dict[str, Any]:
        """郵送申請: J-LIS's 受付センター keys in a paper application."""
        return centre.apply(body.lg_code, body.application_id, body.photo, "post")

    app.include_router(public)
