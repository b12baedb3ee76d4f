"""Assemble the agency (日本年金機構) with its own intermediate server as one service."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError

from kojinbango.agency.models import MIGRATIONS
from kojinbango.agency.service import AgencyService
from kojinbango.common import jsoncodec
from kojinbango.common.app import OrgRuntime, close_sessions_on_shutdown, org_app
from kojinbango.common.db import Database
from kojinbango.common.linkage import LinkageSettings, LockedNonceStore, limit_worker_threads, public_id
from kojinbango.common.topology import Topology
from kojinbango.common.transport import (
    INTERNAL_PREFIXES,
    DirectRoute,
    RemoteError,
    SignedClient,
    Unreachable,
    internal_staff,
    require_internal,
)
from kojinbango.intermediate import api as intermediate_api
from kojinbango.intermediate.models import MIGRATIONS as IM_MIGRATIONS
from kojinbango.intermediate.models import VERSION_TABLE as IM_VERSION_TABLE
from kojinbango.intermediate.models import seen_nonces
from kojinbango.intermediate.service import IntermediateService


class QueryForm(BaseModel):
    my_number: str = Field(min_length=1, max_length=20)
    provider: str = Field(min_length=1, max_length=40)
    affair: str = Field(min_length=1, max_length=40)
    info: str = Field(min_length=1, max_length=40)
    staff: str = Field(default="職員", max_length=100)
    wait_seconds: float = Field(default=10.0, ge=0, le=120)


class ExchangeForm(BaseModel):
    exchange_id: str = Field(min_length=1, max_length=32)


def create(
    topology: Topology,
    org_id: str,
    directory: Mapping[str, str] | None = None,
    database_url: str | None = None,
) -> OrgRuntime:
    org = topology.org(org_id)
    creds = topology.credentials(org_id)
    trust = topology.trust_store()
    settings = LinkageSettings.of(topology)
    db = Database(
        database_url or topology.database_url(org_id),
        MIGRATIONS,
        extra_migrations=[(IM_MIGRATIONS, IM_VERSION_TABLE)],
    )
    client = SignedClient(creds, trust, directory or topology.directory(), timeout=30.0)
    network = topology.of_kind("network")[0].id
    intermediate = IntermediateService(
        db, creds, [org_id], network, client.call, {o: public_id(topology, o) for o in topology.organisations},
        settings.retention_years, acall=client.acall, sealing_key=topology.sealing_key_now,
        batches_in_flight=settings.batches_in_flight,
    )  # fmt: skip
    service = AgencyService(db, org_id, client, topology, trust, intermediate)
    direct: dict[tuple[str, str], DirectRoute] = {}
    app = org_app(
        org.name,
        creds,
        trust,
        db,
        LockedNonceStore(db, seen_nonces),
        allowed_callers=[network],
        internal_prefixes=INTERNAL_PREFIXES,  # the kojinbango commands: signed by this agency
        direct_routes=direct,
    )
    intermediate_api.install_if(app, intermediate, network)

    @app.exception_handler(Unreachable)
    async def _unreachable(_request: Any, exc: Unreachable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(RemoteError)
    async def _remote(_request: Any, exc: RemoteError) -> JSONResponse:
        return JSONResponse({"detail": f"{exc.org_id}: {exc.detail}"}, status_code=502)

    # The agency's own systems (kojinbango commands), signed with its key: SignatureMiddleware.
    staff = APIRouter(prefix="/staff/linkage/api", dependencies=[Depends(require_internal)])

    # The hot route of the exchange path (on the event loop: the exchange is awaited, no thread is
    # held): its body parsed and checked by the model in one step and its answer encoded once. The
    # signature middleware answers it itself (``direct_routes``), past FastAPI's routing, dependency
    # and body handling (measured: 0.15–0.2 ms of the agency's CPU per exchange); the route below
    # documents it in the OpenAPI description and answers the same way.
    async def answer_query(request: Request, raw: bytes) -> Response:
        try:
            body = QueryForm.model_validate_json(raw)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None
        who = internal_staff(request, body.staff or "職員", 100)
        out = await service.aquery(
            body.my_number, body.provider, body.affair, body.info, who, body.wait_seconds
        )
        return Response(jsoncodec.encode(out), media_type="application/json")

    @staff.post(
        "/query",
        response_class=Response,
        openapi_extra={"requestBody": {"required": True,
                                       "content": {"application/json": {"schema": QueryForm.model_json_schema()}}}},
    )  # fmt: skip
    async def query(request: Request) -> Response:
        return await answer_query(request, await request.body())

    direct[("POST", staff.prefix + "/query")] = answer_query

    @staff.post("/result")
    def result(body: ExchangeForm) -> dict[str, Any]:
        return service.result(body.exchange_id)

    @staff.post("/verify")
    def verify(body: ExchangeForm) -> dict[str, Any]:
        return service.verify_stored(body.exchange_id)

    @staff.post("/refresh")
    def refresh() -> dict[str, Any]:
        return {"fugo": service.ensure_fugo(), "copies": service.refresh()}

    app.include_router(staff)
    limit_worker_threads(app, settings.worker_threads)
    close_sessions_on_shutdown(app, client)
    runtime = OrgRuntime(org_id, "agency", app, db, client, {"agency": service, "intermediate": intermediate})
    intermediate.start()
    runtime.closers.append(intermediate.stop)
    return runtime
