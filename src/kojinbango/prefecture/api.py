"""The prefecture's HTTP API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel

from kojinbango.common.transport import caller
from kojinbango.prefecture.service import PrefectureService


class ChangesRequest(BaseModel):
    changes: list[dict[str, Any]]


def install(app: FastAPI, service: PrefectureService) -> None:
    router = APIRouter(prefix="/api")

    @router.post("/identity/changes")
    def receive(body: ChangesRequest, request: Request) -> dict[str, Any]:
        accepted = service.receive(caller(request), body.changes)
        forwarded = service.forward()
        return {"accepted": accepted, "forwarded": forwarded, "pending": service.pending()}

    app.include_router(router)
