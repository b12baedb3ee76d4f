"""The organisations' servers keep idle connections open longer than clients reuse them.

httpx drops an idle pooled connection after 5 s; uvicorn's default also closes one after 5 s.  With
equal timeouts a client can send on a connection the server is closing that instant, and the call
fails with a ReadError under load (seen in the kiosk load test).  The server must outlast the client.
"""

from __future__ import annotations

import socket
import time

import httpx
from fastapi import FastAPI

from kojinbango.common.transport import SERVER_KEEP_ALIVE_SECONDS
from kojinbango.nation import _Server

CLIENT_KEEP_ALIVE_SECONDS = httpx.Limits().keepalive_expiry or 5.0


def _get(conn: socket.socket) -> bytes:
    conn.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
    return conn.recv(4096)


def test_an_idle_connection_outlives_the_clients_reuse_window() -> None:
    assert SERVER_KEEP_ALIVE_SECONDS > 2 * CLIENT_KEEP_ALIVE_SECONDS
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, bool]:
        return {"ok": True}

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    server = _Server(app, sock)
    server.start()
    try:
        deadline = time.time() + 10
        while not server.server.started and time.time() < deadline:
            time.sleep(0.02)
        conn = socket.create_connection(sock.getsockname(), timeout=5)
        assert b"200 OK" in _get(conn)
        # idle a little longer than a client would ever keep the connection for reuse
        time.sleep(CLIENT_KEEP_ALIVE_SECONDS + 1)
        assert b"200 OK" in _get(conn)  # still open: the server did not close it first
        conn.close()
    finally:
        server.stop()
        server.join(timeout=10)
