"""Staff routes of information linkage (``/staff/linkage/…``).

JSON under ``/staff/linkage/api/`` for the ``kojinbango`` commands, which run on the municipality's
side: every request must be signed with the municipality's own key (``SignatureMiddleware``'s
internal interfaces, docs/security.md); the typed staff name is recorded marked as such.  A query (staff type the 個人番号 in the POST body; it is never in
a URL or a log), collecting a pending answer, the queries still waiting, re-checking a stored answer,
the 副本 refresh.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from kojinbango.common.staff_linkage import ExchangeForm, QueryForm, WaitingForm
from kojinbango.common.transport import RemoteError, Unreachable, internal_staff, require_internal
from kojinbango.municipality.linkage.service import LinkageService


class RefreshForm(BaseModel):
    categories: list[str] | None = None
    full: bool = True
    fugo: bool = True


def install(app: FastAPI, service: LinkageService) -> None:
    router = APIRouter(prefix="/staff/linkage/api", dependencies=[Depends(require_internal)])

    @app.exception_handler(Unreachable)
    async def _unreachable(_request: Any, exc: Unreachable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(RemoteError)
    async def _remote(_request: Any, exc: RemoteError) -> JSONResponse:
        return JSONResponse({"detail": f"{exc.org_id}: {exc.detail}"}, status_code=502)

    @router.post("/query")  # on the event loop: waiting for the exchange holds no thread
    async def query(body: QueryForm, request: Request) -> dict[str, Any]:
        who = internal_staff(request, body.staff or "職員", 100)
        return await service.aquery(
            body.my_number, body.provider, body.affair, body.info, who, body.wait_seconds
        )

    @router.post("/result")
    def result(body: ExchangeForm) -> dict[str, Any]:
        return service.result(body.exchange_id)

    @router.post("/verify")
    def verify(body: ExchangeForm) -> dict[str, Any]:
        return service.verify_stored(body.exchange_id)

    @router.post("/waiting")
    def waiting(body: WaitingForm) -> dict[str, Any]:
        return service.waiting(body.collect)

    @router.post("/refresh")
    def refresh(body: RefreshForm) -> dict[str, Any]:
        service.enable()
        out: dict[str, Any] = {}
        if body.fugo:
            out["fugo"] = service.ensure_fugo()
        out["copies"] = service.refresh(body.categories, full=body.full)
        return out

    @router.get("/answers")
    def answers() -> dict[str, Any]:
        return {"answers": service.answers()}

    app.include_router(router)
