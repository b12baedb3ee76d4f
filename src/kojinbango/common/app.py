"""The FastAPI application shell every organisation shares."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from cryptography.hazmat.primitives import hashes
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from kojinbango.common import jsoncodec
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
    direct_routes: MutableMapping[tuple[str, str], DirectRoute] | None = None,
) -> FastAPI:
    """``direct_routes``: answered by the signature middleware itself (see ``SignatureMiddleware``);
    the mapping may be filled after this returns (``direct_json_route`` adds to it)."""
    app = FastAPI(title=title, version="0.1.0")
    direct_routes = direct_routes if direct_routes is not None else {}
    app.state.direct_routes = direct_routes
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


Body = TypeVar("Body", bound=BaseModel)


def direct_json_route(
    app: FastAPI, path: str, model: type[Body], handler: Callable[[Request, Body], Awaitable[Any]]
) -> None:
    """``POST path`` on an ``org_app``: the body read into ``model``, ``handler``'s answer sent as
    JSON — answered by the signature middleware itself once the request is verified (its
    ``direct_routes``), past FastAPI's routing, dependencies and request and response handling: the
    hot routes of the exchange path, one call per batch at each organisation.  A body ``model``
    refuses is answered as FastAPI would (422, ``RequestValidationError`` with the field's place under
    ``body``).  The same path is also an ordinary route, which documents it in the OpenAPI
    description and answers the same way where the middleware does not take it."""

    async def direct(request: Request, raw: bytes) -> Response:
        try:
            body = model.model_validate_json(raw)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None
        return Response(jsoncodec.encode(await handler(request, body)), media_type="application/json")

    async def routed(request: Request, body: Any) -> Any:
        return await handler(request, body)

    # the routed twin's body typed as ``model`` (FastAPI reads the signature)
    routed.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request),
            inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=model),
        ]
    )
    app.add_api_route(path, routed, methods=["POST"], description=inspect.getdoc(handler) or "")
    app.state.direct_routes[("POST", path)] = direct


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
