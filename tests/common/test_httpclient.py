"""``kojinbango.common.httpclient.Client`` against real servers on 127.0.0.1: uvicorn (as the
organisations run) and small asyncio servers that misbehave on purpose.

It keeps connections alive and reuses them, one request in flight on each; reads ``content-length``,
chunked and until-close bodies; does not reuse a connection the server closes or ages it out; sends a
request a second time only when a reused connection closed before any byte of its answer; turns
broken, malformed and missing answers into ``ConnectionError`` / ``TimeoutError``; speaks TLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from kojinbango.common.httpclient import Client, ConnectionClosed, MalformedAnswer
from served import serve

Runner = Callable[[Coroutine[Any, Any, Any]], Any]
LOOPS: dict[str, Runner] = {"asyncio": asyncio.run, "uvloop": uvloop.run}  # the services run on uvloop


# --- a uvicorn server -----------------------------------------------------------------------------
def _app() -> Starlette:
    async def echo(request: Request) -> Response:
        if request.query_params.get("wait"):
            await asyncio.sleep(float(request.query_params["wait"]))
        port = str(request.scope["client"][1])  # one client port per connection
        return Response(await request.body(), headers={"x-client-port": port, "X-Mixed-Case": "Value"})

    async def chunked(request: Request) -> StreamingResponse:
        async def parts() -> Any:
            for i in range(50):
                yield f"part {i};".encode() * 100

        return StreamingResponse(parts(), headers={"x-client-port": str(request.scope["client"][1])})

    async def closing(request: Request) -> Response:
        return Response(
            b"bye", headers={"connection": "close", "x-client-port": str(request.scope["client"][1])}
        )

    async def empty(request: Request) -> Response:
        return Response(status_code=204, headers={"x-client-port": str(request.scope["client"][1])})

    async def text(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello world", headers={"x-client-port": str(request.scope["client"][1])})

    return Starlette(
        routes=[
            Route("/echo", echo, methods=["POST", "PUT"]),
            Route("/chunked", chunked),
            Route("/close", closing),
            Route("/empty", empty),
            Route("/text", text),  # GET and HEAD
        ]
    )


@pytest.fixture(scope="module")
def uvicorn_url() -> Iterator[str]:
    yield from serve(_app())


def _port(headers: Any) -> str:
    return str(headers["x-client-port"])


@pytest.mark.parametrize("loop", LOOPS)
def test_a_connection_is_kept_alive_for_the_next_request(uvicorn_url: str, loop: str) -> None:
    async def main() -> list[str]:
        client = Client()
        try:
            ports = []
            for i in range(5):
                method = "post" if i == 4 else "POST"  # sent upper-case, as signed
                status, headers, body = await client.request(method, uvicorn_url + "/echo", f"n{i}".encode())
                assert (status, body) == (200, f"n{i}".encode())
                ports.append(_port(headers))
            return ports
        finally:
            await client.close()

    assert len(set(LOOPS[loop](main()))) == 1


@pytest.mark.parametrize("loop", LOOPS)
def test_concurrent_requests_each_get_their_own_answer(uvicorn_url: str, loop: str) -> None:
    async def main() -> tuple[list[tuple[int, bytes]], set[str]]:
        client = Client()
        try:

            async def one(i: int) -> tuple[int, bytes, str]:
                status, headers, body = await client.request(
                    "PUT", uvicorn_url + "/echo?wait=0.05", b"%d" % i
                )
                return status, body, _port(headers)

            answers = await asyncio.gather(*(one(i) for i in range(20)))
            return [(s, b) for s, b, _ in answers], {p for _, _, p in answers}
        finally:
            await client.close()

    answers, ports = LOOPS[loop](main())
    assert answers == [(200, b"%d" % i) for i in range(20)]
    assert len(ports) == 20  # no limit: a connection per request in flight


def test_a_limit_caps_the_connections_to_a_server(uvicorn_url: str) -> None:
    async def main() -> set[str]:
        client = Client(limit=2)
        try:
            answers = await asyncio.gather(
                *(client.request("POST", uvicorn_url + "/echo?wait=0.02", b"x") for _ in range(10))
            )
            return {_port(headers) for _, headers, _ in answers}
        finally:
            await client.close()

    assert len(asyncio.run(main())) == 2


def test_a_chunked_answer_is_read_whole_and_its_connection_reused(uvicorn_url: str) -> None:
    async def main() -> None:
        client = Client()
        try:
            status, headers, body = await client.request("GET", uvicorn_url + "/chunked")
            assert status == 200 and headers["transfer-encoding"] == "chunked"
            assert body == b"".join(f"part {i};".encode() * 100 for i in range(50))
            _, again, _ = await client.request("GET", uvicorn_url + "/chunked")
            assert _port(again) == _port(headers)
        finally:
            await client.close()

    asyncio.run(main())


def test_an_answer_with_connection_close_is_not_reused(uvicorn_url: str) -> None:
    async def main() -> list[str]:
        client = Client()
        try:
            ports = []
            for _ in range(3):
                status, headers, body = await client.request("GET", uvicorn_url + "/close")
                assert (status, body) == (200, b"bye")
                ports.append(_port(headers))
            return ports
        finally:
            await client.close()

    assert len(set(asyncio.run(main()))) == 3


def test_answers_without_a_body_head_and_204(uvicorn_url: str) -> None:
    async def main() -> None:
        client = Client(timeout=5)  # a HEAD answer's announced body is never coming
        try:
            status, headers, body = await client.request("HEAD", uvicorn_url + "/text")
            assert (status, headers["content-length"], body) == (200, "11", b"")
            status, headers, body = await client.request("GET", uvicorn_url + "/empty")
            assert (status, body) == (204, b"")
            status, again, body = await client.request("GET", uvicorn_url + "/text")
            assert (status, body) == (200, b"hello world")
            assert _port(again) == _port(headers)  # a 204's connection is kept
        finally:
            await client.close()

    asyncio.run(main())


# --- servers that misbehave -------------------------------------------------------------------------
Reply = tuple[bytes, str]  # what to write, then "keep" (the connection), "close" or "hang"
OK = (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", "keep")
DROP = (b"", "close")  # read the request, close without a byte of answer


class RawServer:
    """An HTTP/1.1 server on asyncio streams that answers request ``n`` (1, 2, … on its connection)
    of connection ``c`` (1, 2, … in order of arrival) with ``reply(c, n)``; counts what it saw."""

    def __init__(self, reply: Callable[[int, int], Reply], context: ssl.SSLContext | None = None) -> None:
        self.reply = reply
        self.context = context
        self.connections = 0
        self.requests = 0
        self.closed_by_client = 0
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.context else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn, n = self.connections, 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    self.closed_by_client += 1
                    return
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                await reader.readexactly(length)
                self.requests += 1
                n += 1
                data, then = self.reply(conn, n)
                writer.write(data)
                await writer.drain()
                if then == "close":
                    return
                if then == "hang":
                    await asyncio.sleep(3600)
        except (ConnectionError, ssl.SSLError):
            return
        finally:
            writer.close()


def _run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(coro, 30)

    return asyncio.run(main())


def test_answer_headers_are_read_case_insensitively() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Mixed-Case: Value\r\n"
        b"Vary: Accept\r\nVARY: Origin\r\n\r\nok"
    )

    async def main() -> Any:
        async with RawServer(lambda conn, n: (answer, "keep")) as server:
            client = Client()
            try:
                return (await client.request("GET", server.url + "/"))[1]
            finally:
                await client.close()

    headers = _run(main())
    assert headers["x-mixed-case"] == headers["X-Mixed-Case"] == headers.get("X-MIXED-CASE") == "Value"
    assert "X-MIXED-CASE" in headers and "x-mixed-case" in dict(headers)
    assert headers["vary"] == "Accept, Origin"  # a repeated header: its values joined
    assert headers.get("absent") is None


def test_an_answer_saying_connection_close_is_not_reused_even_if_left_open() -> None:
    said_close = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nConnection: close\r\n\r\nok"

    async def main() -> RawServer:
        async with RawServer(lambda conn, n: (said_close, "keep")) as server:
            client = Client()
            try:
                for _ in range(2):
                    assert (await client.request("GET", server.url + "/"))[2] == b"ok"
            finally:
                await client.close()
            return server

    server = _run(main())
    assert (server.connections, server.requests) == (2, 2)


def test_a_kept_connection_the_server_closed_while_idle_is_not_used() -> None:
    async def main() -> RawServer:
        def reply(conn: int, n: int) -> Reply:
            return (OK[0], "close") if n == 1 else OK  # answers, then closes the connection at once

        async with RawServer(reply) as server:
            client = Client()
            try:
                for _ in range(3):
                    assert (await client.request("GET", server.url + "/"))[0] == 200
                    await asyncio.sleep(0.05)
            finally:
                await client.close()
            return server

    server = _run(main())
    assert (server.connections, server.requests) == (3, 3)


def test_a_request_on_a_kept_connection_closed_before_answering_is_sent_once_more() -> None:
    async def main() -> tuple[RawServer, bytes]:
        def reply(conn: int, n: int) -> Reply:
            # the server closes a kept connection just as the second request arrives on it
            return OK if n == 1 else DROP

        async with RawServer(reply) as server:
            client = Client()
            try:
                await client.request("GET", server.url + "/")
                _, _, body = await client.request("GET", server.url + "/")
            finally:
                await client.close()
            return server, body

    server, body = _run(main())
    assert body == b"ok"
    assert (server.connections, server.requests) == (2, 3)  # the second request arrived twice


def test_a_request_is_sent_at_most_twice() -> None:
    async def main() -> RawServer:
        def reply(conn: int, n: int) -> Reply:
            return OK if conn == 1 and n == 1 else DROP

        async with RawServer(reply) as server:
            client = Client()
            try:
                await client.request("GET", server.url + "/")
                with pytest.raises(ConnectionClosed):
                    await client.request("GET", server.url + "/")
            finally:
                await client.close()
            return server

    server = _run(main())
    assert (server.connections, server.requests) == (2, 3)


def test_a_request_on_a_new_connection_closed_before_answering_is_not_sent_again() -> None:
    async def main() -> RawServer:
        async with RawServer(lambda conn, n: DROP) as server:
            client = Client()
            try:
                with pytest.raises(ConnectionError):
                    await client.request("POST", server.url + "/", b"{}")
            finally:
                await client.close()
            return server

    server = _run(main())
    assert (server.connections, server.requests) == (1, 1)


def test_a_refused_connection_is_a_connection_error() -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main() -> None:
        client = Client()
        try:
            with pytest.raises(ConnectionError):
                await client.request("GET", f"http://127.0.0.1:{port}/")
        finally:
            await client.close()

    _run(main())


def test_half_an_answer_then_a_hang_up_is_a_connection_error_and_not_sent_again() -> None:
    half = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly some"

    async def main() -> RawServer:
        # on a kept connection, where a close before any byte would have been sent again
        async with RawServer(lambda conn, n: OK if n == 1 else (half, "close")) as server:
            client = Client()
            try:
                await client.request("GET", server.url + "/")
                with pytest.raises(ConnectionClosed):
                    await client.request("POST", server.url + "/", b"{}")
            finally:
                await client.close()
            return server

    server = _run(main())
    assert (server.connections, server.requests) == (1, 2)


def test_a_server_that_never_answers_times_out() -> None:
    async def main() -> float:
        async with RawServer(lambda conn, n: (b"", "hang")) as server:
            client = Client(timeout=0.3)
            try:
                start = time.perf_counter()
                with pytest.raises(TimeoutError):
                    await client.request("GET", server.url + "/")
                return time.perf_counter() - start
            finally:
                await client.close()

    assert 0.29 <= _run(main()) < 2.0


@pytest.mark.parametrize(
    "answer", [b"hello, this is not HTTP\r\n\r\n", b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n"]
)
def test_a_malformed_answer_is_a_connection_error(answer: bytes) -> None:
    async def main() -> None:
        async with RawServer(lambda conn, n: (answer, "keep")) as server:
            client = Client()
            try:
                with pytest.raises(MalformedAnswer):
                    await client.request("GET", server.url + "/")
            finally:
                await client.close()

    _run(main())


def test_a_body_ending_with_the_connection_is_read_whole() -> None:
    async def main() -> tuple[int, bytes]:
        async with RawServer(lambda conn, n: (b"HTTP/1.1 200 OK\r\n\r\nuntil the end", "close")) as server:
            client = Client()
            try:
                status, _, body = await client.request("GET", server.url + "/")
                return status, body
            finally:
                await client.close()

    assert _run(main()) == (200, b"until the end")


def test_idle_connections_are_closed_after_the_idle_limit() -> None:
    async def main() -> tuple[RawServer, int, int]:
        async with RawServer(lambda conn, n: OK) as server:
            client = Client(idle_seconds=0.2)
            try:
                await client.request("GET", server.url + "/")
                await asyncio.sleep(0.05)
                await client.request("GET", server.url + "/")  # still young: reused
                young = server.connections
                await asyncio.sleep(0.4)
                closed = server.closed_by_client  # the client hung up on its own
                await client.request("GET", server.url + "/")
                # the loop held up past the limit, before it could close the idle connection: a
                # request made first does not take it either
                time.sleep(0.3)
                await client.request("GET", server.url + "/")
            finally:
                await client.close()
            return server, young, closed

    server, young, closed = _run(main())
    assert (young, closed, server.connections) == (1, 1, 3)


def test_a_closed_client_refuses_requests_and_can_be_closed_again(uvicorn_url: str) -> None:
    async def main() -> None:
        client = Client()
        await client.request("GET", uvicorn_url + "/text")
        await client.close()
        await client.close()
        assert client.closed
        with pytest.raises(RuntimeError, match="closed"):
            await client.request("GET", uvicorn_url + "/text")

    asyncio.run(main())


@pytest.mark.parametrize(
    ("method", "url", "headers", "error"),
    [
        ("GET", "ftp://127.0.0.1/", {}, "only http:// and https://"),
        ("GET", "http:///path", {}, "needs a host"),
        ("GE T", "http://127.0.0.1/", {}, "not an HTTP method"),
        ("GET", "http://127.0.0.1/", {"x-evil": "a\r\nhost: elsewhere"}, "line break"),
        ("GET", "http://127.0.0.1/", {"Content-Length": "5"}, "not a header a caller can set"),
    ],
)
def test_bad_requests_are_refused_before_sending(
    method: str, url: str, headers: dict[str, str], error: str
) -> None:
    async def main() -> None:
        client = Client()
        with pytest.raises(ValueError, match=error):
            await client.request(method, url, b"", headers)

    asyncio.run(main())


# --- TLS ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, bytes]:
    """A self-signed certificate for 127.0.0.1: (cert file, key file, cert PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    d = tmp_path_factory.mktemp("tls")
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (d / "cert.pem").write_bytes(pem)
    (d / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return d / "cert.pem", d / "key.pem", pem


@pytest.mark.parametrize("loop", LOOPS)
def test_https_with_a_trusted_certificate_and_kept_alive(
    certificate: tuple[Path, Path, bytes], loop: str
) -> None:
    cert_file, key_file, pem = certificate
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(cert_file, key_file)
    trusting = ssl.create_default_context(cadata=pem.decode())

    async def main() -> RawServer:
        async with RawServer(lambda conn, n: OK, served) as server:
            client = Client(ssl_context=trusting)
            try:
                for _ in range(3):
                    assert await client.request("POST", server.url + "/", b"{}") == (
                        200,
                        {"content-length": "2"},
                        b"ok",
                    )
            finally:
                await client.close()
            return server

    server = LOOPS[loop](asyncio.wait_for(main(), 30))
    assert (server.connections, server.requests) == (1, 3)


def test_https_refuses_an_untrusted_certificate(certificate: tuple[Path, Path, bytes]) -> None:
    cert_file, key_file, _ = certificate
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(cert_file, key_file)

    async def main() -> RawServer:
        async with RawServer(lambda conn, n: OK, served) as server:
            client = Client(ssl_context=ssl.create_default_context())  # the system's CAs only
            try:
                with pytest.raises(ConnectionError, match="certificate"):
                    await client.request("GET", server.url + "/")
            finally:
                await client.close()
            return server

    assert _run(main()).requests == 0
