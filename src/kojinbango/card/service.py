"""A local card-reader service (like the JPKI client software a browser talks to).

It listens on 127.0.0.1 only, holds one or more inserted card files, and signs a portal's login
challenge with the 利用者証明用 key after checking the PIN — the PIN goes to the reader, never to
the portal.  Only the origins given (the portal's) may call it from a browser.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from kojinbango.card.reader import CardError, CardReader
from kojinbango.card.relying import login_message


class SignRequest(BaseModel):
    slot: int = Field(ge=0)
    pin: str = Field(max_length=16)
    portal: str = Field(min_length=1, max_length=40)
    challenge_id: str = Field(min_length=1, max_length=64)
    challenge: str = Field(min_length=1, max_length=128)


def reader_app(cards: list[Path], allow_origins: list[str]) -> FastAPI:
    readers = [CardReader(p) for p in cards]
    app = FastAPI(title="kojinbango card reader")
    app.add_middleware(
        CORSMiddleware,
        allow_origins=allow_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["content-type"],
    )

    @app.get("/cards")
    def slots() -> list[dict[str, Any]]:
        out = []
        for i, r in enumerate(readers):
            info = r.info()
            out.append(
                {
                    "slot": i,
                    "card_serial": info["card_serial"],
                    "name": info["face"]["name"],
                    "expires_on": info["face"]["expires_on"],
                    "pins": info["pins"],
                }
            )
        return out

    @app.post("/sign")
    def sign(body: SignRequest) -> JSONResponse:
        if body.slot >= len(readers):
            return JSONResponse({"reason": "no_card", "message": "no card in this slot"}, status_code=404)
        reader = readers[body.slot]
        try:
            cert = reader.auth_certificate()
            sig = reader.sign_auth(body.pin, login_message(body.portal, body.challenge_id, body.challenge))
        except CardError as exc:
            return JSONResponse(
                {"reason": exc.reason, "message": exc.message, "tries_left": exc.tries_left}, status_code=403
            )
        return JSONResponse(
            {"certificate": base64.b64encode(cert).decode(), "signature": base64.b64encode(sig).decode()}
        )

    return app


def serve_reader(cards: list[Path], port: int, allow_origins: list[str] | None) -> int:
    import uvicorn

    origins = allow_origins or ["http://127.0.0.1:8720", "http://localhost:8720"]
    app = reader_app(cards, origins)
    print(
        f"card reader on http://127.0.0.1:{port} with {len(cards)} card(s); portal origins: {', '.join(origins)}"
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
    return 0


class ReaderThread:
    """The reader service in a background thread (the demo serves it beside the organisations)."""

    def __init__(self, cards: list[Path], port: int, allow_origins: list[str]):
        import socket
        import threading

        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(
            reader_app(cards, allow_origins), log_level="warning", lifespan="off", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: self.server.run(sockets=[self.sock]), daemon=True)
        self.thread.start()
        import time

        deadline = time.time() + 10
        while not self.server.started and time.time() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
