"""Staff routes of information linkage (``/staff/linkage/…``).

JSON under ``/staff/linkage/api/`` for the ``kojinbango`` commands, which run on the municipality's
side: every request must be signed with the municipality's own key (``SignatureMiddleware``'s
internal interfaces, docs/security.md); the typed staff name is recorded marked as such.  A query (staff type the 個人番号 in the POST body; it is never in
a URL or a log), collecting a pending answer, the queries still waiting, re-checking a stored answer,
the 副本 refresh.

The linkage staff's screen (``/staff/admin/linkage``, 管理者): the 登録状況 of this municipality's
side — 符号 obtained, 副本 registered per category and at the intermediate server — and the
nightly batch run now, recorded in the access log.  It shows counts and times, never a person.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from kojinbango.common import i18n
from kojinbango.common.errors import BusinessError
from kojinbango.common.staff_linkage import ExchangeForm, QueryForm, WaitingForm
from kojinbango.common.transport import RemoteError, Unreachable, internal_staff, require_internal
from kojinbango.municipality.linkage.service import LinkageService
from kojinbango.municipality.staff.service import StaffService

STATUS_PATH = "/staff/admin/linkage"
NO_NETWORK = "情報連携（ネットワーク）がこの環境にありません"


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
        return service.refresh_now(body.categories, full=body.full, fugo=body.fugo)

    @router.get("/answers")
    def answers() -> dict[str, Any]:
        return {"answers": service.answers()}

    app.include_router(router)


def install_status_page(
    app: FastAPI, staff: StaffService, municipality: str, linkage: Callable[[], LinkageService | None]
) -> None:
    """情報連携の登録状況 for the municipality's 管理者 (the staff gate checks the role); ``linkage``
    gives the service once the deployment has the network."""
    here = Path(__file__).parent
    templates = i18n.templates(app, here / "templates", here.parent / "staff" / "templates")  # its frame
    templates.env.globals.update(municipality=municipality, idle_seconds=int(staff.idle.total_seconds()))

    def page(request: Request, **extra: Any) -> Response:
        service = linkage()
        context: dict[str, Any] = {"terminal": request.state.staff, "status": None, **extra}
        if service is None:
            context["error"] = NO_NETWORK
            return templates.TemplateResponse(request, "linkage_status.html", context, status_code=503)
        context["status"] = service.status()
        return templates.TemplateResponse(request, "linkage_status.html", context)

    @app.get(STATUS_PATH, response_class=HTMLResponse, include_in_schema=False)
    def status(request: Request) -> Response:
        return page(request)

    @app.post(STATUS_PATH + "/refresh", response_class=HTMLResponse, include_in_schema=False)
    def refresh(request: Request) -> Response:
        """The nightly batch now: missing 符号 obtained, then every category's 副本 (changed ones
        sent, the rest confirmed as current)."""
        service = linkage()
        if service is None:
            return page(request)
        try:
            done = service.refresh_now()
        except (Unreachable, RemoteError, BusinessError) as exc:
            staff.record(
                request.state.staff, "refresh_failed", STATUS_PATH, "linkage", None, {"error": str(exc)[:200]}
            )
            return page(request, refresh_error=str(exc))
        detail = {c: r.get("changed", 0) for c, r in done["copies"].items()}
        staff.record(
            request.state.staff,
            "refresh",
            STATUS_PATH,
            "linkage",
            None,
            {"fugo": done["fugo"], "changed": detail},
        )
        return page(request, refreshed=done)
