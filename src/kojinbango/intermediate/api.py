"""The intermediate server's HTTP API.

* ``/api/tenant/…`` — the tenants' own systems.  The tenant is the organisation that signed the
  request; there is no way to name another one.
* ``/api/if/…`` — the network's IF system only: 符号 delivery and queries to answer.
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field

from kojinbango.common.app import direct_json_route
from kojinbango.common.batching import MAX_BATCH, encode_outcome
from kojinbango.common.errors import BusinessError, Unauthorised
from kojinbango.common.transport import caller
from kojinbango.intermediate.service import IntermediateService

NUMBER = Field(min_length=1, max_length=20, pattern=r"^[0-9A-Za-z-]+$")
ACQ = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9-]+$")
REQUEST_ID = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


class Expectation(BaseModel):
    acquisition_number: str = ACQ
    integrated_number: str = NUMBER


class ExpectRequest(BaseModel):
    items: list[Expectation] = Field(max_length=5000)


class HeldRequest(BaseModel):
    integrated_numbers: list[str] = Field(max_length=20000)


class CopyItem(BaseModel):
    integrated_number: str = NUMBER
    data: dict[str, Any]
    as_of: str | None = None
    layout_version: int | None = None


class CopiesRequest(BaseModel):
    category: str = Field(min_length=1, max_length=40)
    items: list[CopyItem] = Field(default_factory=list, max_length=5000)
    deletions: list[str] = Field(default_factory=list, max_length=20000)
    complete_as_of: str | None = None


class CopyGet(BaseModel):
    integrated_number: str = NUMBER
    category: str = Field(min_length=1, max_length=40)


class QueryRequest(BaseModel):
    request_id: str = REQUEST_ID
    integrated_number: str = NUMBER
    provider: str = Field(min_length=1, max_length=40)
    affair: str = Field(min_length=1, max_length=40)
    info: str = Field(min_length=1, max_length=40)
    wait: bool = True


class ResultRequest(BaseModel):
    exchange_id: str | None = Field(default=None, max_length=32)
    request_id: str | None = Field(default=None, max_length=64)


class RecordsRequest(BaseModel):
    integrated_number: str | None = Field(default=None, max_length=20)
    exchange_id: str | None = Field(default=None, max_length=32)


class FugoItem(BaseModel):
    acquisition_number: str = ACQ
    fugo: str = Field(min_length=1, max_length=64)


class FugoDelivery(BaseModel):
    tenant: str = Field(min_length=1, max_length=40)
    items: list[FugoItem] = Field(max_length=5000)


class ProvideRequest(BaseModel):
    exchange_id: str = Field(min_length=1, max_length=32)
    tenant: str = Field(min_length=1, max_length=40)
    fugo: str = Field(min_length=1, max_length=64)
    querier: str = Field(min_length=1, max_length=40)
    querier_name: str = Field(default="", max_length=200)
    affair: str = Field(min_length=1, max_length=40)
    info: str = Field(min_length=1, max_length=40)
    requested_at: str = Field(min_length=1, max_length=40)


class ProvideBatch(BaseModel):
    items: list[ProvideRequest] = Field(min_length=1, max_length=MAX_BATCH)


def install_if(app: FastAPI, service: IntermediateService, network: str) -> None:
    """The routes the network's IF system calls."""
    router = APIRouter(prefix="/api/if")

    def from_network(request: Request) -> None:
        if caller(request) != network:
            raise Unauthorised("only the network's IF system may call this")

    # 符号 deliveries (large batches) run on threads of their own: a tenant's blocking query waiting
    # for the network must never hold the thread the network's call to this same server needs.
    limiter = anyio.CapacityLimiter(16)

    @router.post("/fugo")
    async def fugo(body: FugoDelivery, request: Request) -> dict[str, Any]:
        from_network(request)
        items = [i.model_dump() for i in body.items]
        out: dict[str, Any] = await anyio.to_thread.run_sync(
            service.store_fugo, body.tenant, items, limiter=limiter
        )
        return out

    # A provision is one short transaction and a signature: on the event loop, no thread hop;
    # answered by the signature middleware itself (the exchange path's hot routes).
    async def provide(request: Request, body: ProvideRequest) -> dict[str, Any]:
        """One query the network delivers: the signed answer document."""
        from_network(request)
        return service.provide(body.model_dump())

    async def provide_batch(request: Request, body: ProvideBatch) -> dict[str, Any]:
        """Queries the network delivers together: one outcome per item, in order."""
        from_network(request)
        outcomes = service.provide_many([i.model_dump() for i in body.items])
        return {"results": [encode_outcome(o) for o in outcomes]}

    direct_json_route(app, "/api/if/provide", ProvideRequest, provide)
    direct_json_route(app, "/api/if/provide/batch", ProvideBatch, provide_batch)
    app.include_router(router)


def install_tenant(app: FastAPI, service: IntermediateService) -> None:
    """The routes a tenant's own systems call (the tenant is the signer)."""
    router = APIRouter(prefix="/api/tenant")

    def tenant(request: Request) -> str:
        org = caller(request)
        if org not in service.tenants:
            raise Unauthorised("this organisation is not a tenant of this intermediate server")
        return org

    @router.post("/fugo/expect")
    def expect(body: ExpectRequest, request: Request) -> dict[str, Any]:
        return {"expected": service.expect_fugo(tenant(request), [i.model_dump() for i in body.items])}

    @router.post("/fugo/held")
    def held(body: HeldRequest, request: Request) -> dict[str, Any]:
        return {"held": service.with_fugo(tenant(request), body.integrated_numbers)}

    @router.post("/copies")
    def copies(body: CopiesRequest, request: Request) -> dict[str, Any]:
        return service.register_copies(
            tenant(request),
            body.category,
            [i.model_dump() for i in body.items],
            body.deletions,
            body.complete_as_of,
        )

    @router.post("/copies/get")
    def copy_get(body: CopyGet, request: Request) -> dict[str, Any]:
        return service.copy_of(tenant(request), body.integrated_number, body.category)

    @router.post("/copies/counts")
    def copy_counts(request: Request) -> dict[str, Any]:
        return {"counts": service.copy_counts(tenant(request))}

    # On the event loop: the query waits for the network (and the network for the provider, which
    # may be this same server) without holding a thread.
    @router.post("/queries")
    async def query(body: QueryRequest, request: Request) -> dict[str, Any]:
        return await service.aquery(
            tenant(request),
            body.request_id,
            body.integrated_number,
            body.provider,
            body.affair,
            body.info,
            body.wait,
        )

    @router.post("/queries/result")
    def result(body: ResultRequest, request: Request) -> dict[str, Any]:
        if not body.exchange_id and not body.request_id:
            raise BusinessError("give exchange_id (処理通番) or request_id")
        return service.result(tenant(request), body.exchange_id, body.request_id)

    @router.post("/queries/pending")
    def pending(request: Request) -> dict[str, Any]:
        return {"pending": service.pending(tenant(request))}

    @router.post("/records")
    def records(body: RecordsRequest, request: Request) -> dict[str, Any]:
        return {"records": service.records(tenant(request), body.integrated_number, body.exchange_id)}

    app.include_router(router)
