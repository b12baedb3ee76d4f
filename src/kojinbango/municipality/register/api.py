"""The municipality's organisation-to-organisation API (via 住基ネット between municipalities)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel

from kojinbango.common.errors import Unauthorised
from kojinbango.common.topology import Topology
from kojinbango.common.transport import caller
from kojinbango.municipality.register.service import RegisterService


class ArrivalNotice(BaseModel):
    resident_codes: list[str]
    moved_in_on: dt.date


def install(app: FastAPI, service: RegisterService, topology: Topology) -> None:
    router = APIRouter(prefix="/api")

    @router.post("/moves/arrival")
    def arrival(body: ArrivalNotice, request: Request) -> dict[str, Any]:
        """転入通知: the new municipality reports that persons who moved out of here arrived."""
        sender = topology.org(caller(request))
        if sender.kind != "municipality" or not sender.lg_code:
            raise Unauthorised("only a municipality sends a 転入通知")
        return {
            "recorded": service.record_arrival_notice(sender.lg_code, body.resident_codes, body.moved_in_on)
        }

    app.include_router(router)
