"""Assemble the agency (日本年金機構) with its own intermediate server as one service."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from kojinbango.agency.models import MIGRATIONS
from kojinbango.agency.service import AgencyService
from kojinbango.common.app import OrgRuntime, close_sessions_on_shutdown, direct_json_route, org_app
from kojinbango.common.db import Database
from kojinbango.common.linkage import LinkageSettings, LockedNonceStore, limit_worker_threads
from kojinbango.common.staff_linkage import ExchangeForm, QueryForm, WaitingForm
from kojinbango.common.topology import Topology
from kojinbango.common.transport import (
    INTERNAL_PREFIXES,
    RemoteError,
    SignedClient,
    Unreachable,
    internal_staff,
    require_internal,
)
from kojinbango.intermediate import api as intermediate_api
from kojinbango.intermediate.app import service_for
from kojinbango.intermediate.models import MIGRATIONS as IM_MIGRATIONS
from kojinbango.intermediate.models import VERSION_TABLE as IM_VERSION_TABLE
from kojinbango.intermediate.models import seen_nonces


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
    intermediate = service_for(topology, org_id, db, client, [org_id])
    service = AgencyService(db, org_id, client, topology, trust, intermediate)
    app = org_app(
        org.name,
        creds,
        trust,
        db,
        LockedNonceStore(db, seen_nonces),
        allowed_callers=[network],
        internal_prefixes=INTERNAL_PREFIXES,  # the kojinbango commands: signed by this agency
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

    # The hot route of the exchange path, on the event loop (the exchange is awaited, no thread is
    # held) and answered by the signature middleware itself (``direct_json_route``: measured 0.15–0.2
    # ms of the agency's CPU per exchange less than through FastAPI's routing, dependency and body
    # handling). ``internal_staff`` refuses a request that did not come through the internal
    # interface, as the router's dependency does for the other staff routes.
    async def query(request: Request, body: QueryForm) -> dict[str, Any]:
        """A query by the agency's linkage staff (the number becomes a 符号 before it leaves)."""
        who = internal_staff(request, body.staff or "職員", 100)
        return await service.aquery(
            body.my_number, body.provider, body.affair, body.info, who, body.wait_seconds
        )

    direct_json_route(app, staff.prefix + "/query", QueryForm, query)

    @staff.post("/result")
    def result(body: ExchangeForm) -> dict[str, Any]:
        return service.result(body.exchange_id)

    @staff.post("/verify")
    def verify(body: ExchangeForm) -> dict[str, Any]:
        return service.verify_stored(body.exchange_id)

    @staff.post("/waiting")
    def waiting(body: WaitingForm) -> dict[str, Any]:
        return service.waiting(body.collect)

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
