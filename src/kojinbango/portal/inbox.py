"""The portal's お知らせ inbox and 自己情報表示 for the logged-in resident.

The portal keeps no notices and no register data: for each page it asks the municipalities, over
signed HTTP, with the serial of the 利用者証明用電子証明書 the session logged in with; only the
holder's own municipality answers with content (J-LIS's 証明書情報連携 decides which).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from kojinbango.common.db import Database
from kojinbango.common.transport import RemoteError, SignedClient, Unreachable
from kojinbango.portal.models import PortalSession
from kojinbango.portal.records import certificate_serial
from kojinbango.portal.records_models import SessionCertificate
from kojinbango.portal.service import LoginRefused


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class InboxService:
    def __init__(self, db: Database, client: SignedClient, municipalities: list[tuple[str, str]]):
        self.db = db
        self.client = client
        self.municipalities = municipalities  # (org id, name)

    def after_login(self, token: str, certificate: str) -> None:
        """Remember which certificate this session used (shared with やりとり履歴's table)."""
        with self.db.transaction() as s:
            if s.get(SessionCertificate, _hash(token)) is None:
                s.add(
                    SessionCertificate(
                        token_hash=_hash(token), serial=certificate_serial(certificate), created_at=_now()
                    )
                )

    def _serial(self, token: str) -> str:
        with self.db.transaction() as s:
            sess = s.get(PortalSession, _hash(token))
            if sess is None or sess.ended_at is not None or sess.expires_at < _now():
                raise LoginRefused("not_logged_in", "not logged in (or the session ended)")
            cert = s.get(SessionCertificate, _hash(token))
            if cert is None:
                raise LoginRefused("not_logged_in", "log in again with the card")
            return cert.serial

    def _ask_all(self, path: str, payload: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
        answers = []
        for org_id, name in self.municipalities:
            try:
                answers.append((org_id, name, self.client.call(org_id, "POST", path, payload)))
            except (RemoteError, Unreachable):
                continue  # one municipality down does not hide the others' notices
        return answers

    def notices(self, token: str) -> list[dict[str, Any]]:
        serial = self._serial(token)
        out = []
        for org_id, _name, answer in self._ask_all("/api/portal/inbox", {"serial": serial}):
            for n in answer.get("notices", []):
                out.append({**n, "org": org_id})
        return sorted(out, key=lambda n: n["sent_at"], reverse=True)

    def mark_read(self, token: str, org_id: str, notice_id: int) -> None:
        serial = self._serial(token)
        if org_id not in {m for m, _ in self.municipalities}:
            raise LoginRefused("not_found", "no such sender", 404)
        self.client.call(org_id, "POST", "/api/portal/inbox/read", {"serial": serial, "notice_id": notice_id})

    def self_info(self, token: str) -> list[dict[str, Any]]:
        serial = self._serial(token)
        return [
            {**answer, "org": org_id}
            for org_id, _name, answer in self._ask_all("/api/portal/self", {"serial": serial})
            if answer.get("found")
        ]


def install(app: FastAPI, service: InboxService, token_of: Any) -> None:
    """``/inbox`` (お知らせ), ``/inbox/{org}/{id}`` (read one), ``/self`` (自己情報表示)."""
    templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
    router = APIRouter()

    def logged_out(exc: LoginRefused) -> Response:
        return HTMLResponse(
            f"<p id='logged-out'>ログインしてください（{exc.message}）。 <a href='/'>ログイン</a></p>",
            status_code=401,
        )

    @router.get("/inbox", response_class=HTMLResponse)
    def inbox(request: Request) -> Response:
        try:
            notices = service.notices(token_of(request))
        except LoginRefused as exc:
            return logged_out(exc)
        return templates.TemplateResponse(request, "inbox.html", {"notices": notices})

    @router.get("/inbox/api")
    def inbox_api(request: Request) -> dict[str, Any]:
        return {"notices": service.notices(token_of(request))}

    @router.get("/inbox/{org_id}/{notice_id}", response_class=HTMLResponse)
    def read(request: Request, org_id: str, notice_id: int) -> Response:
        try:
            token = token_of(request)
            notices = service.notices(token)
            notice = next((n for n in notices if n["org"] == org_id and n["id"] == notice_id), None)
            if notice is None:
                return HTMLResponse("<p>このお知らせはありません。</p>", status_code=404)
            service.mark_read(token, org_id, notice_id)
        except LoginRefused as exc:
            return logged_out(exc)
        return templates.TemplateResponse(request, "inbox_notice.html", {"n": notice})

    @router.get("/self", response_class=HTMLResponse)
    def self_page(request: Request) -> Response:
        try:
            info = service.self_info(token_of(request))
        except LoginRefused as exc:
            return logged_out(exc)
        return templates.TemplateResponse(request, "self.html", {"entries": info})

    @router.get("/home")
    def home() -> Response:
        return RedirectResponse("/inbox", status_code=303)

    app.include_router(router)
