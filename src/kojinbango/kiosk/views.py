"""The kiosk page (/kiosk/) and its JSON endpoints."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from kojinbango.common import i18n
from kojinbango.kiosk.service import KioskRefused, KioskService

KIOSK_WORKERS = 4  # documents being made at once per municipality
LOCAL_READER = re.compile(r"http://(127\.0\.0\.1|localhost):[0-9]{1,5}")


class IssueRequest(BaseModel):
    challenge_id: str = Field(min_length=32, max_length=32, pattern=r"^[0-9a-f]+$")
    created: int
    certificate: str = Field(min_length=1, max_length=20_000)
    signature: str = Field(min_length=1, max_length=2_000)
    scope: str = Field(default="self", pattern=r"^(self|household)$")
    with_my_number: bool = False


def install(app: FastAPI, kiosk: KioskService, municipality: str, reader_url: str) -> None:
    templates = i18n.templates(app, Path(__file__).parent / "templates")
    router = APIRouter(prefix="/kiosk")

    @router.get("/", response_class=HTMLResponse)
    def page(request: Request, reader: str = "") -> Any:
        """``?reader=`` points the page at another local reader (127.0.0.1/localhost only)."""
        use = reader if LOCAL_READER.fullmatch(reader) else reader_url
        return templates.TemplateResponse(
            request, "kiosk.html", {"municipality": municipality, "reader_url": use}
        )

    @router.post("/challenge")
    def challenge() -> dict[str, Any]:
        return kiosk.challenge()

    # Issuing is CPU-bound (OCSP check, PDF, PAdES signature): a few at a time, the rest queue on
    # the event loop — dozens of threads contending for the GIL starved the other services of the
    # same process (J-LIS's OCSP responder timed out under the kiosk load test).
    limiter = anyio.CapacityLimiter(KIOSK_WORKERS)

    @router.post("/issue")
    async def issue(body: IssueRequest) -> Response:
        try:
            doc = await anyio.to_thread.run_sync(
                kiosk.issue,
                body.challenge_id,
                body.created,
                body.certificate,
                body.signature,
                body.scope,
                body.with_my_number,
                limiter=limiter,
            )
        except KioskRefused as exc:
            return JSONResponse({"reason": exc.reason, "detail": str(exc)}, status_code=exc.status)
        return JSONResponse(
            {
                "kiosk_request": doc.request_id,
                "document_number": doc.issued.document_number,
                "pdf": base64.b64encode(doc.issued.pdf).decode(),
            }
        )

    app.include_router(router)
