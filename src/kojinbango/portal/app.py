"""Assemble the portal (マイポータル) as a service: the login page, the login API, the session."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from kojinbango.card.relying import JpkiVerifier
from kojinbango.common import i18n
from kojinbango.common.app import OrgRuntime, org_app
from kojinbango.common.db import Database, DbNonceStore
from kojinbango.common.topology import Topology
from kojinbango.common.transport import SignedClient
from kojinbango.portal import inbox, records, records_models
from kojinbango.portal.models import seen_nonces
from kojinbango.portal.service import LoginRefused, PortalService

MIGRATIONS = "kojinbango.portal:migrations"
COOKIE = "kojinbango_portal"
LOCAL_READER = re.compile(r"http://(127\.0\.0\.1|localhost):[0-9]{1,5}")


class LoginRequest(BaseModel):
    challenge_id: str = Field(min_length=1, max_length=64)
    certificate: str = Field(min_length=1, max_length=20_000, description="base64 DER or PEM")
    signature: str = Field(min_length=1, max_length=2_000, description="base64 RSA PKCS#1 v1.5 / SHA-256")


def create(
    topology: Topology,
    org_id: str,
    directory: Mapping[str, str] | None = None,
    database_url: str | None = None,
    reader_url: str | None = None,
) -> OrgRuntime:
    org = topology.org(org_id)
    creds = topology.credentials(org_id)
    trust = topology.trust_store()
    db = Database(
        database_url or topology.database_url(org_id),
        MIGRATIONS,
        extra_migrations=[(records_models.MIGRATIONS, records_models.VERSION_TABLE)],  # やりとり履歴
    )
    where = dict(directory or topology.directory())
    client = SignedClient(creds, trust, where)
    jlis = topology.of_kind("jlis")[0].id
    verifier = JpkiVerifier(
        lambda: str(client.call(jlis, "GET", "/api/jpki/ca")["certificate_pem"]),
        lambda: client.directory[jlis].rstrip("/") + "/jpki/ocsp",
    )
    service = PortalService(
        db,
        org_id,
        verifier,
        lambda serial, ocsp_der: client.call(
            jlis,
            "POST",
            "/api/jpki/login-check",
            {"serial": serial, "ocsp_request": base64.b64encode(ocsp_der).decode()},
        ),
    )
    app = org_app(f"{org.name}", creds, trust, db, DbNonceStore(db, seen_nonces), allowed_callers=())
    templates = i18n.templates(app, Path(__file__).parent / "templates")
    reader = reader_url or str(topology.settings.get("reader_url", "http://127.0.0.1:8790"))

    records_service: records.RecordsService | None = None
    if topology.of_kind("network"):  # やりとり履歴 (information linkage, seed 3-3)
        network = topology.of_kind("network")[0].id
        records_service = records.RecordsService(db, org_id, client, trust, jlis, network)
        records.install(app, records_service, _token)

    # お知らせ and 自己情報表示, asked of the municipalities with the session's certificate serial
    inbox_service = inbox.InboxService(
        db,
        client,
        [(m.id, m.name) for m in topology.of_kind("municipality")],
        records_service.network if records_service else None,  # お知らせ through the network
        _fugo_of(records_service) if records_service else None,
    )
    inbox.install(app, inbox_service, _token)

    @app.exception_handler(LoginRefused)
    async def _refused(_request: Request, exc: LoginRefused) -> JSONResponse:
        return JSONResponse({"reason": exc.reason, "detail": exc.message}, status_code=exc.status)

    router = APIRouter()

    @router.get("/", response_class=HTMLResponse)
    def page(request: Request, reader_url: str = "") -> Any:
        """The login page; ``?reader_url=`` points it at another local reader (127.0.0.1 only)."""
        use = reader_url if LOCAL_READER.fullmatch(reader_url) else reader
        return templates.TemplateResponse(request, "login.html", {"portal": org.name, "reader_url": use})

    @router.post("/login/challenge")
    def challenge() -> dict[str, Any]:
        return service.challenge()

    @router.post("/login")
    def login(body: LoginRequest) -> JSONResponse:
        # The login's one transaction also records the certificate the session used (which
        # やりとり履歴 and the inbox ask with).
        result = service.login(body.challenge_id, body.certificate, body.signature)
        resp = JSONResponse(result)
        resp.set_cookie(COOKIE, result["session"], httponly=True, samesite="strict", max_age=1800)
        return resp

    @router.get("/me")
    def me(request: Request) -> dict[str, Any]:
        return service.me(_token(request))

    @router.post("/logout")
    def logout(request: Request) -> JSONResponse:
        service.logout(_token(request))
        resp = JSONResponse({"logged_out": True})
        resp.delete_cookie(COOKIE)
        return resp

    app.include_router(router)
    return OrgRuntime(org_id, "portal", app, db, _Clients(client, verifier), {"portal": service})


def _fugo_of(records_service: records.RecordsService) -> Any:
    """Session token → the portal's 符号 for its resident (the one やりとり履歴 uses)."""
    return lambda token: records_service._fugo(*records_service._session(token))


class _Clients:
    def __init__(self, *clients: Any):
        self.clients = clients

    def close(self) -> None:
        for c in self.clients:
            c.close()


def _token(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    token = request.cookies.get(COOKIE)
    if not token:
        raise LoginRefused("not_logged_in", "not logged in")
    return token
