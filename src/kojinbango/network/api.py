"""The network's HTTP API.

* ``/api/core/fugo`` — J-LIS relays 符号 requests (住民票コード + the holder's 取得番号);
* ``/api/if/…`` — the IF system, for intermediate servers only (queries one by one or in batches);
* ``/api/portal/records`` — the portal (情報提供等記録開示システム) asks for a resident's records;
* ``/api/log/…`` — signed tree heads and consistency proofs for anyone of the deployment (monitors).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field

from kojinbango.common.app import direct_json_route
from kojinbango.common.batching import MAX_BATCH, encode_outcome
from kojinbango.common.errors import BusinessError, Unauthorised
from kojinbango.common.linkage import LinkageSettings
from kojinbango.common.merkle import ProofError
from kojinbango.common.topology import Topology
from kojinbango.common.transport import caller
from kojinbango.network.core import NetworkCore
from kojinbango.network.interface import NetworkInterface

REQUEST_ID = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
ORG = Field(min_length=1, max_length=40)


class FugoItem(BaseModel):
    acquisition_number: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9-]+$")
    resident_code: str = Field(min_length=1, max_length=20)


class FugoRequest(BaseModel):
    holder: str = ORG
    items: list[FugoItem] = Field(max_length=5000)


class QueryRequest(BaseModel):
    querier: str = ORG
    request_id: str = REQUEST_ID
    fugo: str = Field(min_length=1, max_length=64)
    provider: str = ORG
    affair: str = Field(min_length=1, max_length=40)
    info: str = Field(min_length=1, max_length=40)
    wait: bool = True


class QueryBatch(BaseModel):
    items: list[QueryRequest] = Field(min_length=1, max_length=MAX_BATCH)


class ResultRequest(BaseModel):
    querier: str = ORG
    exchange_id: str = Field(min_length=1, max_length=32)


class RecordsRequest(BaseModel):
    fugo: str = Field(min_length=1, max_length=64)
    known_tree_size: int | None = Field(default=None, ge=0)


class ConsistencyRequest(BaseModel):
    old_size: int = Field(ge=1)
    new_size: int = Field(ge=1)


def install(app: FastAPI, core: NetworkCore, iface: NetworkInterface, topology: Topology) -> None:
    router = APIRouter(prefix="/api")

    def kind(request: Request) -> str:
        return topology.org(caller(request)).kind

    @router.post("/core/fugo")
    def fugo(body: FugoRequest, request: Request) -> dict[str, Any]:
        if kind(request) != "jlis":
            raise Unauthorised("符号 requests reach the network only through J-LIS")
        items = core.issue_fugo(body.holder, [i.model_dump() for i in body.items])
        return iface.deliver_fugo(body.holder, items)

    settings = LinkageSettings.of(topology)

    def from_intermediate(request: Request) -> str:
        # intermediate servers, and organisations that are their own receiver (the agency; a
        # municipality in direct mode, 論点2)
        if kind(request) != "intermediate" and not settings.receives_itself(caller(request)):
            raise Unauthorised("only intermediate servers talk to the IF system")
        return caller(request)

    # On the event loop: the database work is short and the provider is awaited, not waited for on
    # a thread (threads contending for the GIL cost more than the exchange; bench/exchange.py).
    # Answered by the signature middleware itself (the exchange path's hot routes).
    async def submit(request: Request, body: QueryRequest) -> dict[str, Any]:
        """One query from an intermediate server: its outcome (answered, refused, pending …)."""
        return await iface.asubmit(from_intermediate(request), body.model_dump())

    async def submit_batch(request: Request, body: QueryBatch) -> dict[str, Any]:
        """Queries an intermediate server sends together: one outcome per item, in order."""
        outcomes = await iface.asubmit_many(from_intermediate(request), [i.model_dump() for i in body.items])
        return {"results": [encode_outcome(o) for o in outcomes]}

    direct_json_route(app, "/api/if/queries", QueryRequest, submit)
    direct_json_route(app, "/api/if/queries/batch", QueryBatch, submit_batch)

    @router.post("/if/results")
    def results(body: ResultRequest, request: Request) -> dict[str, Any]:
        return iface.collect(from_intermediate(request), body.querier, body.exchange_id)

    @router.post("/portal/records")
    def records(body: RecordsRequest, request: Request) -> dict[str, Any]:
        return core.records_for(caller(request), body.fugo, body.known_tree_size)

    @router.get("/log/head")
    def head() -> dict[str, Any]:
        return {"tree_head": core.log.tree_head()}

    @router.post("/log/consistency")
    def consistency(body: ConsistencyRequest) -> dict[str, Any]:
        if body.new_size > core.log.size:
            raise BusinessError("the log is not that large")
        tree, _ = core.log.tree(body.new_size)
        try:
            proof = tree.consistency_proof(body.old_size, body.new_size)
        except ProofError as exc:
            raise BusinessError(str(exc)) from None
        return {"old_size": body.old_size, "new_size": body.new_size, "proof": [h.hex() for h in proof]}

    app.include_router(router)
