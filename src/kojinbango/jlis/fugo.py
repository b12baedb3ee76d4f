"""符号取得 through J-LIS (DOMAIN.md §3): 個人番号 → 住民票コード, relayed to the network.

A 情報保有機関 sends its 取得番号 with the person's 個人番号; J-LIS finds the 住民票コード and passes
only (取得番号, 住民票コード) on to the network's core, which makes the holder's 符号 and delivers it to
the holder's intermediate server.  The 個人番号 stops here.  The portal asks by the serial of the
利用者証明用電子証明書 instead (証明書情報連携), and its 符号 comes back along the same way.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from kojinbango.common.errors import BusinessError, NotFound, Unauthorised
from kojinbango.common.topology import Topology
from kojinbango.common.transport import caller
from kojinbango.domain.identifiers import IdentifierError, validate_my_number
from kojinbango.jlis.cards.models import JpkiCertificate
from kojinbango.jlis.models import IssuedNumber
from kojinbango.jlis.service import JlisService

ACQ = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9-]+$")


class AcquireItem(BaseModel):
    acquisition_number: str = ACQ
    my_number: str = Field(min_length=1, max_length=20)


class AcquireRequest(BaseModel):
    items: list[AcquireItem] = Field(max_length=5000)


class CertificateAcquire(BaseModel):
    serial: str = Field(pattern=r"^[0-9]{1,50}$")
    acquisition_number: str = ACQ


def install(app: FastAPI, service: JlisService, topology: Topology, call: Any) -> None:
    router = APIRouter(prefix="/api/fugo")
    network = topology.of_kind("network")[0].id if topology.of_kind("network") else None

    def need_network() -> str:
        if network is None:
            raise BusinessError("this deployment has no information provision network")
        return network

    @router.post("/acquire")
    def acquire(body: AcquireRequest, request: Request) -> dict[str, Any]:
        holder = caller(request)
        if topology.org(holder).kind not in ("municipality", "agency"):
            raise Unauthorised("only a 情報保有機関 obtains 符号 by 個人番号")
        numbers: list[str] = []
        for i, item in enumerate(body.items):
            try:
                numbers.append(validate_my_number(item.my_number))
            except IdentifierError as exc:
                raise BusinessError(f"item {i + 1}: {exc}") from None
        codes: dict[str, str] = {}
        with service.db.transaction() as s:
            for i in range(0, len(numbers), 900):
                codes.update(
                    s.execute(
                        select(IssuedNumber.my_number, IssuedNumber.resident_code).where(
                            IssuedNumber.my_number.in_(numbers[i : i + 900])
                        )
                    ).all()
                )
        relay, unknown = [], []
        for item, number in zip(body.items, numbers, strict=True):
            code = codes.get(number)
            if code is None:
                unknown.append(item.acquisition_number)
            else:
                relay.append({"acquisition_number": item.acquisition_number, "resident_code": code})
        result: dict[str, Any] = {"delivered": 0}
        if relay:
            result = call(need_network(), "POST", "/api/core/fugo", {"holder": holder, "items": relay})
        return {
            "delivered": result.get("delivered", 0),
            "unexpected": result.get("unexpected", []),
            "unknown": unknown,
        }

    @router.post("/acquire-by-certificate")
    def by_certificate(body: CertificateAcquire, request: Request) -> dict[str, Any]:
        holder = caller(request)
        if topology.org(holder).kind != "portal":
            raise Unauthorised("only the portal obtains 符号 by certificate")
        with service.db.transaction() as s:
            code = s.scalar(
                select(JpkiCertificate.resident_code).where(
                    JpkiCertificate.serial == body.serial, JpkiCertificate.kind == "auth"
                )
            )
        if code is None:
            raise NotFound("no 利用者証明用電子証明書 with this serial")
        result = call(
            need_network(),
            "POST",
            "/api/core/fugo",
            {
                "holder": holder,
                "items": [{"acquisition_number": body.acquisition_number, "resident_code": code}],
            },
        )
        items = result.get("items") or []
        if not items:
            raise BusinessError("the network issued no 符号")
        return {"fugo": items[0]["fugo"]}

    app.include_router(router)
