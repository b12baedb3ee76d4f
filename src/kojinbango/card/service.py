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
from fastapi.responses import JSONResponse, Response
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

    # --- for the municipality's counter (窓口での情報収集, seed 3-2) ---------------------------
    @app.get("/cards/{slot}/face.png")
    def face(slot: int) -> Response:
        """The card's front as printed (photo, 4情報; no number) — visible to anyone holding it."""
        from kojinbango.card.face import render_face

        if not 0 <= slot < len(readers):
            return JSONResponse({"reason": "no_card", "message": "no card in this slot"}, status_code=404)
        return Response(render_face(readers[slot].chip().face), media_type="image/png")

    @app.get("/cards/{slot}/certificate")
    def certificate(slot: int) -> JSONResponse:
        """The 利用者証明用電子証明書 (readable without a PIN), for the counter to check its status."""
        if not 0 <= slot < len(readers):
            return JSONResponse({"reason": "no_card", "message": "no card in this slot"}, status_code=404)
        try:
            der = readers[slot].auth_certificate()
        except CardError as exc:
            return JSONResponse({"reason": exc.reason, "message": exc.message}, status_code=403)
        return JSONResponse({"certificate": base64.b64encode(der).decode()})

    @app.post("/read-number")
    def read_number(body: HojoRequest) -> JSONResponse:
        """券面事項入力補助AP: the number and 4情報 as text, after its 4-digit PIN."""
        if body.slot >= len(readers):
            return JSONResponse({"reason": "no_card", "message": "no card in this slot"}, status_code=404)
        try:
            return JSONResponse(readers[body.slot].read_number(body.pin))
        except CardError as exc:
            return JSONResponse(
                {"reason": exc.reason, "message": exc.message, "tries_left": exc.tries_left}, status_code=403
            )

    return app


class HojoRequest(BaseModel):
    slot: int = Field(ge=0)
    pin: str = Field(max_length=16)


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
