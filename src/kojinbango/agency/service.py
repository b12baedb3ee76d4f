"""日本年金機構's business side of information linkage: its insured persons and pensions, their 符号,
the 副本 of 年金給付関係情報 in its own intermediate server, and its queries with signed answers."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, insert, select, update

from kojinbango.agency.models import AgencyAnswer, AgencyFugo, InsuredPerson, PensionAward
from kojinbango.common.batching import MAX_BATCH, Coalescer, PerLoop
from kojinbango.common.db import Database
from kojinbango.common.errors import BusinessError, NotFound
from kojinbango.common.linkage import (
    FINAL,
    LinkageSettings,
    acquire_fugo,
    answer_view,
    await_final,
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
from kojinbango.common.transport import SignedClient
from kojinbango.domain.clock import utc_now as now
from kojinbango.domain.identifiers import validate_my_number
from kojinbango.intermediate.service import BusinessRow, IntermediateService, Query

CATEGORY = "年金給付関係情報"
_A: Table = AgencyAnswer.__table__  # type: ignore[assignment]
_INSERT_ANSWER = insert(_A)
_PERSONS = (
    select(InsuredPerson.my_number, InsuredPerson.id, AgencyFugo.delivered_at)
    .outerjoin(AgencyFugo, AgencyFugo.person_id == InsuredPerson.id)
    .where(InsuredPerson.my_number.in_(bindparam("numbers", expanding=True)))
)
_UPDATE_ANSWER = (
    update(_A)
    .where(_A.c.request_id == bindparam("rid"))
    .values(
        exchange_id=func.coalesce(bindparam("p_exchange_id"), _A.c.exchange_id),
        status=bindparam("p_status"),
        reason=bindparam("p_reason"),
        document=func.coalesce(_A.c.document, bindparam("p_document", type_=_A.c.document.type)),
        signature_valid=func.coalesce(bindparam("p_valid"), _A.c.signature_valid),
        as_of=func.coalesce(bindparam("p_as_of"), _A.c.as_of),
        answered_at=func.coalesce(_A.c.answered_at, bindparam("p_answered_at")),
    )
)
CHUNK = 1000
CHECKED_KEPT = 10_000  # checked answers kept for their waiting staff requests


@dataclass(frozen=True)
class _Ask:
    """A query about to be sent: the request id, the agency's 宛名番号 for the person, what is asked."""

    request_id: str
    person: str
    provider: str
    affair: str
    info: str
    asked_at: dt.datetime
    row: BusinessRow


def person_key(person_id: int) -> str:
    """The agency's 宛名番号 at its intermediate server (never the 個人番号)."""
    return f"P{person_id:09d}"


class AgencyService:
    def __init__(
        self,
        db: Database,
        org_id: str,
        client: SignedClient,
        topology: Topology,
        trust: TrustStore,
        intermediate: IntermediateService,
    ):
        self.db = db
        self.org_id = org_id
        self.client = client
        self.topology = topology
        self.trust = trust
        self.intermediate = intermediate
        self.settings = LinkageSettings.of(topology)
        self.jlis = topology.of_kind("jlis")[0].id
        intermediate.result_hooks.append(self._on_results)
        self.opener = topology.opener(org_id)  # answers are sealed to the agency (common.sealing)
        # request id → (signature valid, as of, the information opened), for the staff request that
        # waits on it; bounded, since an answer collected later by the sweep has no one waiting (a
        # waiter whose entry went falls back to reading the stored answer)
        self._checked: OrderedDict[str, tuple[bool | None, dt.datetime | None, Any]] = OrderedDict()
        self._checked_lock = threading.Lock()
        self._fugo_lock = threading.Lock()
        self._asks: PerLoop[tuple[str, str, str, str, str], tuple[_Ask, dict[str, Any]] | None] = PerLoop(
            lambda _key: Coalescer(self._aquery_many, MAX_BATCH, self.settings.batches_in_flight)
        )

    # --- its own persons -------------------------------------------------------------------------
    def register(self, my_number: str, name: str = "", birth_date: dt.date | None = None) -> int:
        """資格取得: a person becomes known to the agency (idempotent by 個人番号); returns its id."""
        number = validate_my_number(my_number)
        with self.db.transaction() as s:
            existing = s.scalar(select(InsuredPerson.id).where(InsuredPerson.my_number == number))
        if existing is not None:
            return int(existing)
        with writing(self.db) as s:
            existing = s.scalar(select(InsuredPerson.id).where(InsuredPerson.my_number == number))
            if existing is not None:
                return int(existing)
            serial = (s.scalar(select(func.max(InsuredPerson.id))) or 0) + 1
            p = InsuredPerson(pension_number=f"{4000000000 + serial:010d}", my_number=number, name=name,
                              birth_date=birth_date, registered_at=now())  # fmt: skip
            s.add(p)
            s.flush()
            return int(p.id)

    def award(self, person_id: int, kind: str, annual_amount: int, since: dt.date) -> None:
        with writing(self.db) as s:
            if s.get(InsuredPerson, person_id) is None:
                raise NotFound("no such insured person")
            s.add(PensionAward(person_id=person_id, kind=kind, annual_amount=annual_amount, since=since))

    # --- 符号 and 副本 -----------------------------------------------------------------------------
    def ensure_fugo(self, person_ids: list[int] | None = None) -> dict[str, int]:
        """Obtain the 符号 of those of ``person_ids`` (all when None) who have none yet, through J-LIS.

        One at a time: concurrent queries about the same new person wait for the first to obtain
        it, then find it delivered (each would otherwise ask with its own 取得番号)."""
        with self._fugo_lock:
            return self._ensure_fugo(person_ids)

    def _ensure_fugo(self, person_ids: list[int] | None) -> dict[str, int]:
        with writing(self.db) as s:
            q = select(InsuredPerson.id, InsuredPerson.my_number)
            if person_ids is not None:
                q = q.where(InsuredPerson.id.in_(person_ids))
            people = list(s.execute(q))
            q2 = select(AgencyFugo.person_id, AgencyFugo.acquisition_number, AgencyFugo.delivered_at)
            if person_ids is not None:
                q2 = q2.where(AgencyFugo.person_id.in_(person_ids))
            known = list(s.execute(q2))
            done = {pid for pid, _, at in known if at is not None}
            asked = {pid: acq for pid, acq, _ in known}
        todo = [(pid, person_key(pid), mn) for pid, mn in people if pid not in done]

        def record_asked(new: list[tuple[int, str]]) -> None:
            with writing(self.db) as s:
                s.add_all(
                    AgencyFugo(person_id=pid, acquisition_number=a, requested_at=now()) for pid, a in new
                )

        def record_delivered(pids: list[int]) -> None:
            with writing(self.db) as s:
                for pid in pids:
                    row = s.get(AgencyFugo, pid)
                    if row is not None:
                        row.delivered_at = now()

        return acquire_fugo(
            todo,
            asked,
            lambda items: self.intermediate.expect_fugo(self.org_id, items),
            functools.partial(self.client.call, self.jlis),
            record_asked,
            record_delivered,
        )

    def refresh(self) -> dict[str, int]:
        """Register every pensioner's 年金給付関係情報 as 副本 (a full refresh)."""
        t = now()
        with writing(self.db) as s:
            awards: dict[int, list[dict[str, Any]]] = {}
            for pid, kind, amount, since in s.execute(
                select(
                    PensionAward.person_id, PensionAward.kind, PensionAward.annual_amount, PensionAward.since
                ).order_by(PensionAward.person_id, PensionAward.id)
            ):
                awards.setdefault(pid, []).append(
                    {"kind": kind, "annual_amount": amount, "since": since.isoformat()}
                )
        items = [
            {"integrated_number": person_key(pid), "data": {"awards": a}, "as_of": iso(t)}
            for pid, a in awards.items()
        ]
        registered = 0
        for i in range(0, max(len(items), 1), CHUNK):
            last = i + CHUNK >= len(items)
            out = self.intermediate.register_copies(
                self.org_id, CATEGORY, items[i : i + CHUNK], complete_as_of=iso(t) if last else None
            )
            registered += out["registered"]
        return {"registered": registered}

    # --- 情報照会 ----------------------------------------------------------------------------------
    def query(
        self,
        my_number: str,
        provider: str,
        affair: str,
        info: str,
        staff: str = "職員",
        wait_seconds: float = 10.0,
    ) -> dict[str, Any]:
        ask = self._prepare(my_number, provider, affair, info, staff)
        state = self.intermediate.query(
            self.org_id, ask.request_id, ask.person, ask.provider, affair, info, True, ask.row
        )
        state = wait_final(
            state, lambda: self.intermediate.result(self.org_id, request_id=ask.request_id), wait_seconds
        )
        return self._finish(ask, state)

    async def aquery(
        self,
        my_number: str,
        provider: str,
        affair: str,
        info: str,
        staff: str = "職員",
        wait_seconds: float = 10.0,
    ) -> dict[str, Any]:
        """``query`` on the event loop: the exchange is awaited; only a first-time person's 符号
        request (J-LIS, rare) and a late answer's polling run on a thread.  Queries that arrive
        while others are on their way go together (``common.batching``): their persons found with
        one statement, then sent as one batch through the agency's intermediate server."""
        provider_org = query_provider(self.topology, provider, info)
        number = validate_my_number(my_number)
        asked = await self._asks.get().submit((number, provider_org, affair, info, staff))
        if asked is None:  # a new person, or one without a 符号 yet: J-LIS is asked, off the loop
            ask = await asyncio.to_thread(self._prepare, my_number, provider, affair, info, staff)
            state = await self.intermediate.aquery(
                self.org_id, ask.request_id, ask.person, ask.provider, affair, info, True, ask.row
            )
        else:
            ask, state = asked
        state = await await_final(
            state, lambda: self.intermediate.result(self.org_id, request_id=ask.request_id), wait_seconds
        )
        return self._finish(ask, state)

    async def _aquery_many(
        self, items: list[tuple[str, str, str, str, str]]
    ) -> list[tuple[_Ask, dict[str, Any]] | None | BaseException]:
        """A batch of (number, provider, affair, info, staff): None for a person not ready to ask
        about (no 符号 yet), else the query sent and its state (or the error it failed with)."""
        with self.db.begin() as conn:  # the event loop's own connection
            found = {
                n: (pid, at)
                for n, pid, at in conn.execute(_PERSONS, {"numbers": list({i[0] for i in items})})
            }
        out: list[tuple[_Ask, dict[str, Any]] | None | BaseException] = [None] * len(items)
        asks: list[tuple[int, _Ask]] = []
        for i, (number, provider_org, affair, info, staff) in enumerate(items):
            person = found.get(number)
            if person is not None and person[1] is not None:
                asks.append((i, self._ask(int(person[0]), provider_org, affair, info, staff)))
        queries = [Query(self.org_id, a.request_id, a.person, a.provider, a.affair, a.info, True, a.row)
                   for _, a in asks]  # fmt: skip
        for (i, ask), state in zip(asks, await self.intermediate.aquery_many(queries), strict=True):
            out[i] = state if isinstance(state, BaseException) else (ask, state)
        return out

    def _prepare(self, my_number: str, provider: str, affair: str, info: str, staff: str) -> _Ask:
        """Validate, find (or register) the person, make sure they have a 符号: the query to send."""
        provider_org = query_provider(self.topology, provider, info)
        number = validate_my_number(my_number)
        with self.db.engine.connect() as conn:  # one read for the usual case: known, with a 符号
            row = conn.execute(_PERSONS, {"numbers": [number]}).first()  # (number, id, 符号 delivered)
        pid = int(row[1]) if row is not None else self.register(number)
        if (row is None or row[2] is None) and self.ensure_fugo([pid])["unknown"]:
            raise BusinessError("J-LIS does not know this 個人番号; no 符号 can be obtained")
        return self._ask(pid, provider_org, affair, info, staff)

    def _ask(self, pid: int, provider_org: str, affair: str, info: str, staff: str) -> _Ask:
        request_id = new_request_id()
        asked_at = now()

        row = BusinessRow(  # written with the intermediate server's query row
            _INSERT_ANSWER,
            {"request_id": request_id, "person_id": pid, "provider": provider_org, "affair": affair, "info": info,
             "staff": staff[:100] or "職員", "status": "unsent", "reason": "", "requested_at": asked_at},
        )  # fmt: skip
        return _Ask(request_id, person_key(pid), provider_org, affair, info, asked_at, row)

    def _finish(self, ask: _Ask, state: dict[str, Any]) -> dict[str, Any]:
        with self._checked_lock:
            checked = self._checked.pop(ask.request_id, None)
        if checked is None:  # nothing new was written since the row was made
            return self._answer(ask.request_id)
        return answer_view(
            self.topology,
            self.org_id,
            ask.provider,
            exchange_id=state.get("exchange_id"),
            status=state["status"],
            reason=str(state.get("reason") or "")[:400],
            affair=ask.affair,
            info=ask.info,
            requested_at=ask.asked_at,
            as_of=checked[1],
            document=state.get("answer"),
            signature_valid=checked[0],
            data=checked[2],
        )

    def _answer(self, request_id: str) -> dict[str, Any]:
        with self.db.transaction() as s:
            answer = s.scalar(select(AgencyAnswer).where(AgencyAnswer.request_id == request_id))
            assert answer is not None
            return self._view(answer)

    def result(self, exchange_id: str) -> dict[str, Any]:
        with writing(self.db) as s:
            row = s.scalar(select(AgencyAnswer).where(AgencyAnswer.exchange_id == exchange_id))
            if row is None:
                raise NotFound("the agency made no query with this 処理通番")
            if row.status in FINAL:
                return self._view(row)
            request_id = row.request_id
        self.intermediate.result(self.org_id, request_id=request_id)
        return self._answer(request_id)

    def _on_results(self, s: Connection, states: list[tuple[str, dict[str, Any]]]) -> None:
        """The intermediate server wrote queries' new states: keep the business rows in step (same
        transaction), each answer verified before it is kept."""
        changes = []
        for tenant, state in states:
            if tenant != self.org_id:
                continue
            doc = state.get("answer")
            valid, as_of, data = None, None, None
            if doc is not None:
                valid, as_of, data = verify_answer(
                    doc, self.trust, self.settings, state.get("exchange_id"), state["provider"], self.opener
                )
            final = state["status"] in FINAL
            changes.append(
                {"rid": state["request_id"], "p_exchange_id": state.get("exchange_id"), "p_status": state["status"],
                 "p_reason": str(state.get("reason") or "")[:400], "p_document": doc, "p_valid": valid,
                 "p_as_of": as_of, "p_answered_at": now() if final else None}
            )  # fmt: skip
            with self._checked_lock:
                self._checked[state["request_id"]] = (valid, as_of, data)
                self._checked.move_to_end(state["request_id"])
                while len(self._checked) > CHECKED_KEPT:
                    self._checked.popitem(last=False)
        if changes:
            s.execute(_UPDATE_ANSWER, changes)

    def _view(self, row: AgencyAnswer) -> dict[str, Any]:
        return stored_answer_view(self.topology, self.org_id, row, self.opener)

    def waiting(self, collect: bool = False) -> dict[str, Any]:
        """The queries still waiting for their answer, oldest first (``common.linkage.waiting_queries``);
        ``collect``: each asked for again first (結果取得要求)."""
        return waiting_queries(self.db, AgencyAnswer, self._view, self.result if collect else None)

    def verify_stored(self, exchange_id: str) -> dict[str, Any]:
        with writing(self.db) as s:
            row = s.scalar(select(AgencyAnswer).where(AgencyAnswer.exchange_id == exchange_id))
            if row is None or row.document is None:
                raise NotFound("no stored answer with this 処理通番")
            valid, _, _ = verify_answer(
                row.document, self.trust, self.settings, exchange_id, row.provider, self.opener
            )
        return {"exchange_id": exchange_id, "signature_valid": valid}
