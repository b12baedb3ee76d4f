"""The staff terminal's gate in front of every /staff/ page, and its own screens.

* ``/staff/login`` — login with password and one-time code (TOTP).
* ``/staff/home`` — what this staff member may open, by role.
* ``/staff/applicant`` — 受付開始 (password again + purpose) and 受付終了 for each applicant.
* ``/staff/unlock`` — the idle-locked terminal, unlocked only by the same staff member.
* ``/staff/admin/access-log`` and ``/staff/admin/accounts`` — the administrator's review.

The gate (an HTTP middleware installed on the municipality's app) refuses a page to anyone not
logged in, locked, lacking the role for it, or — for pages showing a person — without an open
applicant context; it writes every view or print of a person to the access log.  URLs carry only
internal ids; nothing here writes an identifier to the log.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.middleware.base import BaseHTTPMiddleware, DispatchFunction
from starlette.types import ASGIApp, Receive, Scope, Send

from kojinbango.common import i18n
from kojinbango.common.errors import BusinessError
from kojinbango.common.transport import INTERNAL_PREFIXES
from kojinbango.municipality.staff.service import (
    PURPOSES,
    ROLES,
    StaffService,
    Terminal,
)

COOKIE = "kojinbango_staff"

# (path prefix, roles allowed) — the first match wins, so longer prefixes come first.
ROLE_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("/staff/admin", ("admin",)),
    ("/staff/links", ("tax", "welfare")),
    ("/staff/cards", ("resident_records",)),
    ("/staff/counter", ("resident_records", "tax", "welfare")),
    ("/staff/outreach", ("welfare", "resident_records")),
    ("/staff/forms", ("resident_records",)),
    ("/staff", ("resident_records",)),
)
# Pages of the terminal itself: need a login (some not even that), never a role or an applicant.
OPEN = ("/staff/login",)
TERMINAL = ("/staff/home", "/staff/applicant", "/staff/unlock", "/staff/logout", "/staff/lock")
# /staff/cards/api/… and /staff/linkage/api/… are JSON interfaces the kojinbango commands drive on the
# municipality's side: no login cookie, but SignatureMiddleware refuses (401) every request to them
# not signed with the municipality's own key (common/transport.py INTERNAL_PREFIXES).
UNGATED = INTERNAL_PREFIXES
NO_APPLICANT = ("/staff/admin",)


def _gated(path: str) -> bool:
    """Whether a request needs a logged-in staff terminal: the staff pages, but not their login
    page nor the signed JSON interfaces."""
    return path.startswith("/staff") and not path.startswith(UNGATED) and not path.startswith(OPEN)


class StaffGate:
    """The staff gate around the pages it guards only.  Every other request — the municipality's
    signed interfaces for other organisations and its own commands — goes past untouched: the gate
    is a ``BaseHTTPMiddleware``, which costs every request it sees a task group and a streamed body
    (measured: a quarter of what each of the network's calls cost a municipality in direct mode)."""

    def __init__(self, app: ASGIApp, dispatch: DispatchFunction) -> None:
        self.app = app
        self.gated = BaseHTTPMiddleware(app, dispatch=dispatch)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _gated(scope["path"]):
            await self.gated(scope, receive, send)
        else:
            await self.app(scope, receive, send)


# Views of a person that the gate logs itself: (method, pattern, action, subject kind).
LOGGED: tuple[tuple[str, re.Pattern[str], str, str], ...] = (
    ("GET", re.compile(r"/staff/residents/(\d+)"), "view", "resident"),
    ("POST", re.compile(r"/staff/residents/(\d+)/notice"), "print", "resident"),
    # 届出 forms of the register: the form shows the person; only a commit changes the register.
    ("GET", re.compile(r"/staff/residents/(\d+)/events/[a-z-]+"), "view", "resident"),
    ("POST", re.compile(r"/staff/residents/(\d+)/events/[a-z-]+/commit"), "update", "resident"),
    ("GET", re.compile(r"/staff/links/(\d+)"), "view", "business_record"),
    ("POST", re.compile(r"/staff/links/(\d+)/(?:link|reject|contact|undo)"), "update", "business_record"),
    ("GET", re.compile(r"/staff/cards/(\d{16})"), "view", "card"),
    ("GET", re.compile(r"/staff/cards/(\d{16})/face\.png"), "view", "card"),
    ("POST", re.compile(r"/staff/cards/(\d{16})/hand-over"), "update", "card"),
)
SEARCHES = (
    ("GET", "/staff/", "search", "register search"),
    ("GET", "/staff/links/", "search", "link review queue"),
    ("GET", "/staff/cards/", "search", "cards waiting"),
    ("POST", "/staff/events/move-in/commit", "update", "転入届"),
    ("POST", "/staff/events/move-in-abroad/commit", "update", "国外からの転入届"),
)


def _screen(path: str) -> str:
    """The route with its ids replaced, for the log's ``screen`` column."""
    return re.sub(r"/\d+", "/{id}", path)[:80]


def allowed_roles(path: str) -> tuple[str, ...]:
    for prefix, roles in ROLE_RULES:
        if path == prefix or path.startswith(prefix + "/"):
            return roles
    return ()


def install(
    app: FastAPI,
    service: StaffService,
    municipality: str,
    card_owner: Callable[[str], int | None] | None = None,
) -> None:
    """Add the gate and the terminal's pages.  ``card_owner`` maps a card kept at the desk to the
    resident's internal id, so views of a card are logged against the person."""
    templates = i18n.templates(app, Path(__file__).parent / "templates")
    templates.env.globals.update(
        municipality=municipality,
        roles=ROLES,
        purposes=PURPOSES,
        idle_seconds=int(service.idle.total_seconds()),
    )

    def page(request: Request, name: str, status: int = 200, **ctx: Any) -> Response:
        return templates.TemplateResponse(request, name, ctx, status_code=status)

    async def gate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path  # a gated page: ``StaffGate`` lets every other request past
        token = request.cookies.get(COOKIE)
        terminal = await run_in_threadpool(service.terminal, token)
        request.state.staff = terminal
        wants_html = request.method == "GET"
        if terminal is None:
            if wants_html:
                return RedirectResponse("/staff/login?next=" + quote(path), status_code=303)
            return HTMLResponse("ログインしてください（not logged in）", status_code=401)
        if terminal.locked and not path.startswith(("/staff/unlock", "/staff/logout")):
            if wants_html:
                return RedirectResponse("/staff/unlock", status_code=303)
            return HTMLResponse("端末はロックされています（the terminal is locked）", status_code=423)
        if path.startswith(TERMINAL):
            return await call_next(request)
        roles = allowed_roles(path)
        if not terminal.has(*roles):
            await run_in_threadpool(
                service.record, terminal, "denied", _screen(path), None, None, {"method": request.method}
            )
            return page(
                request,
                "forbidden.html",
                403,
                terminal=terminal,
                needed="・".join(ROLES[r] for r in roles),
            )
        if terminal.purpose is None and not path.startswith(NO_APPLICANT):
            if wants_html:
                return RedirectResponse("/staff/applicant?next=" + quote(path), status_code=303)
            return HTMLResponse("受付を開始してください（start an applicant first）", status_code=428)
        response = await call_next(request)
        if response.status_code < 400:
            await run_in_threadpool(_log_view, terminal, request.method, path, request)
        return response

    app.add_middleware(StaffGate, dispatch=gate)

    def _log_view(terminal: Terminal, method: str, path: str, request: Request) -> None:
        logged: set[int] = set()
        _log_route(terminal, method, path, logged)
        # a 届出 can change or create other people than the one in the URL (出生, 転入, a household's 転居)
        for rid in getattr(request.state, "affected_residents", ()):
            if rid not in logged:
                service.record(terminal, "update", _screen(path), "resident", rid, {"via": "届出"})

    def _log_route(terminal: Terminal, method: str, path: str, logged: set[int]) -> None:
        for m, pattern, action, kind in LOGGED:
            hit = pattern.fullmatch(path)
            if m == method and hit:
                subject: str | int = hit.group(1)
                detail: dict[str, Any] = {}
                if kind == "card":
                    owner = card_owner(str(subject)) if card_owner else None
                    if owner is None:
                        return
                    kind, subject, detail = "resident", owner, {"via": "card"}
                service.record(terminal, action, _screen(path), kind, subject, detail)
                if kind == "resident" and action == "update":
                    logged.add(int(subject))
                return
        for m, p, action, what in SEARCHES:
            if m == method and path == p:
                service.record(terminal, action, p, None, None, {"screen": what})
                return

    router = APIRouter(prefix="/staff")

    def _set_cookie(resp: Response, token: str) -> None:
        resp.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/staff", max_age=9 * 3600)

    def _safe_next(nxt: str, default: str = "/staff/home") -> str:
        return nxt if nxt.startswith("/staff") and "//" not in nxt and "\\" not in nxt else default

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "") -> Response:
        return page(request, "login.html", next=_safe_next(next))

    @router.post("/login")
    def login(
        request: Request,
        login: str = Form(""),
        password: str = Form(""),
        code: str = Form(""),
        next: str = Form(""),
    ) -> Response:
        missing = [
            label
            for label, v in (("ログインID", login), ("パスワード", password), ("ワンタイムコード", code))
            if not v.strip()
        ]
        if missing:
            return page(
                request, "login.html", 422, error="入力してください: " + "、".join(missing), next=next
            )
        try:
            token = service.login(login, password, code)
        except BusinessError as exc:
            return page(request, "login.html", exc.status, error=_japanese(exc), next=next, login=login)
        resp = RedirectResponse(_safe_next(next), status_code=303)
        _set_cookie(resp, token)
        return resp

    @router.post("/logout")
    def logout(request: Request) -> Response:
        token = request.cookies.get(COOKIE)
        if token:
            service.logout(token)
        resp = RedirectResponse("/staff/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/staff")
        return resp

    @router.post("/lock")
    def lock(request: Request) -> Response:
        service.lock(request.cookies.get(COOKIE) or "")
        return RedirectResponse("/staff/unlock", status_code=303)

    @router.get("/unlock", response_class=HTMLResponse)
    def unlock_form(request: Request) -> Response:
        return page(request, "unlock.html", terminal=request.state.staff)

    @router.post("/unlock")
    def unlock(request: Request, password: str = Form("")) -> Response:
        try:
            service.unlock(request.cookies.get(COOKIE) or "", password)
        except BusinessError as exc:
            return page(
                request, "unlock.html", exc.status, terminal=request.state.staff, error=_japanese(exc)
            )
        return RedirectResponse("/staff/home", status_code=303)

    @router.get("/home", response_class=HTMLResponse)
    def home(request: Request) -> Response:
        return page(request, "home.html", terminal=request.state.staff)

    @router.get("/applicant", response_class=HTMLResponse)
    def applicant_form(request: Request, next: str = "") -> Response:
        return page(request, "applicant.html", terminal=request.state.staff, next=_safe_next(next))

    @router.post("/applicant")
    def applicant(
        request: Request, password: str = Form(""), purpose: str = Form(""), next: str = Form("")
    ) -> Response:
        try:
            service.begin_applicant(request.cookies.get(COOKIE) or "", password, purpose)
        except BusinessError as exc:
            return page(
                request,
                "applicant.html",
                exc.status,
                terminal=request.state.staff,
                next=_safe_next(next),
                error=_japanese(exc),
            )
        return RedirectResponse(_safe_next(next), status_code=303)

    @router.post("/applicant/end")
    def applicant_end(request: Request) -> Response:
        service.end_applicant(request.cookies.get(COOKIE) or "")
        return RedirectResponse("/staff/home", status_code=303)

    @router.get("/admin/access-log", response_class=HTMLResponse)
    def access_log(
        request: Request,
        staff: str = "",
        kind: str = "",
        subject: str = "",
        action: str = "",
        page_no: int = 0,
    ) -> Response:
        total, rows = service.access_log(staff, kind, subject, action, 200, max(page_no, 0) * 200)
        return page(
            request,
            "access_log.html",
            terminal=request.state.staff,
            rows=rows,
            total=total,
            filters={"staff": staff, "kind": kind, "subject": subject, "action": action},
            page_no=page_no,
        )

    @router.get("/admin/accounts", response_class=HTMLResponse)
    def accounts(request: Request) -> Response:
        return page(request, "accounts.html", terminal=request.state.staff, accounts=service.accounts())

    @router.post("/admin/accounts", response_class=HTMLResponse)
    def create_account(
        request: Request,
        login: str = Form(""),
        display_name: str = Form(""),
        password: str = Form(""),
        roles: list[str] = Form([]),
    ) -> Response:
        try:
            created = service.create_account(login, display_name, roles, password)
        except BusinessError as exc:
            return page(
                request,
                "accounts.html",
                exc.status,
                terminal=request.state.staff,
                accounts=service.accounts(),
                error=str(exc),
            )
        return page(
            request,
            "accounts.html",
            terminal=request.state.staff,
            accounts=service.accounts(),
            created=created,
        )

    @router.post("/admin/accounts/{staff_id}/active")
    def set_active(request: Request, staff_id: int, active: str = Form("")) -> Response:
        try:
            service.set_active(request.state.staff, staff_id, active == "1")
        except BusinessError as exc:
            return page(
                request,
                "accounts.html",
                exc.status,
                terminal=request.state.staff,
                accounts=service.accounts(),
                error=str(exc),
            )
        return RedirectResponse("/staff/admin/accounts", status_code=303)

    app.include_router(router)


_JAPANESE = {
    "the login, password or one-time code is not right": "ログインID、パスワードまたはワンタイムコードが正しくありません",
    "this account is locked after too many failed logins; try again later": "ログインの失敗が続いたため、このアカウントは一時的にロックされています。しばらくしてから再度お試しください",
    "this account is disabled": "このアカウントは無効です",
    "the password is not right": "パスワードが正しくありません",
    "choose the purpose of this work from the list": "事務の目的を一覧から選んでください",
    "the terminal is locked; unlock it first": "端末がロックされています。先にロックを解除してください",
    "not logged in": "ログインしてください",
}


def _japanese(exc: Exception) -> str:
    text = str(exc)
    return _JAPANESE.get(text, text)


def card_owner(db: Any) -> Callable[[str], int | None]:
    """The resident (internal id) a card kept at the card desk belongs to."""
    from kojinbango.municipality.cards.models import CardInSafe

    def owner(card_serial: str) -> int | None:
        with db.transaction() as s:
            card = s.get(CardInSafe, card_serial)
            return None if card is None else int(card.resident_id)

    return owner
