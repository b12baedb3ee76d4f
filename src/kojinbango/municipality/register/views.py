"""Staff pages of the resident register: search, the 住民票 with its history, a notice on demand,
and the 届出 forms of the register events (出生, 転入, 転出, 国外転出, 転居, 死亡, 氏名変更).

Search takes a name (異体字 folded), a フリガナ, a birth date or part of one in 和暦 or 西暦, an
address, and optionally the 旧氏名・旧住所 kept in ``resident_past_keys``.  Each event form is
checked field by field (event_forms), shown for confirmation, then committed by one service call
— one transaction.  Numbers are always masked to their last 4 digits; URLs carry only internal ids.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import func, or_, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from kojinbango.common import i18n
from kojinbango.common.documents import verify_document
from kojinbango.common.errors import BusinessError
from kojinbango.common.signing import SignatureError
from kojinbango.domain.address import address_key
from kojinbango.domain.identifiers import mask_my_number, mask_resident_code
from kojinbango.domain.jst import today_jst
from kojinbango.domain.text import kana_search_key, name_key
from kojinbango.domain.wareki import DateParseError, parse_date_range, to_wareki
from kojinbango.municipality.register import event_forms
from kojinbango.municipality.register.models import Household, PastKey, Resident, ResidentEvent
from kojinbango.municipality.register.notices import NoticePrinter
from kojinbango.municipality.register.service import (
    SEXES,
    TRANSFER_CERTIFICATE,
    PersonInput,
    RegisterService,
)

PAGE = 100
STATUSES = {"active": "住民", "moved_out": "転出", "dead": "死亡"}
PERSON_EVENTS = ("birth", "move", "death", "name", "move-out", "abroad")  # reached from a 住民票
OTHER_EVENTS = ("move-in", "move-in-abroad")  # reached from the search page
HOLD_SECONDS = 30 * 60  # a verified 転出証明書 waits this long for its commit


def _is_kana(q: str) -> bool:
    from kojinbango.domain.text import to_katakana

    kata = to_katakana(q)
    return all("\u30a0" <= ch <= "\u30ff" or ch in "　 " for ch in kata)


def _show_date(v: Any) -> str:
    if isinstance(v, dt.date):
        return f"{to_wareki(v)}（{v.isoformat()}）"
    return "" if v is None else str(v)


def _describe(e: ResidentEvent) -> str:
    changes = []
    for key, label in (("family_name", "氏"), ("given_name", "名"), ("address", "住所"), ("status", "状態")):
        b, a = (e.before or {}).get(key), (e.after or {}).get(key)
        if b is not None and a is not None and a != b:
            changes.append(f"{label}: {b} → {a}")
    for key, label in (("destination", "転出先"), ("from_country", "転入前の国")):
        if (e.after or {}).get(key):
            changes.append(f"{label}: {(e.after or {})[key]}")
    bn, an = (e.before or {}).get("my_number_last4"), (e.after or {}).get("my_number_last4")
    if an and an != bn:
        changes.append(f"個人番号 ********{an} を記載")
    return "、".join(changes)


def install(app: FastAPI, service: RegisterService, printer: NoticePrinter) -> None:
    templates = i18n.templates(app, Path(__file__).parent / "templates")
    env = templates.env
    env.globals.update(
        municipality=service.name,
        wareki=to_wareki,
        mask=lambda n: mask_my_number(n) if n else "（未指定）",
        mask_code=mask_resident_code,
        sexes=SEXES,
        statuses=STATUSES,
        describe=_describe,
    )
    router = APIRouter(prefix="/staff")

    @router.get("/", response_class=HTMLResponse)
    def residents(
        request: Request, q: str = "", birth: str = "", address: str = "", past: str = "", all: str = ""
    ) -> Any:
        query = select(Resident)
        if not all:
            query = query.where(Resident.status == "active")
        q, birth, address = q.strip(), birth.strip(), address.strip()
        errors: dict[str, str] = {}
        if q:
            kind, key = ("kana", kana_search_key(q)) if _is_kana(q) else ("name", name_key(q))
            now_hit = (
                Resident.kana_key.like(key + "%")
                if kind == "kana"
                else Resident.name_key.like("%" + key + "%")
            )
            if past:  # 旧氏名 too: the past keys left by 氏名変更
                pattern = key + "%" if kind == "kana" else "%" + key + "%"
                old = select(PastKey.resident_id).where(PastKey.kind == kind, PastKey.key.like(pattern))
                query = query.where(or_(now_hit, Resident.id.in_(old)))
            else:
                query = query.where(now_hit)
        if birth:
            try:
                first, last = parse_date_range(birth)
                query = query.where(Resident.birth_date.between(first, last))
            except DateParseError as exc:
                errors["birth"] = f"生年月日が読めません: {exc}"
        if address:
            akey = "%" + address_key(address) + "%"
            if past:  # 旧住所: 転居 and 転入 leave the address behind
                old = select(PastKey.resident_id).where(PastKey.kind == "address", PastKey.key.like(akey))
                query = query.where(or_(Resident.address_key.like(akey), Resident.id.in_(old)))
            else:
                query = query.where(Resident.address_key.like(akey))
        total, rows = 0, []
        pasts: dict[int, list[PastKey]] = {}
        if not errors:
            with service.db.transaction() as s:
                total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
                rows = list(s.scalars(query.order_by(Resident.kana_key, Resident.id).limit(PAGE)))
                if past and rows:
                    for pk in s.scalars(
                        select(PastKey)
                        .where(PastKey.resident_id.in_([r.id for r in rows]), PastKey.kind != "kana")
                        .order_by(PastKey.id)
                    ):
                        pasts.setdefault(pk.resident_id, []).append(pk)
        return templates.TemplateResponse(
            request,
            "residents.html",
            {
                "rows": rows,
                "q": q,
                "birth": birth,
                "address": address,
                "past": bool(past),
                "pasts": pasts,
                "errors": errors,
                "total": total,
                "show_all": bool(all),
            },
            status_code=422 if errors else 200,
        )

    @router.get("/residents/{resident_id}", response_class=HTMLResponse)
    def resident(request: Request, resident_id: int, done: str = "") -> Any:
        with service.db.transaction() as s:
            r = service.get_resident(s, resident_id)
            household = s.get(Household, r.household_id)
            members = list(
                s.scalars(
                    select(Resident).where(Resident.household_id == r.household_id).order_by(Resident.id)
                )
            )
            events = list(
                s.scalars(
                    select(ResidentEvent).where(ResidentEvent.resident_id == r.id).order_by(ResidentEvent.id)
                )
            )
        return templates.TemplateResponse(
            request,
            "resident.html",
            {
                "r": r,
                "household": household,
                "members": members,
                "events": events,
                "done": event_forms.TITLES.get(done, ""),
            },
        )

    # --- 届出 forms ---------------------------------------------------------------------------
    def _load(resident_id: int) -> tuple[Resident, Household, list[Resident]]:
        with service.db.transaction() as s:
            r = service.get_resident(s, resident_id)
            h = s.get(Household, r.household_id)
            assert h is not None
            members = list(
                s.scalars(
                    select(Resident)
                    .where(Resident.household_id == h.id, Resident.status == "active")
                    .order_by(Resident.id)
                )
            )
        return r, h, members

    def _context(r: Resident | None, members: list[Resident]) -> dict[str, Any]:
        if r is None:
            return {"lg_code": service.lg_code}
        return {
            "birth_date": r.birth_date,
            "address": r.address,
            "address_extra": r.address_extra,
            "names": (r.family_name, r.given_name, r.family_kana, r.given_kana),
            "members": [m.id for m in members],
            "lg_code": service.lg_code,
        }

    def _defaults(kind: str, r: Resident | None, members: list[Resident]) -> dict[str, Any]:
        if r is None:
            return {}
        if kind == "birth":
            return {"family_name": r.family_name, "family_kana": r.family_kana, "relationship": "子"}
        if kind == "name":
            return {k: getattr(r, k) for k in ("family_name", "given_name", "family_kana", "given_kana")}
        if kind == "abroad":
            return {"members": [str(m.id) for m in members]}
        return {}

    # A 転出証明書 carries the numbers in clear: once verified it is held here between the
    # confirmation and the commit, and the pages carry only a random token for it.
    held: dict[str, tuple[float, str]] = {}

    def _hold(text: str) -> str:
        cutoff = time.monotonic() - HOLD_SECONDS
        for token in [k for k, (at, _) in held.items() if at < cutoff]:
            held.pop(token, None)
        token = secrets.token_urlsafe(18)
        held[token] = (time.monotonic(), text)
        return token

    async def _raw(request: Request) -> dict[str, Any]:
        form = await request.form()
        raw: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
        raw["members"] = [v for v in form.getlist("members") if isinstance(v, str)]
        upload = form.get("certificate_file")
        token = raw.get("certificate_token", "")
        if isinstance(upload, UploadFile) and upload.filename:
            data = await upload.read()
            raw["_hidden"] = True
            try:
                raw["certificate"] = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                raw["certificate"] = ""
                raw["_upload_error"] = "転出証明書のファイルが UTF-8 のテキストではありません"
        elif token and not raw.get("certificate"):
            raw["_hidden"] = True
            entry = held.get(token)
            if entry is None:
                raw["_upload_error"] = "確認画面の有効期限が切れました。転出証明書をもう一度選んでください"
            else:
                raw["certificate"] = entry[1]
        return raw

    def _shown(raw: dict[str, Any], token: str = "") -> dict[str, Any]:
        """What the page may echo back: never the text of a held or uploaded certificate."""
        if token:
            return {**raw, "certificate": "", "certificate_token": token}
        if raw.get("_hidden"):
            return {**raw, "certificate": "", "certificate_token": ""}
        return raw

    def _render(
        request: Request,
        kind: str,
        r: Resident | None,
        members: list[Resident],
        raw: dict[str, Any],
        errors: dict[str, str] | None = None,
        error: str = "",
        confirm: list[tuple[str, str]] | None = None,
        persons: list[dict[str, Any]] | None = None,
        status: int = 200,
        closed: bool = False,
    ) -> Response:
        action = f"/staff/residents/{r.id}/events/{kind}" if r is not None else f"/staff/events/{kind}"
        return templates.TemplateResponse(
            request,
            "event.html",
            {
                "kind": kind,
                "title": event_forms.TITLES[kind],
                "fields": event_forms.FIELDS[kind],
                "r": r,
                "members": members,
                "raw": raw,
                "errors": errors or {},
                "error": error,
                "confirm": confirm,
                "persons": persons,
                "action": action,
                "closed": closed,
            },
            status_code=status,
        )

    def _summary(kind: str, c: event_forms.Checked, members: list[Resident]) -> list[tuple[str, str]]:
        out = []
        for f in event_forms.FIELDS[kind]:
            if f.kind == "file" or f.name == "certificate":
                continue
            v = c.values.get(f.name)
            if f.kind == "members":
                text = "、".join(f"{m.family_name}　{m.given_name}" for m in members if m.id in (v or []))
            elif f.kind == "select":
                text = dict(f.options).get(str(v), str(v))
            elif f.kind == "date":
                text = _show_date(v) or "（本日）"
            else:
                text = str(v or "")
            out.append((f.label, text))
        return out

    def _certificate_persons(c: event_forms.Checked) -> list[dict[str, Any]] | None:
        """Verify the pasted 転出証明書 now, so a forgery is refused before the confirmation."""
        doc = c.values.get("certificate")
        if doc is None:
            return None
        try:
            _, payload = verify_document(doc, service.trust, TRANSFER_CERTIFICATE)
        except SignatureError as exc:
            c.errors["certificate"] = f"転出証明書の署名を確認できません（偽造・改ざんの疑い）: {exc}"
            return None
        if payload.get("destination_municipality") != service.lg_code:
            c.errors["certificate"] = "この転出証明書の転出先は別の市区町村です"
            return None
        return [
            {
                "name": f"{p['family_name']}　{p['given_name']}",
                "kana": f"{p['family_kana']}　{p['given_kana']}",
                "birth": _show_date(dt.date.fromisoformat(p["birth_date"])),
                "relationship": p["relationship"],
                "from": payload.get("from_address", ""),
            }
            for p in payload.get("persons", [])
        ]

    def _check(kind: str, raw: dict[str, Any], r: Resident | None, members: list[Resident]) -> Any:
        c = event_forms.check(kind, raw, today_jst(), _context(r, members))
        if raw.get("_upload_error"):
            c.errors["certificate"] = raw["_upload_error"]
        persons = _certificate_persons(c) if kind == "move-in" and c.ok else None
        return c, persons

    def _members_of(household_id: int) -> list[int]:
        with service.db.transaction() as s:
            return list(s.scalars(select(Resident.id).where(Resident.household_id == household_id)))

    def _commit(
        kind: str, c: event_forms.Checked, r: Resident | None, h: Household | None, affected: list[int]
    ) -> Response:
        """One 届出, one transaction.  ``affected`` gets every person the 届出 changed or created, so
        the access log names each of them, not only the person whose page the form was opened from."""
        v = c.values
        if kind in ("birth", "move-in-abroad"):
            person = PersonInput(
                v["family_name"],
                v["given_name"],
                v["family_kana"],
                v["given_kana"],
                v["birth_date"],
                v["sex"],
                v.get("relationship", "世帯主"),
            )
        if kind == "birth" and h is not None:
            rid = service.register_birth(h.id, person, v["notified_on"])
            affected.append(rid)
        elif kind == "move" and r is not None and h is not None:
            service.move_within(
                h.id, v["postal_code"], v["address"], v["address_extra"], v["moved_on"], v["notified_on"]
            )
            affected.extend(_members_of(h.id))
            rid = r.id
        elif kind == "death" and r is not None:
            service.record_death(r.id, v["died_on"], v["notified_on"])
            rid = r.id
        elif kind == "name" and r is not None:
            service.change_name(
                r.id, v["family_name"], v["given_name"], v["family_kana"], v["given_kana"], v["changed_on"]
            )
            rid = r.id
        elif kind == "move-out" and h is not None:
            affected.extend(_members_of(h.id))
            cert = service.move_out(h.id, v["destination_lg_code"], v["destination_address"], v["moved_on"])
            # The certificate carries the numbers: handed over as a file, never shown on the page.
            return JSONResponse(
                cert, headers={"Content-Disposition": 'attachment; filename="tenshutsu-shomeisho.json"'}
            )
        elif kind == "abroad" and r is not None and h is not None:
            affected.extend(v["members"] or _members_of(h.id))
            service.move_abroad(h.id, v["moved_on"], v["destination_country"], v["members"], v["notified_on"])
            rid = r.id
        elif kind == "move-in":
            hid = service.move_in(
                v["certificate"], v["postal_code"], v["address"], v["address_extra"], v["moved_in_on"]
            )
            affected.extend(sorted(_members_of(hid)))
            rid = affected[0] if affected else 0
        elif kind == "move-in-abroad":
            rid = service.move_in_from_abroad(
                person,
                v["postal_code"],
                v["address"],
                v["address_extra"],
                v["moved_in_on"],
                v["from_country"],
            )
            affected.append(rid)
        else:  # pragma: no cover - routes only pass known kinds
            raise HTTPException(404)
        return RedirectResponse(f"/staff/residents/{rid}?done={kind}", status_code=303)

    def _known(kind: str, scoped: bool) -> None:
        if kind not in (PERSON_EVENTS if scoped else OTHER_EVENTS):
            raise HTTPException(404, "no such 届出 form")

    async def _handle(request: Request, kind: str, resident_id: int | None, step: str) -> Response:
        _known(kind, resident_id is not None)
        r, h, members = (
            (None, None, []) if resident_id is None else await run_in_threadpool(_load, resident_id)
        )
        if r is not None and r.status != "active":
            return _render(
                request,
                kind,
                r,
                members,
                {},
                error=f"この方の住民票は消除されています（{r.removal_reason}）。届出は受け付けられません",
                status=409,
                closed=True,
            )
        if step == "form":
            return _render(request, kind, r, members, _defaults(kind, r, members))
        raw = await _raw(request)
        c, persons = await run_in_threadpool(_check, kind, raw, r, members)
        if not c.ok:
            return _render(request, kind, r, members, _shown(raw), c.errors, status=422)
        token = _hold(raw["certificate"]) if kind == "move-in" and step == "check" else ""
        if step == "check" and raw.get("step") != "edit":
            return _render(
                request,
                kind,
                r,
                members,
                _shown(raw, token),
                confirm=_summary(kind, c, members),
                persons=persons,
            )
        if step == "check":  # 「戻る」 from the confirmation: the form again, as typed
            return _render(request, kind, r, members, _shown(raw, token))
        affected: list[int] = []
        try:
            response = await run_in_threadpool(_commit, kind, c, r, h, affected)
        except BusinessError as exc:
            return _render(request, kind, r, members, _shown(raw), error=str(exc), status=exc.status)
        request.state.affected_residents = affected  # the staff gate logs an update for each
        held.pop(raw.get("certificate_token", ""), None)
        return response

    @router.get("/residents/{resident_id}/events/{kind}", response_class=HTMLResponse)
    async def person_event_form(request: Request, resident_id: int, kind: str) -> Response:
        return await _handle(request, kind, resident_id, "form")

    @router.post("/residents/{resident_id}/events/{kind}", response_class=HTMLResponse)
    async def person_event_check(request: Request, resident_id: int, kind: str) -> Response:
        return await _handle(request, kind, resident_id, "check")

    @router.post("/residents/{resident_id}/events/{kind}/commit")
    async def person_event_commit(request: Request, resident_id: int, kind: str) -> Response:
        return await _handle(request, kind, resident_id, "commit")

    @router.get("/events/{kind}", response_class=HTMLResponse)
    async def event_form(request: Request, kind: str) -> Response:
        return await _handle(request, kind, None, "form")

    @router.post("/events/{kind}", response_class=HTMLResponse)
    async def event_check(request: Request, kind: str) -> Response:
        return await _handle(request, kind, None, "check")

    @router.post("/events/{kind}/commit")
    async def event_commit(request: Request, kind: str) -> Response:
        return await _handle(request, kind, None, "commit")

    @router.post("/residents/{resident_id}/notice")
    def notice(resident_id: int) -> FileResponse:
        path = printer.print_for_resident(resident_id)
        return FileResponse(path, media_type="application/pdf", filename="notice.pdf")

    app.include_router(router)
