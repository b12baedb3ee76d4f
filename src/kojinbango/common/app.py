"""The FastAPI application shell every organisation shares."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from cryptography.hazmat.primitives import hashes
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from kojinbango.common.db import Database, DbNonceStore
from kojinbango.common.errors import BusinessError
from kojinbango.common.pki import OrgCredentials
from kojinbango.common.signing import TrustStore
from kojinbango.common.transport import DirectRoute, SignatureMiddleware, SignedClient
from kojinbango.domain.identifiers import IdentifierError


def org_app(
    title: str,
    creds: OrgCredentials,
    trust: TrustStore,
    db: Database,
    nonce_store: DbNonceStore,
    allowed_callers: Iterable[str] | None = None,
    internal_prefixes: Iterable[str] = (),
    direct_routes: Mapping[tuple[str, str], DirectRoute] | None = None,
) -> FastAPI:
    """``direct_routes``: answered by the signature middleware itself (see ``SignatureMiddleware``);
    the mapping may be filled after this returns."""
    app = FastAPI(title=title, version="0.1.0")
    fingerprint = creds.certificate.fingerprint(hashes.SHA256()).hex()
    app.add_middleware(
        SignatureMiddleware,
        creds=creds,
        trust=trust,
        nonce_store=nonce_store,
        allowed_callers=allowed_callers,
        internal_prefixes=tuple(internal_prefixes),
        direct_routes=direct_routes,
        exception_handlers=app.exception_handlers,  # the same dict: handlers added later count too
    )

    @app.exception_handler(BusinessError)
    async def _business(_request: Request, exc: BusinessError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(IdentifierError)
    async def _identifier(_request: Request, exc: IdentifierError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # Pydantic echoes input values; report only where and what, never the value itself.
        problems = [
            {"loc": [str(p) for p in err.get("loc", ())], "msg": err.get("msg", "")} for err in exc.errors()
        ]
        return JSONResponse({"detail": problems}, status_code=422)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        # The certificate's fingerprint tells a client which deployment answered (several data
        # directories may use the same ports and organisation ids).
        return {"status": "ok", "organisation": creds.org_id, "certificate_sha256": fingerprint}

    return app


def close_sessions_on_shutdown(app: FastAPI, client: SignedClient) -> None:
    """Close the client's event-loop session (``SignedClient.acall``) when the server stops."""
    original = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with original(a) as state:
            yield state
        await client.aclose()

    app.router.lifespan_context = lifespan


class OrgRuntime:
    """One organisation assembled: its app, database, outgoing client and services."""

    def __init__(
        self, org_id: str, kind: str, app: FastAPI, db: Database, client: object, services: dict[str, object]
    ):
        self.org_id = org_id
        self.kind = kind
        self.app = app
        self.db = db
        self.client = client
        self.services = services
        # Background workers and the like, stopped (in reverse order) before the client and database.
        self.closers: list[Callable[[], None]] = []

    def close(self) -> None:
        for stop in reversed(self.closers):
            stop()
        close = getattr(self.client, "close", None)
        if close:
            close()
        self.db.dispose()
