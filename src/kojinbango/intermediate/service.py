"""The intermediate server's operations, each on exactly one tenant.

Towards its tenants' business systems (共通機能 names in brackets): announcing 取得番号 and knowing
which persons have a 符号 [FGU 符号管理], registering 副本 [DBM], sending queries and collecting
answers [SKI], listing the tenant's provision records [TKM].  Towards the network's IF system:
storing delivered 符号 and answering queries from the 副本 [TKY].
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Connection, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from kojinbango.common.batching import (
    MAX_BATCH,
    Coalescer,
    PerLoop,
    call_batched,
    hand_over,
    only,
    together_or_alone,
)
from kojinbango.common.db import Database
from kojinbango.common.documents import sign_documents
from kojinbango.common.errors import BusinessError, Conflict, NotFound
from kojinbango.common.layouts import CATEGORIES, LayoutError, validate
from kojinbango.common.linkage import ANSWER_KIND, FINAL, WAITING, iso, parse_iso, writing, writing_core
from kojinbango.common.pki import CertificateError, OrgCredentials
from kojinbango.common.sealing import Sealer, key_id
from kojinbango.common.topology import TopologyError
from kojinbango.common.transport import RemoteError, Unreachable
from kojinbango.common.worker import BackgroundLoop, Every
from kojinbango.domain.clock import utc_now as now
from kojinbango.intermediate.models import (
    CategoryConfirmation,
    Copy,
    FugoExpectation,
    FugoLink,
    OutgoingQuery,
    Provision,
    ProvisionRecord,
)

log = logging.getLogger(__name__)
# A querier's encryption certificate is read again this often (``exchange rotate-key``: the new key
# is sealed to within this long, without a restart).
RECIPIENT_SECONDS = 60.0

# by querier: its encryption key, and each answer's body with the information to seal into it
_ToSeal = dict[str, tuple[ec.EllipticCurvePublicKey, list[tuple[dict[str, Any], Any]]]]


class _Recipient(NamedTuple):
    """A querier's encryption key as its certificate was read (None: it has none), the ``kid`` of
    seals to it (``sealing.key_id``) and when it was read (``time.monotonic``)."""

    key: ec.EllipticCurvePublicKey | None
    kid: str
    read_at: float


# The statements of the exchange path, built once (building and compiling SQL per call cost more
# than the signatures: measured with bench/exchange.py).
_Q: Table = OutgoingQuery.__table__  # type: ignore[assignment]
_F: Table = FugoLink.__table__  # type: ignore[assignment]
_C: Table = Copy.__table__  # type: ignore[assignment]
_CC: Table = CategoryConfirmation.__table__  # type: ignore[assignment]
_P: Table = Provision.__table__  # type: ignore[assignment]
_R: Table = ProvisionRecord.__table__  # type: ignore[assignment]
_FIND_QUERIES = select(_Q).where(
    _Q.c.tenant == bindparam("tenant"), _Q.c.request_id.in_(bindparam("rids", expanding=True))
)
_FUGOS_OF_PERSONS = select(_F.c.integrated_number, _F.c.fugo).where(
    _F.c.tenant == bindparam("tenant"), _F.c.integrated_number.in_(bindparam("nums", expanding=True))
)
# the new queries' ids, by their (tenant, request id): returned in any order, so one multi-row
# statement on SQLite too (an ordered RETURNING there falls back to a statement per row)
_INSERT_QUERIES = insert(_Q).returning(_Q.c.id, _Q.c.tenant, _Q.c.request_id)
_UPDATE_QUERY = (
    update(_Q)
    .where(_Q.c.id == bindparam("qid"))
    .values(
        exchange_id=bindparam("p_exchange_id"),
        requested_at=bindparam("p_requested_at"),
        status=bindparam("p_status"),
        reason=bindparam("p_reason"),
        answer=bindparam("p_answer", type_=_Q.c.answer.type),
        answered_at=bindparam("p_answered_at"),
    )
)
_QUERIES_BY_ID = select(_Q).where(_Q.c.id.in_(bindparam("ids", expanding=True)))
_QUERIER_RECORDS = select(_R.c.id, _R.c.exchange_id).where(
    _R.c.tenant == bindparam("tenant"),
    _R.c.role == "querier",
    _R.c.exchange_id.in_(bindparam("ids", expanding=True)),
)
_UPDATE_RECORD = (
    update(_R)
    .where(_R.c.id == bindparam("rec"))
    .values(
        outcome=bindparam("p_outcome"), provided_at=bindparam("p_provided_at"), reason=bindparam("p_reason")
    )
)
_INSERT_RECORD = insert(_R)
_CONFIRMED = select(_CC.c.as_of).where(
    _CC.c.tenant == bindparam("tenant"), _CC.c.category == bindparam("cat")
)
_INSERT_PROVISION = insert(_P)
# A batch of provisions for one tenant reads with one statement each (expanding IN).
_PROVISION_DOCS = select(_P.c.exchange_id, _P.c.document).where(
    _P.c.tenant == bindparam("tenant"), _P.c.exchange_id.in_(bindparam("ids", expanding=True))
)
_PERSONS_OF_FUGO = select(_F.c.fugo, _F.c.integrated_number).where(
    _F.c.tenant == bindparam("tenant"), _F.c.fugo.in_(bindparam("fugos", expanding=True))
)
_COPIES = select(_C.c.integrated_number, _C.c.layout_version, _C.c.data, _C.c.as_of).where(
    _C.c.tenant == bindparam("tenant"),
    _C.c.category == bindparam("cat"),
    _C.c.integrated_number.in_(bindparam("nums", expanding=True)),
)
OUTCOME = {"answered": "provided", "not_held": "not_held", "refused": "refused", "failed": "failed"}
MAX_ITEMS = 5000
FAILPOINT = "KOJINBANGO_FAILPOINT"  # tests only: "crash_after_provide" ends the process after a provision

Call = Callable[[str, str, str, Any], Any]
ACall = Callable[[str, str, str, Any], Awaitable[Any]]
QUERIES_PATH = "/api/if/queries"
QUERIES_BATCH_PATH = "/api/if/queries/batch"
# A query written and ready to send: its row id, what goes to the network, its columns.
Opened = dict[str, Any] | tuple[int, dict[str, Any], dict[str, Any]]


class _Facts:
    """A batch of provisions' reads: documents already made, persons of 符号, 副本, confirmations."""

    def __init__(self, s: Connection):
        self.s = s
        self.done: dict[tuple[str, str], Any] = {}
        self.numbers: dict[tuple[str, str], str] = {}
        self.copies: dict[tuple[str, str, str], tuple[int, Any, dt.datetime]] = {}
        self._confirmed: dict[tuple[str, str], dt.datetime | None] = {}

    def confirmed(self, tenant: str, category: str) -> dt.datetime | None:
        if (tenant, category) not in self._confirmed:
            self._confirmed[(tenant, category)] = self.s.execute(
                _CONFIRMED, {"tenant": tenant, "cat": category}
            ).scalar()
        return self._confirmed[(tenant, category)]


@dataclass(frozen=True)
class BusinessRow:
    """A row of the tenant's business system written in the same transaction as its query (when
    that system shares this database, as the agency's does): an INSERT and its values.  The rows
    of one batch that share a statement are written with one multi-row statement."""

    statement: Insert
    values: dict[str, Any]


@dataclass(frozen=True)
class Query:
    """A tenant's query on its way to the network (``also``: the business row written with it)."""

    tenant: str
    request_id: str
    integrated_number: str
    provider: str
    affair: str
    info: str
    wait: bool
    also: BusinessRow | None


# Direct mode: (tenant, category, 統合宛名番号s) → {統合宛名番号: (layout version, data, as of)},
# read from the tenant's 正本 when asked.
LiveCopies = Callable[[str, str, list[str]], dict[str, tuple[int, Any, dt.datetime]]]


class IntermediateService:
    def __init__(
        self,
        db: Database,
        creds: OrgCredentials,
        tenants: Iterable[str],
        network: str,
        call: Call,
        public_ids: dict[str, str],
        retention_years: int = 7,
        acall: ACall | None = None,
        sealing_key: Callable[[str], ec.EllipticCurvePublicKey | None] | None = None,
        batches_in_flight: int = 1,
        live: LiveCopies | None = None,
    ):
        self.db = db
        # direct mode (論点2): the tenant's business systems answer from the 正本 at query time;
        # no 副本 is kept here
        self.live = live
        # the querier's encryption key, by organisation: the provided information is sealed to it
        self._sealing_key = sealing_key
        # querier → its key as its certificate was last read (``_recipient``)
        self._recipients: dict[str, _Recipient] = {}
        self._sealer = Sealer()
        self.creds = creds
        self.tenants = set(tenants)
        self.network = network
        self.call = call
        self.acall = acall  # the same call on the event loop, for handlers that await it
        self.public_ids = public_ids
        self.retention = dt.timedelta(days=round(365.25 * retention_years))
        self._purge_due = Every(3600)  # hourly
        self._loop = BackgroundLoop("intermediate-sweep", self._tick, 2.0, wait_first=True)
        # Queries being sent by a request right now: the sweep leaves them alone (resending an
        # in-flight query cost a second network round trip per exchange under load).
        self._in_flight: set[int] = set()
        self._in_flight_lock = threading.Lock()
        # Run inside the transaction that writes queries' new states, with (tenant, state) of each
        # (a business system sharing this database keeps its own copy of the answer in step).
        self.result_hooks: list[Callable[[Connection, list[tuple[str, dict[str, Any]]]], None]] = []
        self._queries: PerLoop[Query, dict[str, Any]] = PerLoop(
            lambda _key: Coalescer(self.aquery_many, MAX_BATCH, batches_in_flight)
        )

    def _tenant(self, tenant: str) -> str:
        if tenant not in self.tenants:
            raise NotFound("this intermediate server does not serve that organisation")
        return tenant

    # --- 符号管理 (FGU) ----------------------------------------------------------------------
    def expect_fugo(self, tenant: str, items: list[dict[str, str]]) -> int:
        """Announce 取得番号 → 統合宛名番号 before the tenant asks J-LIS for the 符号."""
        tenant = self._tenant(tenant)
        if len(items) > MAX_ITEMS:
            raise BusinessError(f"at most {MAX_ITEMS} persons per request")
        t = now()
        with writing(self.db) as s:
            for item in items:
                key = (tenant, item["acquisition_number"])
                if s.get(FugoExpectation, key) is None:
                    s.add(
                        FugoExpectation(
                            tenant=tenant,
                            acquisition_number=item["acquisition_number"],
                            integrated_number=item["integrated_number"],
                            expected_at=t,
                        )
                    )
        return len(items)

    def store_fugo(self, tenant: str, items: list[dict[str, str]]) -> dict[str, Any]:
        """The network delivers 符号 with the 取得番号 they answer."""
        tenant = self._tenant(tenant)
        t = now()
        stored, unexpected = 0, []
        with writing(self.db) as s:
            for item in items:
                exp = s.get(FugoExpectation, (tenant, item["acquisition_number"]))
                if exp is None:
                    unexpected.append(item["acquisition_number"])
                    continue
                link = s.get(FugoLink, (tenant, exp.integrated_number))
                if link is None:
                    s.add(
                        FugoLink(
                            tenant=tenant,
                            integrated_number=exp.integrated_number,
                            fugo=item["fugo"],
                            stored_at=t,
                        )
                    )
                elif link.fugo != item["fugo"]:
                    link.fugo, link.stored_at = item["fugo"], t
                exp.delivered_at = t
                stored += 1
        return {"stored": stored, "unexpected": unexpected}

    def with_fugo(self, tenant: str, integrated_numbers: list[str]) -> list[str]:
        """Which of these persons the tenant holds a 符号 for."""
        tenant = self._tenant(tenant)
        out: list[str] = []
        with writing(self.db) as s:
            for i in range(0, len(integrated_numbers), 900):
                out += s.scalars(
                    select(FugoLink.integrated_number).where(
                        FugoLink.tenant == tenant,
                        FugoLink.integrated_number.in_(integrated_numbers[i : i + 900]),
                    )
                )
        return out

    # --- 副本 (DBM) ---------------------------------------------------------------------------
    def register_copies(
        self,
        tenant: str,
        category: str,
        items: list[dict[str, Any]],
        deletions: list[str] | None = None,
        complete_as_of: str | None = None,
    ) -> dict[str, int]:
        """Register (or replace) 副本 of one category; each is validated against its layout first.

        ``complete_as_of``: the tenant confirms every other 副本 of the category was still current
        then (a full refresh, e.g. the nightly batch).
        """
        tenant = self._tenant(tenant)
        if self.live is not None:
            raise BusinessError(
                "direct mode: the business systems answer from the 正本; no 副本 is registered"
            )
        if category not in CATEGORIES:
            raise BusinessError(f"unknown information category {category!r}")
        if len(items) > MAX_ITEMS:
            raise BusinessError(f"at most {MAX_ITEMS} 副本 per request")
        t = now()
        rows = []
        for i, item in enumerate(items):
            try:
                lay = validate(category, item.get("data"), item.get("layout_version"))
            except LayoutError as exc:
                raise BusinessError(f"副本 {i + 1}: {exc}") from None
            as_of = parse_iso(item.get("as_of")) or t
            rows.append((str(item["integrated_number"]), lay.version, item["data"], as_of))
        with writing(self.db) as s:
            for number, version, data, as_of in rows:
                c = s.get(Copy, (tenant, number, category))
                if c is None:
                    s.add(Copy(tenant=tenant, integrated_number=number, category=category, layout_version=version,
                               data=data, as_of=as_of, registered_at=t))  # fmt: skip
                else:
                    c.layout_version, c.data, c.as_of, c.registered_at = version, data, as_of, t
            removed = 0
            for number in deletions or []:
                removed += _rows(
                    s.execute(
                        delete(Copy).where(
                            Copy.tenant == tenant, Copy.integrated_number == number, Copy.category == category
                        )
                    )
                )
            if complete_as_of:
                conf = s.get(CategoryConfirmation, (tenant, category))
                when = parse_iso(complete_as_of) or t
                if conf is None:
                    s.add(CategoryConfirmation(tenant=tenant, category=category, as_of=when))
                else:
                    conf.as_of = max(conf.as_of, when)
        return {"registered": len(rows), "deleted": removed}

    def copy_of(self, tenant: str, integrated_number: str, category: str) -> dict[str, Any]:
        tenant = self._tenant(tenant)
        if self.live is not None:  # what a query would be answered with now
            found = self.live(tenant, category, [integrated_number]).get(integrated_number)
            if found is None:
                raise NotFound("this tenant holds no such information")
            version, data, as_of = found
            return {"category": category, "layout_version": version, "data": data, "as_of": iso(as_of)}
        with writing(self.db) as s:
            c = s.get(Copy, (tenant, integrated_number, category))
            if c is None:
                raise NotFound("this tenant holds no such 副本")
            return {"category": category, "layout_version": c.layout_version, "data": c.data,
                    "as_of": iso(self._as_of(s, c))}  # fmt: skip

    def copy_counts(self, tenant: str) -> dict[str, int]:
        tenant = self._tenant(tenant)
        with writing(self.db) as s:
            return dict(
                s.execute(
                    select(Copy.category, func.count()).where(Copy.tenant == tenant).group_by(Copy.category)
                ).all()
            )

    @staticmethod
    def _as_of(s: Session, c: Copy) -> dt.datetime:
        conf = s.get(CategoryConfirmation, (c.tenant, c.category))
        return max(c.as_of, conf.as_of) if conf is not None else c.as_of

    # --- 情報照会 (SKI) -------------------------------------------------------------------------
    def query(
        self,
        tenant: str,
        request_id: str,
        integrated_number: str,
        provider: str,
        affair: str,
        info: str,
        wait: bool = True,
        also: BusinessRow | None = None,
    ) -> dict[str, Any]:
        """Send a query for one person; the querier's record is written with it.

        ``also``: the business system's own row, written in the same transaction."""
        opened = self._open(tenant, request_id, integrated_number, provider, affair, info, wait, also)
        if isinstance(opened, dict):
            return opened
        qid, payload, q = opened
        with self._sending(qid):
            return self._send(qid, wait, payload, q)

    async def aquery(
        self,
        tenant: str,
        request_id: str,
        integrated_number: str,
        provider: str,
        affair: str,
        info: str,
        wait: bool = True,
        also: BusinessRow | None = None,
    ) -> dict[str, Any]:
        """``query`` on the event loop (the network is awaited, no thread is held); needs ``acall``.

        Queries of the same loop that arrive while others are on their way go to the network
        together (``common.batching``): opened in one transaction, sent as one batch, their
        answers written in one transaction — each still with its own outcome."""
        assert self.acall is not None
        ask = Query(tenant, request_id, integrated_number, provider, affair, info, wait, also)
        return await self._queries.get().submit(ask)

    async def aquery_many(self, asks: list[Query]) -> list[dict[str, Any] | BaseException]:
        """Queries sent together (``aquery`` batches into this; a business system that batches its
        own calls it directly): each with its own outcome, a state or the error it failed with."""
        assert self.acall is not None
        outcomes: list[dict[str, Any] | BaseException] = []
        sending: list[tuple[int, int, dict[str, Any], dict[str, Any]]] = []  # (index, qid, payload, row)
        twice: dict[int, int] = {}  # the same request id asked twice at once: sent once, both told
        first: dict[int, int] = {}
        for i, opened in enumerate(self._open_many(asks)):
            outcomes.append(opened if not isinstance(opened, tuple) else BusinessError("not sent"))
            if isinstance(opened, tuple):
                if opened[0] in first:
                    twice[i] = first[opened[0]]
                else:
                    first[opened[0]] = i
                    sending.append((i, *opened))
        if not sending:
            return outcomes
        try:
            await self._send_many(sending, outcomes)
        finally:
            for i, j in twice.items():
                outcomes[i] = outcomes[j]
        return outcomes

    async def _send_many(
        self,
        sending: list[tuple[int, int, dict[str, Any], dict[str, Any]]],
        outcomes: list[dict[str, Any] | BaseException],
    ) -> None:
        """Send opened queries to the network (alone, or as one batch) and write what it said."""
        assert self.acall is not None
        with self._sending(*(qid for _, qid, _, _ in sending)):
            items = [payload for _, _, payload, _ in sending]
            states = await call_batched(self.acall, self.network, QUERIES_PATH, QUERIES_BATCH_PATH, items)
            # the network has answered: the next batch may leave while these answers are written
            await hand_over()
            applied: list[tuple[int, int, dict[str, Any], dict[str, Any] | None]] = []
            for (i, qid, _, q), state in zip(sending, states, strict=True):
                if isinstance(state, (Unreachable, RemoteError)):
                    outcomes[i] = self._not_sent(qid, state)
                else:
                    applied.append((i, qid, state, q))
            views = self._apply_many([(qid, state, q) for _, qid, state, q in applied])
            for (i, _, _, _), view in zip(applied, views, strict=True):
                outcomes[i] = view

    def _open(
        self,
        tenant: str,
        request_id: str,
        integrated_number: str,
        provider: str,
        affair: str,
        info: str,
        wait: bool,
        also: BusinessRow | None,
    ) -> dict[str, Any] | tuple[int, dict[str, Any], dict[str, Any]]:
        """Write the query (once per request id): its id, what to send and the row — or, for a query
        already sent, its state."""
        (opened,) = self._open_many(
            [Query(tenant, request_id, integrated_number, provider, affair, info, wait, also)]
        )
        if isinstance(opened, BaseException):  # (not ``only``: mypy joins this union to Collection)
            raise opened
        return opened

    def _open_many(self, asks: list[Query]) -> list[Opened | BaseException]:
        """``_open`` for queries that go together: one transaction (each alone should it fail); a
        query that cannot be sent (no 符号 yet, not a tenant) is that query's outcome only."""

        def open_all(part: list[Query]) -> list[Opened | BaseException]:
            with writing_core(self.db) as s:
                return self._open_all(s, part)

        return list(together_or_alone(asks, open_all, "queries"))

    def _open_all(self, s: Connection, asks: list[Query]) -> list[Opened | BaseException]:
        """Queries in ``s``'s transaction, one statement per kind; a BusinessError is that query's
        outcome, with nothing of it written."""
        out: list[Opened | BaseException | None] = [None] * len(asks)
        mine: list[tuple[int, str, Query]] = []
        for i, ask in enumerate(asks):
            try:
                mine.append((i, self._tenant(ask.tenant), ask))
            except BusinessError as exc:
                out[i] = exc
        found: dict[tuple[str, str], dict[str, Any]] = {}
        fugos: dict[tuple[str, str], str] = {}
        for tenant in {t for _, t, _ in mine}:
            rids = [a.request_id for _, t, a in mine if t == tenant]
            for row in s.execute(_FIND_QUERIES, {"tenant": tenant, "rids": rids}):
                found[(tenant, row.request_id)] = dict(row._mapping)
            nums = list({a.integrated_number for _, t, a in mine if t == tenant})
            for num, fugo in s.execute(_FUGOS_OF_PERSONS, {"tenant": tenant, "nums": nums}):
                fugos[(tenant, num)] = fugo
        fresh: list[dict[str, Any]] = []
        business: dict[Insert, list[dict[str, Any]]] = {}
        ready: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
        for i, tenant, ask in mine:
            q = found.get((tenant, ask.request_id))
            if q is not None and q["status"] != "unsent":
                out[i] = self._view(q)
                continue
            fugo = fugos.get((tenant, ask.integrated_number))
            if fugo is None:
                out[i] = Conflict("this person has no 符号 at this intermediate server yet; obtain it first")
                continue
            if q is None:  # new (the same request id twice in one batch: one row)
                q = {"tenant": tenant, "request_id": ask.request_id, "integrated_number": ask.integrated_number,
                     "provider": ask.provider, "affair": ask.affair, "info": ask.info, "status": "unsent",
                     "reason": "", "created_at": now(), "exchange_id": None, "requested_at": None,
                     "answered_at": None, "answer": None}  # fmt: skip
                found[(tenant, ask.request_id)] = q
                fresh.append(q)
                if ask.also is not None:
                    business.setdefault(ask.also.statement, []).append(ask.also.values)
            payload = {"querier": tenant, "request_id": ask.request_id, "fugo": fugo, "provider": q["provider"],
                       "affair": q["affair"], "info": q["info"], "wait": ask.wait}  # fmt: skip
            ready.append((i, payload, q))
        if fresh:
            ids = {(t, rid): qid for qid, t, rid in s.execute(_INSERT_QUERIES, fresh)}
            for q in fresh:
                q["id"] = ids[(q["tenant"], q["request_id"])]
        for statement, rows in business.items():
            s.execute(statement, rows)
        for i, payload, q in ready:
            out[i] = (int(q["id"]), payload, q)
        return [o if o is not None else BusinessError("not processed") for o in out]

    @contextmanager
    def _sending(self, *qids: int) -> Iterator[None]:
        """The queries are being sent by a request right now: the sweep leaves them alone."""
        with self._in_flight_lock:
            self._in_flight.update(qids)
        try:
            yield
        finally:
            with self._in_flight_lock:
                self._in_flight.difference_update(qids)

    def _payload(self, s: Session, q: OutgoingQuery, wait: bool) -> dict[str, Any] | None:
        if q.status != "unsent":
            return None
        link = s.get(FugoLink, (q.tenant, q.integrated_number))
        if link is None:
            raise Conflict("this person has no 符号 at this intermediate server")
        return {"querier": q.tenant, "request_id": q.request_id, "fugo": link.fugo, "provider": q.provider,
                "affair": q.affair, "info": q.info, "wait": wait}  # fmt: skip

    def _send(
        self, qid: int, wait: bool, payload: dict[str, Any] | None = None, known: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        if payload is None:
            with writing(self.db) as s:
                q = s.get(OutgoingQuery, qid)
                assert q is not None
                payload = self._payload(s, q, wait)
                if payload is None:
                    return self._view(q)
        try:
            state = self.call(self.network, "POST", QUERIES_PATH, payload)
        except (Unreachable, RemoteError) as exc:
            return self._not_sent(qid, exc)
        return self._apply(qid, state, known)

    def _not_sent(self, qid: int, exc: Unreachable | RemoteError) -> dict[str, Any]:
        """The network was not reached, failed (retried later), or refused to open the query."""
        with writing(self.db) as s:
            q = s.get(OutgoingQuery, qid)
            assert q is not None
            if isinstance(exc, Unreachable):
                q.reason = f"the network could not be reached; will retry ({exc})"[:400]
            elif exc.status >= 500:
                q.reason = f"the network failed; will retry ({exc.status})"
            else:  # the network refuses to open it at all (bad request)
                q.status, q.reason = "failed", str(exc.detail)[:400]
            return self._view(q)

    def _apply(self, qid: int, state: dict[str, Any], known: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write what the network said about a query: status, answer and the querier's record."""
        return only(self._apply_many([(qid, state, known)]))

    def _apply_many(
        self, said: list[tuple[int, dict[str, Any], dict[str, Any] | None]]
    ) -> list[dict[str, Any] | Exception]:
        """``_apply`` for several queries in one transaction (each alone should that one fail)."""

        def apply_all(part: list[tuple[int, dict[str, Any], dict[str, Any] | None]]) -> list[dict[str, Any]]:
            with writing_core(self.db) as s:
                return self._apply_all(s, part)

        return together_or_alone(said, apply_all, "answers") if said else []

    def _apply_all(
        self, s: Connection, said: list[tuple[int, dict[str, Any], dict[str, Any] | None]]
    ) -> list[dict[str, Any]]:
        """Each query's new state, its querier's record (made or brought up to date), and the
        business system's rows (``result_hooks``), in ``s``'s transaction, one statement per kind."""
        missing = [qid for qid, _, known in said if known is None]
        rows = (
            {r.id: dict(r._mapping) for r in s.execute(_QUERIES_BY_ID, {"ids": missing})} if missing else {}
        )
        updated: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        for qid, state, known in said:
            q = dict(known if known is not None else rows[qid])
            q["exchange_id"] = state["exchange_id"]
            q["requested_at"] = parse_iso(state.get("requested_at"))
            q["status"] = state["status"]
            q["reason"] = str(state.get("reason") or "")[:400]
            if state.get("answer") is not None:
                q["answer"] = state["answer"]
            if q["status"] in FINAL and q.get("answered_at") is None:
                q["answered_at"] = now()
            q["_provided"] = parse_iso(state.get("provided_at"))
            updated.append(q)
            changes.append(
                {"qid": qid, "p_exchange_id": q["exchange_id"], "p_requested_at": q["requested_at"],
                 "p_status": q["status"], "p_reason": q["reason"], "p_answer": q.get("answer"),
                 "p_answered_at": q.get("answered_at")}
            )  # fmt: skip
        s.execute(_UPDATE_QUERY, changes)
        records: dict[tuple[str, str], int] = {}
        for tenant in {q["tenant"] for q in updated}:
            ids = [q["exchange_id"] for q in updated if q["tenant"] == tenant]
            for rec, ex in s.execute(_QUERIER_RECORDS, {"tenant": tenant, "ids": ids}):
                records[(tenant, ex)] = rec
        new_records: list[dict[str, Any]] = []
        record_changes: list[dict[str, Any]] = []
        for q in updated:
            outcome = OUTCOME.get(q["status"], "pending")
            answer = q.get("answer")
            if q["status"] == "answered" and answer and not answer.get("payload", {}).get("held"):
                outcome = "not_held"
            rec = records.get((q["tenant"], q["exchange_id"]))
            if rec is None:
                requested = q["requested_at"] or q["created_at"]
                new_records.append(
                    {"tenant": q["tenant"], "role": "querier", "exchange_id": q["exchange_id"], "querier": q["tenant"],
                     "provider": q["provider"], "affair": q["affair"], "info": q["info"],
                     "integrated_number": q["integrated_number"], "requested_at": requested,
                     "provided_at": q["_provided"], "outcome": outcome, "reason": q["reason"], "nondisclosure": False,
                     "retain_until": requested + self.retention}
                )  # fmt: skip
            else:
                record_changes.append(
                    {
                        "rec": rec,
                        "p_outcome": outcome,
                        "p_provided_at": q["_provided"],
                        "p_reason": q["reason"],
                    }
                )
        if new_records:
            s.execute(_INSERT_RECORD, new_records)
        if record_changes:
            s.execute(_UPDATE_RECORD, record_changes)
        views = [(q["tenant"], self._view(q)) for q in updated]
        for hook in self.result_hooks:
            hook(s, views)
        return [view for _, view in views]

    def result(
        self, tenant: str, exchange_id: str | None = None, request_id: str | None = None
    ) -> dict[str, Any]:
        """結果取得要求: the tenant's query as it stands, collecting it from the network if needed."""
        tenant = self._tenant(tenant)
        with writing(self.db) as s:
            cond = (
                (OutgoingQuery.exchange_id == exchange_id)
                if exchange_id
                else (OutgoingQuery.request_id == request_id)
            )
            q = s.scalar(select(OutgoingQuery).where(OutgoingQuery.tenant == tenant, cond))
            if q is None:
                raise NotFound("this organisation sent no query with this 処理通番")
            qid, status, ex_id = q.id, q.status, q.exchange_id
            if status in FINAL:
                return self._view(q)
        if status == "unsent":
            return self._send(qid, wait=False)
        try:
            state = self.call(
                self.network, "POST", "/api/if/results", {"querier": tenant, "exchange_id": ex_id}
            )
        except (Unreachable, RemoteError):
            with writing(self.db) as s:
                q = s.get(OutgoingQuery, qid)
                assert q is not None
                return self._view(q)
        return self._apply(qid, state)

    def pending(self, tenant: str) -> list[dict[str, Any]]:
        tenant = self._tenant(tenant)
        with writing(self.db) as s:
            return [
                self._view(q)
                for q in s.scalars(
                    select(OutgoingQuery)
                    .where(OutgoingQuery.tenant == tenant, OutgoingQuery.status.in_(WAITING))
                    .order_by(OutgoingQuery.id)
                )
            ]

    def _view(self, q: Any) -> dict[str, Any]:
        """A query's state for its tenant, from the row (or a mapping of its columns)."""
        get = q.get if isinstance(q, dict) else (lambda k: getattr(q, k))
        return {
            "request_id": get("request_id"),
            "exchange_id": get("exchange_id"),
            "status": get("status"),
            "reason": get("reason"),
            "provider": get("provider"),
            "affair": get("affair"),
            "info": get("info"),
            "integrated_number": get("integrated_number"),
            "requested_at": iso(get("requested_at")),
            "answer": get("answer"),
        }

    # --- 情報提供 (TKY) -------------------------------------------------------------------------
    def provide(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Answer a query the network delivered, from the tenant's 副本: a signed document.

        The same 処理通番 delivered again (the network retrying after a lost answer) gets the same
        document; the provider's record is written once, with the provision, in one transaction.
        """
        return only(self.provide_many([payload]))

    def provide_many(self, payloads: list[dict[str, Any]]) -> list[dict[str, Any] | BaseException]:
        """``provide`` for queries the network delivered together (``/api/if/provide/batch``): one
        transaction for all (each alone should that one fail); a query this server cannot answer
        (another server's tenant, a querier's unusable certificate) is that query's outcome only."""

        def provisions(part: list[dict[str, Any]]) -> list[dict[str, Any] | BusinessError]:
            with writing_core(self.db) as s:
                return self._provisions(s, part)

        outcomes: list[dict[str, Any] | BaseException] = list(
            together_or_alone(payloads, provisions, "provisions")
        )
        if os.environ.get(FAILPOINT) == "crash_after_provide":
            os._exit(9)  # the provision is committed; the answer never leaves (a crash mid-exchange)
        return outcomes

    def _provisions(
        self, s: Connection, payloads: list[dict[str, Any]]
    ) -> list[dict[str, Any] | BusinessError]:
        """Provisions in ``s``'s transaction: for each query its signed document and the provider's
        record (the document made before for a 処理通番 delivered again).  A BusinessError is that
        query's outcome, with nothing of it written."""
        out: list[dict[str, Any] | BusinessError | int] = []  # an int: the index of a body to sign
        facts = self._facts(s, payloads)
        bodies: list[dict[str, Any]] = []
        provisions: list[dict[str, Any]] = []
        records: list[dict[str, Any]] = []
        made: dict[tuple[str, str], int] = {}  # delivered twice in one batch: made once
        to_seal: _ToSeal = {}
        for payload in payloads:
            exchange_id = str(payload["exchange_id"])
            category = str(payload["info"])
            try:
                tenant = self._tenant(str(payload["tenant"]))
            except BusinessError as exc:
                out.append(exc)
                continue
            done = facts.done.get((tenant, exchange_id))
            if done is not None:
                out.append(dict(done))
                continue
            if (tenant, exchange_id) in made:
                out.append(made[(tenant, exchange_id)])
                continue
            number = facts.numbers.get((tenant, str(payload["fugo"])))
            copy = facts.copies.get((tenant, category, number)) if number is not None else None
            t = now()
            body: dict[str, Any] = {
                "exchange_id": exchange_id,
                "querier_org": payload["querier"],
                "querier": self.public_ids.get(str(payload["querier"]), str(payload["querier"])),
                "provider_org": tenant,
                "provider": self.public_ids.get(tenant, tenant),
                "affair": payload["affair"],
                "info": category,
                "requested_at": payload["requested_at"],
                "provided_at": iso(t),
                "held": copy is not None,
            }
            if copy is not None:
                version, data, as_of = copy
                confirmed = facts.confirmed(tenant, category)
                if confirmed is not None:
                    as_of = max(as_of, confirmed)
                body.update(layout=f"{category}/{version}", layout_version=version, as_of=iso(as_of))
                try:
                    recipient = self._recipient(str(payload["querier"]))
                except BusinessError as exc:
                    out.append(exc)
                    continue
                if recipient is None:  # a querier with no encryption certificate: in clear
                    body["data"] = data
                else:
                    to_seal.setdefault(str(payload["querier"]), (recipient, []))[1].append((body, data))
            else:
                body.update(as_of=iso(t), data=None)
            requested = parse_iso(str(payload["requested_at"])) or t
            provisions.append(
                {"tenant": tenant, "exchange_id": exchange_id, "integrated_number": number, "provided_at": t}
            )  # fmt: skip
            records.append(
                {"tenant": tenant, "role": "provider", "exchange_id": exchange_id, "querier": str(payload["querier"]),
                 "provider": tenant, "affair": str(payload["affair"]), "info": category, "integrated_number": number,
                 "requested_at": requested, "provided_at": t if copy is not None else None,
                 "outcome": "provided" if copy is not None else "not_held", "reason": "", "nondisclosure": False,
                 "retain_until": requested + self.retention}
            )  # fmt: skip
            made[(tenant, exchange_id)] = len(bodies)
            out.append(len(bodies))
            bodies.append(body)
        self._seal(to_seal)
        # one signature for the batch's answers (common.documents: batch form), each still a
        # document of its own that its querier can verify alone, now or later
        docs = sign_documents(self.creds, ANSWER_KIND, bodies)
        for provision, doc in zip(provisions, docs, strict=True):
            provision["document"] = doc
        if provisions:
            s.execute(_INSERT_PROVISION, provisions)
            s.execute(_INSERT_RECORD, records)
        return [dict(docs[o]) if isinstance(o, int) else o for o in out]

    def _facts(self, s: Connection, payloads: list[dict[str, Any]]) -> _Facts:
        """What a batch of provisions reads, one statement per kind and tenant."""
        facts = _Facts(s)
        by_tenant: dict[str, list[dict[str, Any]]] = {}
        for p in payloads:
            if str(p["tenant"]) in self.tenants:
                by_tenant.setdefault(str(p["tenant"]), []).append(p)
        for tenant, mine in by_tenant.items():
            ids = list({str(p["exchange_id"]) for p in mine})
            for ex, doc in s.execute(_PROVISION_DOCS, {"tenant": tenant, "ids": ids}):
                facts.done[(tenant, ex)] = doc
            fugos = list({str(p["fugo"]) for p in mine})
            for fugo, number in s.execute(_PERSONS_OF_FUGO, {"tenant": tenant, "fugos": fugos}):
                facts.numbers[(tenant, fugo)] = number
            for category in {str(p["info"]) for p in mine}:
                nums = list({facts.numbers[(tenant, str(p["fugo"]))] for p in mine
                             if str(p["info"]) == category and (tenant, str(p["fugo"])) in facts.numbers})  # fmt: skip
                if nums and self.live is not None:
                    for num, copy in self.live(tenant, category, nums).items():
                        facts.copies[(tenant, category, num)] = copy
                elif nums:
                    for num, version, data, as_of in s.execute(
                        _COPIES, {"tenant": tenant, "cat": category, "nums": nums}
                    ):
                        facts.copies[(tenant, category, num)] = (version, data, as_of)
        return facts

    def _recipient(self, querier: str) -> ec.EllipticCurvePublicKey | None:
        """The querier's encryption key (from its encryption certificate, read again every
        ``RECIPIENT_SECONDS``: a rotated key is taken up without a restart), or None for a querier
        that has none (its answers carry the information in clear)."""
        held = self._recipients.get(querier)
        if held is not None and time.monotonic() - held.read_at < RECIPIENT_SECONDS:
            return held.key
        try:
            key = self._sealing_key(querier) if self._sealing_key else None
        except (CertificateError, TopologyError) as exc:
            if held is not None and held.key is not None:  # keep to the key it had; read again later
                log.warning("%s's encryption certificate could not be read again: %s", querier, exc)
                self._recipients[querier] = held._replace(read_at=time.monotonic())
                return held.key
            # never fall back to clear: the network retries later
            raise Conflict(f"the querier's encryption certificate cannot be used: {exc}") from None
        self._recipients[querier] = _Recipient(key, key_id(querier, key) if key else "", time.monotonic())
        return key

    def _seal(self, to_seal: _ToSeal) -> None:
        """The provided information as the answers carry it, sealed to each querier (only the
        querier opens it; the network keeps ciphertext): alone, or — several answers to one
        querier — with one key agreement for them all (``Sealer.seal_batch``)."""
        for querier, (recipient, items) in to_seal.items():
            kid = self._recipients[querier].kid
            if len(items) == 1:
                body, data = items[0]
                body.update(sealed_data=self._sealer.seal(data, recipient, kid), sealed_for=querier)
                continue
            key, tokens = self._sealer.seal_batch([data for _, data in items], recipient, kid)
            for (body, _), token in zip(items, tokens, strict=True):
                body.update(sealed_data=token, sealed_for=querier, sealed_key=key)

    # --- 情報提供等記録 (TKM) ----------------------------------------------------------------------
    def records(
        self, tenant: str, integrated_number: str | None = None, exchange_id: str | None = None
    ) -> list[dict[str, Any]]:
        tenant = self._tenant(tenant)
        q = select(ProvisionRecord).where(ProvisionRecord.tenant == tenant)
        if integrated_number:
            q = q.where(ProvisionRecord.integrated_number == integrated_number)
        if exchange_id:
            q = q.where(ProvisionRecord.exchange_id == exchange_id)
        with writing(self.db) as s:
            return [
                {
                    "role": r.role,
                    "exchange_id": r.exchange_id,
                    "querier": self.public_ids.get(r.querier, r.querier),
                    "provider": self.public_ids.get(r.provider, r.provider),
                    "affair": r.affair,
                    "info": r.info,
                    "requested_at": iso(r.requested_at),
                    "provided_at": iso(r.provided_at),
                    "outcome": r.outcome,
                    "reason": r.reason,
                    "nondisclosure": r.nondisclosure,
                    "retain_until": iso(r.retain_until),
                }
                for r in s.scalars(q.order_by(ProvisionRecord.id))
            ]

    def purge(self, at: dt.datetime | None = None) -> int:
        """Delete provision records past their retention period (施行令30条: 7 years by default)."""
        with writing(self.db) as s:
            return _rows(
                s.execute(delete(ProvisionRecord).where(ProvisionRecord.retain_until < (at or now())))
            )

    # --- worker: resend unsent queries, collect pending answers --------------------------------
    def sweep(self) -> int:
        # A read: without the write lock, which the event loop's transactions wait for (this one
        # held it 7–21 ms every 2 s at 1,100 exchanges/s); by tenant and status, the index's order
        # (by status alone it read the whole table, answers and all, and took longer as it grew).
        with self.db.transaction() as s:
            rows = list(
                s.execute(
                    select(
                        OutgoingQuery.id,
                        OutgoingQuery.tenant,
                        OutgoingQuery.exchange_id,
                        OutgoingQuery.request_id,
                    )
                    .where(
                        OutgoingQuery.tenant.in_(sorted(self.tenants)),
                        OutgoingQuery.status.in_(WAITING),
                    )
                    .limit(200)
                )
            )
        for qid, tenant, ex_id, req_id in rows:
            if self._loop.stopping:
                break
            with self._in_flight_lock:
                if qid in self._in_flight:
                    continue
            try:
                self.result(tenant, exchange_id=ex_id, request_id=None if ex_id else req_id)
            except Exception:
                log.exception("collecting a pending answer failed")
        return len(rows)

    def _tick(self) -> None:
        if self._purge_due.due():  # hourly: records past their retention
            self.purge()
        self.sweep()

    def start(self, interval: float = 2.0) -> None:
        self._loop.interval = interval
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()


def _rows(result: Any) -> int:
    """Rows a DELETE or UPDATE touched."""
    return int(getattr(result, "rowcount", 0) or 0)
