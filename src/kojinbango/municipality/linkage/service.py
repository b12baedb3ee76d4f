"""The municipality's information linkage: 符号, 副本 refresh, queries with signed answers.

* ``ensure_fugo``: for persons without a 符号 the municipality announces a 取得番号 to its
  intermediate server, then asks J-LIS (取得番号 + 個人番号); the network delivers the 符号 to the
  intermediate server, which files it under the 統合宛名番号.  Retried until delivered.
* ``refresh``: each category's 副本 are extracted from the 正本 and only changed ones are sent; a
  full refresh (the nightly batch) also confirms the rest as current.  Per category and setting this
  runs on change (within seconds, by a worker that watches the sources) or nightly.
* ``query``: staff who hold the person's number ask another organisation; the number becomes the
  統合宛名番号 here and a 符号 at the intermediate server before anything leaves.  The provider's
  signed answer is verified and written to this database as evidence (論点7).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import logging
import threading
from typing import Any

from sqlalchemy import bindparam, func, select

from kojinbango.common.db import Database
from kojinbango.common.documents import canonical
from kojinbango.common.errors import BusinessError, NotFound
from kojinbango.common.layouts import LayoutError, validate
from kojinbango.common.linkage import (
    FINAL,
    LinkageSettings,
    acquire_fugo,
    await_final,
    check_answer,
    iso,
    new_request_id,
    query_provider,
    stored_answer_view,
    verify_answer,
    wait_final,
    waiting_queries,
    writing,
)
from kojinbango.common.signing import TrustStore
from kojinbango.common.topology import Topology
from kojinbango.common.transport import RemoteError, SignedClient, Unreachable
from kojinbango.common.worker import BackgroundLoop
from kojinbango.domain.clock import now_aware
from kojinbango.domain.clock import utc_now as now
from kojinbango.domain.identifiers import validate_my_number
from kojinbango.domain.jst import in_jst
from kojinbango.municipality.addressee.models import Addressee
from kojinbango.municipality.addressee.service import AddresseeService
from kojinbango.municipality.linkage.copies import EXTRACTORS, fingerprint
from kojinbango.municipality.linkage.models import CopyState, FugoRequest, LinkageAnswer, LinkageState

log = logging.getLogger(__name__)
CHUNK = 1000
QUERIES_PATH = "/api/tenant/queries"
RESULT_PATH = "/api/tenant/queries/result"
_ADDRESSEES_OF = select(Addressee.integrated_number, Addressee.id).where(
    Addressee.integrated_number.in_(bindparam("numbers", expanding=True))
)


def _digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(data)).hexdigest()


class LinkageService:
    def __init__(
        self,
        db: Database,
        org_id: str,
        client: SignedClient,
        topology: Topology,
        trust: TrustStore,
        addressee: AddresseeService,
    ):
        self.db = db
        self.org_id = org_id
        self.client = client
        self.topology = topology
        self.trust = trust
        self.addressee = addressee
        self.settings = LinkageSettings.of(topology)
        self.jlis = topology.of_kind("jlis")[0].id
        self.opener = topology.opener(org_id)  # answers are sealed to this municipality (common.sealing)
        self._lock = threading.Lock()
        self._fugo_lock = threading.Lock()
        self._loop = BackgroundLoop(
            f"linkage-{self.org_id}",
            self.tick,
            self.settings.on_change_seconds,
            deferred=(Unreachable, RemoteError),
            wait_first=True,
        )

    @property
    def intermediate(self) -> str:
        return self.settings.receiver(self.org_id)

    @property
    def direct(self) -> bool:
        """Direct mode (論点2, for comparison in simulations): this municipality answers the network
        itself, from its 正本 at query time, and keeps its 符号 and records in its own service —
        no intermediate server, no 副本."""
        return self.settings.receives_itself(self.org_id)

    def live_copies(
        self, tenant: str, category: str, numbers: list[str]
    ) -> dict[str, tuple[int, Any, dt.datetime]]:
        """Direct mode: the information of these 統合宛名番号 as the business systems hold it now,
        each validated against its category's current layout."""
        if tenant != self.org_id or category not in EXTRACTORS:
            return {}
        with self.db.begin() as conn:  # Core statements only: a session costs more than the reads
            ids = dict(conn.execute(_ADDRESSEES_OF, {"numbers": numbers}).all())
            data = EXTRACTORS[category](conn, set(ids.values())) if ids else {}
        t = now()
        out: dict[str, tuple[int, Any, dt.datetime]] = {}
        for number, aid in ids.items():
            if aid in data:
                try:
                    out[number] = (validate(category, data[aid]).version, data[aid], t)
                except LayoutError as exc:  # the 正本 does not fit the layout: a fault to fix there
                    raise BusinessError(
                        f"{category}: the business data does not fit its layout ({exc})"
                    ) from None
        return out

    def _call(self, path: str, payload: Any = None) -> Any:
        return self.client.call(self.intermediate, "POST", path, payload)

    # --- state --------------------------------------------------------------------------------
    def _get(self, key: str) -> str | None:
        with writing(self.db) as s:
            row = s.get(LinkageState, key)
            return row.value if row else None

    def _set(self, key: str, value: str) -> None:
        with writing(self.db) as s:
            row = s.get(LinkageState, key)
            if row is None:
                s.add(LinkageState(key=key, value=value))
            else:
                row.value = value

    @property
    def enabled(self) -> bool:
        return self._get("enabled") == "yes"

    def enable(self) -> None:
        self._set("enabled", "yes")

    # --- 符号 -----------------------------------------------------------------------------------
    def ensure_fugo(self, addressee_ids: list[int] | None = None) -> dict[str, int]:
        """Obtain the 符号 of these persons (all with a number when None) unless already delivered.

        One at a time: concurrent queries about the same new person wait for the first to obtain
        it, then find it delivered (each would otherwise ask with its own 取得番号)."""
        with self._fugo_lock:
            return self._ensure_fugo(addressee_ids)

    def _ensure_fugo(self, addressee_ids: list[int] | None) -> dict[str, int]:
        with writing(self.db) as s:
            if addressee_ids is None:
                self.addressee.sync_residents(s)
            q = select(Addressee.id, Addressee.integrated_number, Addressee.my_number).where(
                Addressee.my_number.is_not(None)
            )
            if addressee_ids is not None:
                q = q.where(Addressee.id.in_(addressee_ids))
            people = list(s.execute(q))
            q2 = select(FugoRequest.addressee_id, FugoRequest.acquisition_number, FugoRequest.delivered_at)
            if addressee_ids is not None:
                q2 = q2.where(FugoRequest.addressee_id.in_(addressee_ids))
            known = list(s.execute(q2))
            done = {aid for aid, _, at in known if at is not None}
            asked = {aid: acq for aid, acq, _ in known}
        todo = [(aid, number, mn) for aid, number, mn in people if aid not in done and mn is not None]

        def record_asked(new: list[tuple[int, str]]) -> None:
            t = now()
            with writing(self.db) as s:
                s.add_all(
                    FugoRequest(addressee_id=aid, acquisition_number=a, requested_at=t) for aid, a in new
                )

        def record_delivered(aids: list[int]) -> None:
            with writing(self.db) as s:
                for aid in aids:
                    row = s.get(FugoRequest, aid)
                    if row is not None:
                        row.delivered_at = now()

        return acquire_fugo(
            todo,
            asked,
            lambda items: self._call("/api/tenant/fugo/expect", {"items": items}),
            functools.partial(self.client.call, self.jlis),
            record_asked,
            record_delivered,
        )

    # --- 副本 ----------------------------------------------------------------------------------
    def refresh(self, categories: list[str] | None = None, full: bool = True) -> dict[str, Any]:
        """Register changed 副本 of each category; ``full`` also confirms the unchanged as current."""
        result: dict[str, Any] = {}
        with self._lock:
            for category in categories or list(EXTRACTORS):
                if category not in EXTRACTORS:
                    raise BusinessError(f"this municipality registers no 副本 of {category!r}")
                # direct mode: queries are answered from the 正本 itself, so there is nothing to send
                result[category] = (
                    {"changed": 0, "deleted": 0, "direct": True}
                    if self.direct
                    else self._refresh_one(category, full)
                )
        return result

    def refresh_now(
        self, categories: list[str] | None = None, full: bool = True, fugo: bool = True
    ) -> dict[str, Any]:
        """The nightly batch, now (``exchange refresh``, the 管理者's screen): linkage started, the
        missing 符号 obtained (``fugo``), then the 副本 of ``categories`` (all by default)."""
        self.enable()
        out: dict[str, Any] = {}
        if fugo:
            out["fugo"] = self.ensure_fugo()
        out["copies"] = self.refresh(categories, full=full)
        return out

    def _refresh_one(self, category: str, full: bool) -> dict[str, int]:
        t = now()
        if not full:
            with self.db.transaction() as s:
                if self._get(f"fingerprint:{category}") == fingerprint(s, category):
                    return {"changed": 0, "deleted": 0}
        with writing(self.db) as s:
            self.addressee.sync_residents(s)
            stamp = fingerprint(s, category)
            current = EXTRACTORS[category](s, None)
            numbers = dict(s.execute(select(Addressee.id, Addressee.integrated_number)).all())
            state = dict(
                s.execute(
                    select(CopyState.addressee_id, CopyState.digest).where(CopyState.category == category)
                ).all()
            )
        digests = {aid: _digest(data) for aid, data in current.items()}
        changed = [aid for aid, d in digests.items() if state.get(aid) != d]
        deleted = [aid for aid in state if aid not in current]
        chunks = [changed[i : i + CHUNK] for i in range(0, len(changed), CHUNK)] or [[]]
        for n, chunk in enumerate(chunks):
            last = n == len(chunks) - 1
            payload: dict[str, Any] = {
                "category": category,
                "items": [
                    {"integrated_number": numbers[aid], "data": current[aid], "as_of": iso(t)}
                    for aid in chunk
                ],
                "deletions": [numbers[aid] for aid in deleted] if last else [],
                "complete_as_of": iso(t) if (last and full) else None,
            }
            if not payload["items"] and not payload["deletions"] and not payload["complete_as_of"]:
                continue
            self._call("/api/tenant/copies", payload)
            with writing(self.db) as s:
                for aid in chunk:
                    row = s.get(CopyState, (aid, category))
                    if row is None:
                        s.add(CopyState(addressee_id=aid, category=category, digest=digests[aid], sent_at=t))
                    else:
                        row.digest, row.sent_at = digests[aid], t
                if last:
                    for aid in deleted:
                        row = s.get(CopyState, (aid, category))
                        if row is not None:
                            s.delete(row)
        self._set(f"fingerprint:{category}", stamp)
        return {"changed": len(changed), "deleted": len(deleted)}

    # --- 情報照会 -------------------------------------------------------------------------------
    def _person(self, my_number: str) -> tuple[int, str, bool]:
        """(統合宛名 id, 統合宛名番号, whether its 符号 was delivered) of the person with this number."""
        number = validate_my_number(my_number)
        q = (
            select(Addressee.id, Addressee.integrated_number, FugoRequest.delivered_at)
            .outerjoin(FugoRequest, FugoRequest.addressee_id == Addressee.id)
            .where(Addressee.my_number == number)
        )
        with self.db.transaction() as s:
            row = s.execute(q).first()
        if row is None:
            with writing(self.db) as s:
                self.addressee.sync_residents(s)
            with self.db.transaction() as s:
                row = s.execute(q).first()
        if row is None:
            raise NotFound("this municipality's 統合宛名 holds no person with this 個人番号")
        return int(row[0]), str(row[1]), row[2] is not None

    def query(
        self,
        my_number: str,
        provider: str,
        affair: str,
        info: str,
        staff: str = "職員",
        wait_seconds: float = 10.0,
    ) -> dict[str, Any]:
        request_id, payload = self._open(my_number, provider, affair, info, staff)
        state = self._call(QUERIES_PATH, payload)
        state = wait_final(state, lambda: self._call(RESULT_PATH, {"request_id": request_id}), wait_seconds)
        return self._store(request_id, state)

    async def aquery(
        self,
        my_number: str,
        provider: str,
        affair: str,
        info: str,
        staff: str = "職員",
        wait_seconds: float = 10.0,
    ) -> dict[str, Any]:
        """``query`` for a handler on the event loop: the wait for the intermediate server (and the
        network, and the provider) holds no thread.  Opening the query — which may ask J-LIS for a
        first-time person's 符号 — and a late answer's polling run on a thread."""
        request_id, payload = await asyncio.to_thread(self._open, my_number, provider, affair, info, staff)
        state = await self.client.acall(self.intermediate, "POST", QUERIES_PATH, payload)
        state = await await_final(
            state, lambda: self._call(RESULT_PATH, {"request_id": request_id}), wait_seconds
        )
        return self._store(request_id, state)

    def _open(
        self, my_number: str, provider: str, affair: str, info: str, staff: str
    ) -> tuple[str, dict[str, Any]]:
        """The business system's row of a new query (its 符号 obtained first if need be): the
        request id and what to send to the intermediate server."""
        provider_org = query_provider(self.topology, provider, info)
        aid, integrated, has_fugo = self._person(my_number)
        if not has_fugo and self.ensure_fugo([aid])["unknown"]:
            raise BusinessError("J-LIS does not know this 個人番号; no 符号 can be obtained")
        request_id = new_request_id()
        with writing(self.db) as s:
            s.add(
                LinkageAnswer(
                    request_id=request_id,
                    addressee_id=aid,
                    provider=provider_org,
                    affair=affair,
                    info=info,
                    staff=staff[:100] or "職員",
                    status="unsent",
                    reason="",
                    requested_at=now(),
                )  # fmt: skip
            )
        payload = {"request_id": request_id, "integrated_number": integrated, "provider": provider_org,
                   "affair": affair, "info": info, "wait": True}  # fmt: skip
        return request_id, payload

    def result(self, exchange_id: str) -> dict[str, Any]:
        """Collect an answer that was still pending (結果取得要求)."""
        with writing(self.db) as s:
            row = s.scalar(select(LinkageAnswer).where(LinkageAnswer.exchange_id == exchange_id))
            if row is None:
                raise NotFound("this municipality made no query with this 処理通番")
            request_id = row.request_id
            if row.status in FINAL:
                return self._view(row)
        state = self._call(RESULT_PATH, {"request_id": request_id})
        return self._store(request_id, state)

    def _store(self, request_id: str, state: dict[str, Any]) -> dict[str, Any]:
        """Write the state and, once answered, the verified signed answer: one transaction."""
        doc = state.get("answer")
        with writing(self.db) as s:
            row = s.scalar(select(LinkageAnswer).where(LinkageAnswer.request_id == request_id))
            assert row is not None
            valid, as_of, data = None, None, None
            if doc is not None:
                valid, as_of, data = verify_answer(
                    doc, self.trust, self.settings, state.get("exchange_id"), row.provider, self.opener
                )
            row.exchange_id = state.get("exchange_id") or row.exchange_id
            row.status = state["status"]
            row.reason = str(state.get("reason") or "")[:400]
            if doc is not None:
                row.document, row.signature_valid, row.as_of = doc, valid, as_of
            if row.status in FINAL and row.answered_at is None:
                row.answered_at = now()
            if doc is None:
                return self._view(row)
            # the information verify_answer opened: not opened a second time to show it
            return stored_answer_view(self.topology, self.org_id, row, self.opener, opened=data)

    def _view(self, row: LinkageAnswer) -> dict[str, Any]:
        return stored_answer_view(self.topology, self.org_id, row, self.opener)

    def waiting(self, collect: bool = False) -> dict[str, Any]:
        """The queries still waiting for their answer, oldest first (``common.linkage.waiting_queries``);
        ``collect``: each asked for again first (結果取得要求)."""
        return waiting_queries(self.db, LinkageAnswer, self._view, self.result if collect else None)

    def verify_stored(self, exchange_id: str) -> dict[str, Any]:
        """Check a stored answer again, later: is it still the provider's genuine signed document?"""
        with writing(self.db) as s:
            row = s.scalar(select(LinkageAnswer).where(LinkageAnswer.exchange_id == exchange_id))
            if row is None or row.document is None:
                raise NotFound("no stored answer with this 処理通番")
            check = check_answer(row.document, self.trust, self.settings, exchange_id, row.provider)
        return {"exchange_id": exchange_id, "signature_valid": check.valid, "reason": check.reason}

    def answers(self, limit: int = 200) -> list[dict[str, Any]]:
        with writing(self.db) as s:
            rows = s.scalars(select(LinkageAnswer).order_by(LinkageAnswer.id.desc()).limit(limit))
            return [self._view(r) for r in rows]

    # --- 登録状況: what the linkage staff see -------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The state of this municipality's side of information linkage, with no person in it: how
        many persons have their 符号 (delivered, asked for, not yet asked), and per category how
        the 副本 are refreshed, how many this municipality has registered and when it last sent
        one, beside how many the intermediate server holds (``None`` with ``intermediate_error``
        when it cannot be asked; both ``None`` in direct mode, which keeps no 副本)."""
        with self.db.transaction() as s:
            numbered = int(
                s.scalar(select(func.count()).select_from(Addressee).where(Addressee.my_number.is_not(None)))
                or 0
            )
            # every 取得番号 announced, and those whose 符号 came (count() of a column skips its NULLs)
            requested, delivered = s.execute(select(func.count(), func.count(FugoRequest.delivered_at))).one()
            sent = {
                c: (int(n), last)
                for c, n, last in s.execute(
                    select(CopyState.category, func.count(), func.max(CopyState.sent_at)).group_by(
                        CopyState.category
                    )
                )
            }
            states: dict[str, str] = dict(s.execute(select(LinkageState.key, LinkageState.value)).all())
        held: dict[str, int] | None = None
        error = None
        if not self.direct:
            try:
                held = dict(self._call("/api/tenant/copies/counts")["counts"])
            except (Unreachable, RemoteError) as exc:
                error = str(exc)[:300]
        categories = []
        for category in EXTRACTORS:
            registered, last = sent.get(category, (0, None))
            categories.append(
                {
                    "category": category,
                    "refresh": "direct" if self.direct else self.settings.refresh_mode(self.org_id, category),
                    "registered": None if self.direct else registered,
                    "last_sent_at": iso(last),
                    "at_intermediate": None if held is None else int(held.get(category, 0)),
                }
            )
        return {
            "enabled": states.get("enabled") == "yes",
            "direct": self.direct,
            "receiver": self.intermediate,
            "receiver_name": self.topology.org(self.intermediate).name,
            "fugo": {
                "persons_with_number": numbered,
                "delivered": delivered,
                "asked": requested - delivered,
                "not_asked": max(0, numbered - requested),
            },
            "categories": categories,
            "nightly_at": self.settings.nightly_at,
            "last_nightly": states.get("nightly"),
            "intermediate_error": error,
        }

    # --- worker: on-change refresh and the nightly batch ---------------------------------------
    def tick(self, at: dt.datetime | None = None) -> dict[str, Any]:
        """One pass of the worker: on-change categories if their sources moved; the nightly batch
        once a day after ``nightly_at`` (JST).  Does nothing until linkage is enabled."""
        if not self.enabled:
            return {}
        done: dict[str, Any] = {}
        on_change = [c for c in EXTRACTORS if self.settings.refresh_mode(self.org_id, c) == "on_change"]
        if on_change:
            done["on_change"] = self.refresh(on_change, full=False)
        local = in_jst(at or now_aware())
        hh, mm = (int(x) for x in self.settings.nightly_at.split(":"))
        if (local.hour, local.minute) >= (hh, mm) and self._get("nightly") != local.date().isoformat():
            done["nightly"] = self.refresh_now()["copies"]
            self._set("nightly", local.date().isoformat())
        return done

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop(timeout=30)
