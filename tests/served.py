"""An ASGI app served by uvicorn on a thread of its own at a free local port, for tests that need a
real HTTP server (the embedded nation's own ``_Server``)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

from kojinbango.nation import _Server


def serve(app: Any) -> Iterator[str]:
    """Yield the base URL while ``app`` is served; stop the server afterwards."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = _Server(app, sock)
    server.start()
    deadline = time.time() + 10
    while not server.server.started and time.time() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.stop()
        server.join(timeout=10)
