"""Routes the signature middleware answers itself (``direct_routes``: the exchange path's hot route):
verified like every other, answered and signed the same way, their errors by the application's own
handlers — and never reached by a request that is not signed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.responses import JSONResponse, Response
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field
from starlette.requests import Request

from kojinbango.common.app import direct_json_route, org_app
from kojinbango.common.db import Database
from kojinbango.common.errors import BusinessError
from kojinbango.common.pki import create_ca, issue_org_certificate
from kojinbango.common.signing import MemoryNonceStore, TrustStore, sign_request, verify_response
from kojinbango.common.transport import DirectRoute

PATH = "/staff/test/api/ask"


class Refused(BusinessError):
    status = 409


class Late(Exception):
    """No handler of the application's own at first: one is added after the app is built."""


@pytest.fixture()
def served(tmp_path: Path) -> Any:
    _, ca = create_ca(tmp_path)
    creds = issue_org_certificate(tmp_path, "nenkin", "日本年金機構")
    trust = TrustStore(ca, {"nenkin": creds.certificate})
    direct: dict[tuple[str, str], DirectRoute] = {}
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}", [])
    app = org_app("test", creds, trust, db, MemoryNonceStore(), internal_prefixes=("/staff/test/api",),
                  direct_routes=direct)  # fmt: skip
    seen: list[str] = []

    async def ask(request: Request, raw: bytes) -> Response:
        body = json.loads(raw)
        seen.append(request.scope["state"]["caller"])
        if body.get("refuse"):
            raise Refused("not allowed for this affair")
        if body.get("late"):
            raise Late()
        if body.get("crash"):
            raise RuntimeError("a bug")
        return Response(json.dumps({"echo": body["x"]}).encode(), media_type="application/json")

    @app.post(PATH)
    def through_the_router() -> None:  # the same path as a FastAPI route: never reached
        raise AssertionError("the router was reached")

    direct[("POST", PATH)] = ask  # filled after the app was built

    @app.exception_handler(Late)
    async def _late(_request: Any, _exc: Late) -> JSONResponse:
        return JSONResponse({"detail": "later"}, status_code=503)

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, creds, trust, seen
    db.dispose()


def _post(client: TestClient, creds: Any, payload: Any, signed: bool = True) -> tuple[Any, str]:
    raw = json.dumps(payload).encode()
    headers = sign_request(creds, "POST", PATH, "", raw, "nenkin") if signed else {}
    nonce = headers.get("signature-input", "").split('nonce="')[-1].split('"')[0]
    return client.post(PATH, content=raw, headers=headers), nonce


def test_a_direct_route_answers_signed_past_the_router(served: Any) -> None:
    client, creds, trust, seen = served
    resp, nonce = _post(client, creds, {"x": "髙橋"})
    assert resp.status_code == 200 and resp.json() == {"echo": "髙橋"}
    assert resp.headers["content-type"] == "application/json"
    assert int(resp.headers["content-length"]) == len(resp.content)
    verified = verify_response(resp.headers, 200, resp.content, "nenkin", nonce, trust)
    assert verified.signer == "nenkin" and seen == ["nenkin"]


def test_a_direct_routes_errors_are_the_applications_answers_signed(served: Any) -> None:
    client, creds, trust, _ = served
    resp, nonce = _post(client, creds, {"refuse": True})  # the shell's BusinessError handler
    assert resp.status_code == 409 and resp.json() == {"detail": "not allowed for this affair"}
    verify_response(resp.headers, 409, resp.content, "nenkin", nonce, trust)
    resp, nonce = _post(client, creds, {"late": True})  # a handler added after the app was built
    assert resp.status_code == 503 and resp.json() == {"detail": "later"}
    verify_response(resp.headers, 503, resp.content, "nenkin", nonce, trust)
    resp, _ = _post(client, creds, {"crash": True})  # no handler: the server's own 500, as any route
    assert resp.status_code == 500 and "signature" not in resp.headers


def test_a_direct_route_is_not_reached_unsigned_or_replayed(served: Any) -> None:
    client, creds, _, seen = served
    resp, _ = _post(client, creds, {"x": 1}, signed=False)
    assert resp.status_code == 401 and seen == []
    raw = json.dumps({"x": 1}).encode()
    headers = sign_request(creds, "POST", PATH, "", raw, "nenkin")
    assert client.post(PATH, content=raw, headers=headers).status_code == 200
    assert client.post(PATH, content=raw, headers=headers).status_code == 401  # replayed
    assert seen == ["nenkin"]


class Ask(BaseModel):
    name: str = Field(min_length=1, max_length=8)
    count: int = Field(default=1, ge=1, le=3)


JSON_PATH = "/api/json-ask"


def test_a_direct_json_route_reads_its_model_and_answers_json(tmp_path: Path) -> None:
    """``direct_json_route``: the body read into the model (a refused body: FastAPI's 422, the field
    named under ``body``, the value not echoed; not JSON: 422), the handler's answer as JSON, signed;
    the routed twin documents the body in the OpenAPI description and is never reached."""
    _, ca = create_ca(tmp_path)
    creds = issue_org_certificate(tmp_path, "nenkin", "日本年金機構")
    trust = TrustStore(ca, {"nenkin": creds.certificate})
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}", [])
    app = org_app("test", creds, trust, db, MemoryNonceStore())
    seen: list[tuple[str, Ask]] = []

    async def ask(request: Request, body: Ask) -> dict[str, Any]:
        """Ask by name."""
        seen.append((request.scope["state"]["caller"], body))
        return {"names": [body.name] * body.count}

    direct_json_route(app, JSON_PATH, Ask, ask)
    assert ("POST", JSON_PATH) in app.state.direct_routes

    def post(raw: bytes) -> Any:
        headers = sign_request(creds, "POST", JSON_PATH, "", raw, "nenkin")
        return client.post(JSON_PATH, content=raw, headers=headers)

    with TestClient(app, raise_server_exceptions=False) as client:
        resp = post(json.dumps({"name": "髙橋", "count": 2}).encode())
        assert resp.status_code == 200 and resp.json() == {"names": ["髙橋", "髙橋"]}
        assert resp.headers["content-type"] == "application/json" and "signature" in resp.headers
        assert seen == [("nenkin", Ask(name="髙橋", count=2))]
        for bad, field in (({"name": "あ" * 9}, "name"), ({"name": "x", "count": 9}, "count"), ({}, "name")):
            resp = post(json.dumps(bad).encode())
            assert resp.status_code == 422, resp.text
            assert [e["loc"] for e in resp.json()["detail"]] == [["body", field]]
            assert "あああ" not in resp.text
        resp = post(b'{"name": ')
        assert resp.status_code == 422 and "JSON" in resp.json()["detail"][0]["msg"]
        assert len(seen) == 1  # no refused body reached the handler
        schema = client.get("/openapi.json").json()
        operation = schema["paths"][JSON_PATH]["post"]
        assert operation["description"] == "Ask by name."
        assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/Ask")
    db.dispose()
