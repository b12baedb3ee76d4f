"""Assemble the sample bank (a private 署名検証者) as a service."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from kojinbango.card.relying import JpkiVerifier
from kojinbango.common.app import OrgRuntime, org_app
from kojinbango.common.db import Database, DbNonceStore
from kojinbango.common.topology import Topology
from kojinbango.common.transport import SignedClient
from kojinbango.relying_party.models import seen_nonces
from kojinbango.relying_party.service import BankService, Refused

MIGRATIONS = "kojinbango.relying_party:migrations"


class OpenAccount(BaseModel):
    application: dict[str, Any]
    certificate: str = Field(min_length=1, max_length=20_000)
    signature: str = Field(min_length=1, max_length=2_000)


class _Clients:
    def __init__(self, *clients: Any):
        self.clients = clients

    def close(self) -> None:
        for c in self.clients:
            c.close()


def create(
    topology: Topology,
    org_id: str,
    directory: Mapping[str, str] | None = None,
    database_url: str | None = None,
) -> OrgRuntime:
    org = topology.org(org_id)
    creds = topology.credentials(org_id)
    trust = topology.trust_store()
    db = Database(database_url or topology.database_url(org_id), MIGRATIONS)
    client = SignedClient(creds, trust, dict(directory or topology.directory()))
    jlis = topology.of_kind("jlis")[0].id
    verifier = JpkiVerifier(
        lambda: str(client.call(jlis, "GET", "/api/jpki/ca")["certificate_pem"]),
        lambda: client.directory[jlis].rstrip("/") + "/jpki/ocsp",
    )
    service = BankService(db, org_id, verifier)
    app = org_app(org.name, creds, trust, db, DbNonceStore(db, seen_nonces), allowed_callers=())

    @app.exception_handler(Refused)
    async def _refused(_request: Request, exc: Refused) -> JSONResponse:
        return JSONResponse({"reason": exc.reason, "detail": exc.message}, status_code=exc.status)

    router = APIRouter(prefix="/accounts")

    @router.post("/challenge")
    def challenge() -> dict[str, Any]:
        return service.challenge()

    @router.post("/open")
    def open_account(body: OpenAccount) -> dict[str, Any]:
        return service.open_account(body.application, body.certificate, body.signature)

    app.include_router(router)
    return OrgRuntime(org_id, "relying_party", app, db, _Clients(client, verifier), {"bank": service})
