"""``SignedClient.acall`` (the exchange path's onward calls, ``httpclient.Client`` on the event loop)
checks answers exactly as the blocking ``call`` does: a genuine signed answer is returned, a refusal
raises with the organisation's reason, and an answer that is unsigned, bound to another request, signed
by another organisation or replayed is rejected; an address nobody answers is ``Unreachable``."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from starlette.requests import Request

from kojinbango.common.signing import REQUEST_NONCE_HEADER, MemoryNonceStore, sign_response
from kojinbango.common.topology import Topology
from kojinbango.common.transport import RemoteError, SignatureMiddleware, SignedClient, Unreachable, _nonce_of
from served import serve

SERVER, CALLER, OTHER = "jlis", "m131016", "m131041"


@pytest.fixture(scope="module")
def topology(small_nation_dir: Path) -> Topology:
    return Topology.load(small_nation_dir / "topology.json")


@pytest.fixture(scope="module")
def honest(topology: Topology) -> Iterator[str]:
    """A server signing every /api/ answer with SERVER's key (SignatureMiddleware)."""
    app = FastAPI()
    app.add_middleware(
        SignatureMiddleware,
        creds=topology.credentials(SERVER),
        trust=topology.trust_store(),
        nonce_store=MemoryNonceStore(),
    )

    @app.post("/api/echo")
    async def echo(payload: dict[str, Any]) -> dict[str, Any]:
        return {"echo": payload}

    @app.post("/api/refuse")
    async def refuse() -> JSONResponse:
        return JSONResponse({"detail": "no row of the legal table allows this"}, status_code=403)

    yield from serve(app)


@pytest.fixture(scope="module")
def crooked(topology: Topology) -> Iterator[str]:
    """A server whose answers are wrong in one way each, chosen by the path."""
    app = FastAPI()
    server_creds, other_creds = topology.credentials(SERVER), topology.credentials(OTHER)
    kept: dict[str, tuple[bytes, dict[str, str]]] = {}

    def signed(body: bytes, headers: dict[str, str]) -> Response:
        return Response(body, media_type="application/json", headers=headers)

    @app.post("/api/unsigned")
    async def unsigned(request: Request) -> Response:  # bound to the request, but no signature
        nonce = _nonce_of(request.headers["signature-input"])
        return signed(b'{"ok": true}', {REQUEST_NONCE_HEADER: nonce})

    @app.post("/api/other-request")
    async def other_request() -> Response:
        body = b'{"ok": true}'
        return signed(body, sign_response(server_creds, 200, body, "not-the-request-nonce"))

    @app.post("/api/other-signer")
    async def other_signer(request: Request) -> Response:
        body = b'{"ok": true}'
        nonce = _nonce_of(request.headers["signature-input"])
        return signed(body, sign_response(other_creds, 200, body, nonce))

    @app.post("/api/replay")
    async def replay(request: Request) -> Response:
        # The first answer is genuine; later ones repeat it, re-bound to the new request's nonce
        # header but carrying the first answer's signature (and so its nonce): a replay.
        nonce = _nonce_of(request.headers["signature-input"])
        if "first" not in kept:
            body = b'{"ok": true}'
            kept["first"] = (body, sign_response(server_creds, 200, body, nonce))
            return signed(*kept["first"])
        body, headers = kept["first"]
        return signed(body, {**headers, REQUEST_NONCE_HEADER: nonce})

    yield from serve(app)


def _client(topology: Topology, url: str) -> SignedClient:
    return SignedClient(topology.credentials(CALLER), topology.trust_store(), {SERVER: url}, timeout=10)


def test_a_genuine_answer_is_returned_by_both_calls(topology: Topology, honest: str) -> None:
    client = _client(topology, honest)
    payload = {"exchange": "EX1", "名前": "髙橋"}

    async def both() -> list[Any]:
        try:
            return list(
                await asyncio.gather(*(client.acall(SERVER, "POST", "/api/echo", payload) for _ in range(20)))
            )
        finally:
            await client.aclose()

    assert asyncio.run(both()) == [{"echo": payload}] * 20
    assert client.call(SERVER, "POST", "/api/echo", payload) == {"echo": payload}
    client.close()


def test_a_refusal_carries_the_organisations_reason(topology: Topology, honest: str) -> None:
    client = _client(topology, honest)

    async def refused() -> None:
        try:
            await client.acall(SERVER, "POST", "/api/refuse", {})
        finally:
            await client.aclose()

    with pytest.raises(RemoteError) as exc:
        asyncio.run(refused())
    assert exc.value.status == 403 and "legal table" in exc.value.detail


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/api/unsigned", "not signed"),
        ("/api/other-request", "not bound to our request"),
        ("/api/other-signer", "another organisation"),
    ],
)
def test_a_false_answer_is_rejected(topology: Topology, crooked: str, path: str, why: str) -> None:
    client = _client(topology, crooked)

    async def ask() -> Any:
        try:
            return await client.acall(SERVER, "POST", path, {})
        finally:
            await client.aclose()

    with pytest.raises(RemoteError) as exc:
        asyncio.run(ask())
    assert "answer rejected" in exc.value.detail and why in exc.value.detail


def test_a_replayed_answer_is_rejected(topology: Topology, crooked: str) -> None:
    client = _client(topology, crooked)

    async def twice() -> Any:
        try:
            assert await client.acall(SERVER, "POST", "/api/replay", {}) == {"ok": True}
            return await client.acall(SERVER, "POST", "/api/replay", {})
        finally:
            await client.aclose()

    with pytest.raises(RemoteError) as exc:
        asyncio.run(twice())
    assert "answer rejected" in exc.value.detail


def test_nobody_answering_is_unreachable(topology: Topology) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = _client(topology, f"http://127.0.0.1:{port}")

    async def ask() -> Any:
        try:
            return await client.acall(SERVER, "POST", "/api/echo", {})
        finally:
            await client.aclose()

    with pytest.raises(Unreachable) as exc:
        asyncio.run(ask())
    assert "could not be reached" in str(exc.value)
