"""J-LIS's HTTP API (住基ネット 全国サーバ side).  Every route is called by another organisation."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, Field

from kojinbango.common.errors import BusinessError, Unauthorised
from kojinbango.common.topology import Topology
from kojinbango.common.transport import caller
from kojinbango.jlis.service import JlisService, LookupResult, record_to_dict


class BundleRequest(BaseModel):
    request_id: str = Field(min_length=8, max_length=64)
    count: int


class NumbersRequest(BaseModel):
    resident_codes: list[str]


class ChangeNumberRequest(BaseModel):
    resident_code: str
    reason: str = Field(min_length=1, max_length=200)


class IdentityChangesRequest(BaseModel):
    changes: list[dict[str, Any]]


class LookupRequest(BaseModel):
    my_number: str | None = None
    resident_code: str | None = None
    name: str | None = None
    birth_date: dt.date | None = None
    sex: int | None = Field(default=None, ge=1, le=3)
    address: str | None = None


def _result(r: LookupResult) -> dict[str, Any]:
    return {
        "status": r.status,
        "record": record_to_dict(r.record) if r.record is not None else None,
        "candidates": r.candidates,
        "reason": r.reason,
    }


def build_router(service: JlisService, topology: Topology) -> APIRouter:
    router = APIRouter(prefix="/api")

    def kind_of(org_id: str) -> str:
        return topology.org(org_id).kind

    def municipality(request: Request) -> str:
        org = topology.org(caller(request))
        if org.kind != "municipality" or not org.lg_code:
            raise Unauthorised("only a municipality may make this request")
        return org.lg_code

    @router.post("/code-bundles")
    def code_bundles(body: BundleRequest, lg_code: str = Depends(municipality)) -> dict[str, Any]:
        return {"resident_codes": service.issue_bundle(lg_code, body.count, body.request_id)}

    @router.post("/numbers/generate")
    def generate(body: NumbersRequest, lg_code: str = Depends(municipality)) -> dict[str, Any]:
        numbers = service.generate_numbers(lg_code, body.resident_codes)
        return {"numbers": [{"resident_code": c, "my_number": n} for c, n in numbers.items()]}

    @router.post("/numbers/change")
    def change(body: ChangeNumberRequest, lg_code: str = Depends(municipality)) -> dict[str, Any]:
        return {"my_number": service.change_number(lg_code, body.resident_code)}

    @router.post("/identity/changes")
    def identity_changes(body: IdentityChangesRequest, request: Request) -> dict[str, Any]:
        if kind_of(caller(request)) != "prefecture":
            raise Unauthorised("本人確認情報 reaches J-LIS only through a prefecture")
        return {"applied": service.apply_changes(body.changes)}

    @router.post("/identity/lookup")
    def lookup(body: LookupRequest, request: Request) -> dict[str, Any]:
        if kind_of(caller(request)) not in ("municipality", "prefecture"):
            raise Unauthorised("this organisation may not search 本人確認情報")
        if body.my_number:
            return _result(service.lookup_by_number(body.my_number))
        if body.resident_code:
            return _result(service.lookup_by_code(body.resident_code))
        if body.name and body.birth_date:
            return _result(service.lookup_by_attributes(body.name, body.birth_date, body.sex, body.address))
        raise BusinessError("give my_number, resident_code, or name and birth_date (with address and sex)")

    return router


def install(app: FastAPI, service: JlisService, topology: Topology) -> None:
    app.include_router(build_router(service, topology))
