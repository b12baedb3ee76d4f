"""Signed API for the portal (マイポータル): a logged-in resident's お知らせ and 自己情報.

The portal names the resident only by the serial of the 利用者証明用電子証明書 its session used;
J-LIS's 証明書情報連携 (``/api/jpki/holder``) says whether that certificate belongs to a current
resident of this municipality and which.  Nothing identifying goes back to the portal except what
the resident is shown (numbers masked).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from kojinbango.common.errors import Unauthorised
from kojinbango.common.topology import Topology
from kojinbango.common.transport import RemoteError, SignedClient, caller
from kojinbango.domain.identifiers import mask_my_number
from kojinbango.municipality.outreach.service import OutreachService
from kojinbango.municipality.register.models import Household, Resident
from kojinbango.municipality.register.service import SEXES, full_address


class SerialRequest(BaseModel):
    serial: str = Field(min_length=1, max_length=50, pattern=r"^[0-9]+$")


class ReadRequest(SerialRequest):
    notice_id: int


def install(
    app: FastAPI, outreach: OutreachService, client: SignedClient, topology: Topology, jlis: str
) -> None:
    router = APIRouter(prefix="/api/portal")

    def from_portal(request: Request) -> None:
        if topology.org(caller(request)).kind != "portal":
            raise Unauthorised("only the portal makes this request")

    def resident_of(serial: str) -> Resident | None:
        try:
            holder = client.call(jlis, "POST", "/api/jpki/holder", {"serial": serial})
        except RemoteError as exc:
            if exc.status == 404:
                return None  # not a resident of this municipality
            raise
        with outreach.db.transaction() as s:
            return s.scalar(
                select(Resident).where(
                    Resident.resident_code == holder["resident_code"], Resident.status == "active"
                )
            )

    @router.post("/inbox")
    def inbox(body: SerialRequest, request: Request) -> dict[str, Any]:
        from_portal(request)
        if outreach.channel.name != "portal_pull":
            return {"notices": []}  # they travel through the network as お知らせ instead
        r = resident_of(body.serial)
        return {"notices": outreach.inbox(r.id) if r else []}

    @router.post("/inbox/read")
    def read(body: ReadRequest, request: Request) -> dict[str, Any]:
        from_portal(request)
        r = resident_of(body.serial)
        if r is None or outreach.channel.name != "portal_pull":
            return {"read": False}
        outreach.mark_read(r.id, body.notice_id)
        return {"read": True}

    @router.post("/self")
    def self_info(body: SerialRequest, request: Request) -> dict[str, Any]:
        """自己情報表示: what the register holds about the resident (住民票 and 世帯)."""
        from_portal(request)
        r = resident_of(body.serial)
        if r is None:
            return {"found": False}
        with outreach.db.transaction() as s:
            household = s.get(Household, r.household_id)
            members = list(
                s.scalars(
                    select(Resident)
                    .where(Resident.household_id == r.household_id, Resident.status == "active")
                    .order_by(Resident.id)
                )
            )
        return {
            "found": True,
            "holder": outreach.municipality,
            "name": f"{r.family_name}\u3000{r.given_name}",
            "kana": f"{r.family_kana}\u3000{r.given_kana}",
            "birth_date": r.birth_date.isoformat(),
            "sex": SEXES.get(r.sex, ""),
            "address": full_address(r.address, r.address_extra),
            "resident_since": r.resident_since.isoformat(),
            "my_number": mask_my_number(r.my_number) if r.my_number else "",
            "household_number_last4": household.household_number[-4:] if household else "",
            "household": [
                {"name": f"{m.family_name}\u3000{m.given_name}", "relationship": m.relationship}
                for m in members
            ],
        }

    app.include_router(router)
