"""The portal's お知らせ inbox and 自己情報表示 for the logged-in resident.

お知らせ come from the network (情報提供ネットワークシステム), which keeps each municipality's notice
under its internal id of the person: the portal presents *its own* 符号 for the resident — the one
やりとり履歴 uses, obtained through J-LIS from the serial of the 利用者証明用電子証明書 the session
logged in with — and gets that person's notices; reading one tells the network, which carries the
read status back to the sender.  In a deployment without the network the portal asks each
municipality directly with the certificate serial (J-LIS's 証明書情報連携 decides which answers).
自己情報表示 always asks the municipalities that way.  The portal keeps no notices of its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from kojinbango.common import i18n
from kojinbango.common.db import Database
from kojinbango.common.transport import RemoteError, SignedClient, Unreachable
from kojinbango.domain.clock import utc_now as _now
from kojinbango.domain.jst import jst_text
from kojinbango.portal.models import PortalSession
from kojinbango.portal.records import certificate_serial
from kojinbango.portal.records_models import SessionCertificate
from kojinbango.portal.service import LoginRefused


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class InboxUnavailable(Exception):
    """The network, which holds the お知らせ, could not be reached."""


class InboxService:
    def __init__(
        self,
        db: Database,
        client: SignedClient,
        municipalities: list[tuple[str, str]],
        network: str | None = None,
        fugo_of: Callable[[str], str] | None = None,
    ):
        """``network`` and ``fugo_of`` (session token → the portal's 符号 for its resident): the
        お知らせ come from the network; without them, from each municipality."""
        self.db = db
        self.client = client
        self.municipalities = municipalities  # (org id, name)
        self.network = network if fugo_of is not None else None
        self.fugo_of = fugo_of

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

    def _from_network(self, path: str, token: str, **extra: Any) -> Any:
        assert self.network is not None and self.fugo_of is not None
        self._serial(token)  # a live session first (raises LoginRefused)
        try:  # the 符号 itself comes through J-LIS and the network the first time
            return self.client.call(self.network, "POST", path, {"fugo": self.fugo_of(token), **extra})
        except (RemoteError, Unreachable) as exc:
            raise InboxUnavailable(str(exc)) from None

    def notices(self, token: str) -> list[dict[str, Any]]:
        if self.network is not None:
            got = self._from_network("/api/portal/notices", token)["notices"]
            return [{**n, "sent_at": jst_text(n["sent_at"])} for n in got]
        serial = self._serial(token)
        out = []
        for org_id, _name, answer in self._ask_all("/api/portal/inbox", {"serial": serial}):
            for n in answer.get("notices", []):
                out.append({**n, "org": org_id})
        return sorted(out, key=lambda n: n["sent_at"], reverse=True)

    def mark_read(self, token: str, org_id: str, notice_id: int) -> None:
        if self.network is not None:
            self._from_network("/api/portal/notices/read", token, notice_id=notice_id)
            return
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
    templates = i18n.templates(app, Path(__file__).parent / "templates")
    router = APIRouter()

    def unavailable() -> Response:
        return HTMLResponse(
            '<p id="unavailable">お知らせを取得できませんでした。しばらくしてからもう一度お試しください。'
            ' <a href="/inbox">再読み込み</a></p>',
            status_code=503,
        )

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
        except InboxUnavailable:
            return unavailable()
        return templates.TemplateResponse(request, "inbox.html", {"notices": notices})

    @router.get("/inbox/api")
    def inbox_api(request: Request) -> Any:
        try:
            return {"notices": service.notices(token_of(request))}
        except InboxUnavailable:
            return JSONResponse({"reason": "unavailable", "detail": "the network cannot be reached"}, 503)

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
        except InboxUnavailable:
            return unavailable()
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
