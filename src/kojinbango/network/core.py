"""The network's core: 符号, authorisation against the legal table, 符号 translation, provision records.

Every decision about an exchange and its provision record (情報提供等記録, 番号法23条3項) are written
in one transaction: the exchange row and its leaf of the Merkle log commit together or not at all.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Table, bindparam, func, insert, null, select, update
from sqlalchemy.orm import Session

from kojinbango.common.batching import only, together_or_alone
from kojinbango.common.db import Database
from kojinbango.common.errors import BusinessError, NotFound, Unauthorised
from kojinbango.common.linkage import LinkageSettings, check_answer, iso, public_id, writing
from kojinbango.common.signing import TrustStore
from kojinbango.common.topology import Topology, TopologyError
from kojinbango.domain.clock import utc_now as now
from kojinbango.domain.identifiers import IdentifierError, validate_resident_code
from kojinbango.domain.jst import today_jst
from kojinbango.network.fugo import FugoCipher, FugoError
from kojinbango.network.legal import Decision, LegalTable
from kojinbango.network.log import Appender, MerkleLog
from kojinbango.network.models import Exchange, FugoIssuance, Person

log = logging.getLogger(__name__)

HOLDER_KINDS = ("municipality", "agency", "portal", "prefecture")
FINAL = ("answered", "not_held", "refused", "failed")

# The statements of the exchange path, built once (see bench/exchange.py).
_X: Table = Exchange.__table__  # type: ignore[assignment]
_FI: Table = FugoIssuance.__table__  # type: ignore[assignment]
# A batch's rows are read with one statement each (expanding IN), written with one executemany.
_FIND_EXCHANGES = select(_X).where(
    _X.c.querier == bindparam("querier"), _X.c.request_id.in_(bindparam("rids", expanding=True))
)
_EXCHANGES_BY_ID = select(_X).where(_X.c.exchange_id.in_(bindparam("ids", expanding=True)))
_HOLDS = select(_FI.c.person_id).where(
    _FI.c.holder == bindparam("holder"), _FI.c.person_id.in_(bindparam("persons", expanding=True))
)
_INSERT_EXCHANGE = insert(_X)
_UPDATE_EXCHANGE = (
    update(_X)
    .where(_X.c.exchange_id == bindparam("ex"))
    .values(
        status=bindparam("p_status"),
        reason=bindparam("p_reason"),
        provided_at=bindparam("p_provided_at"),
        answer=bindparam("p_answer", type_=_X.c.answer.type),
        attempts=bindparam("p_attempts"),
        next_attempt_at=bindparam("p_next"),
        collected_at=bindparam("p_collected_at"),
        log_index=bindparam("p_log_index"),
    )
)
MAX_FUGO_ITEMS = 5000


def exchange_counts(s: Session) -> dict[str, int]:
    """How many exchanges are in each status."""
    return {
        st: int(n) for st, n in s.execute(select(Exchange.status, func.count()).group_by(Exchange.status))
    }


@dataclass(frozen=True)
class Asked:
    """A query as the IF received it from the querier's intermediate server."""

    querier: str
    request_id: str
    fugo: str
    provider: str
    affair: str
    info: str


@dataclass(frozen=True)
class Delivery:
    exchange_id: str
    provider: str
    receiver: str
    payload: dict[str, Any]


class NetworkCore:
    def __init__(
        self,
        db: Database,
        org_id: str,
        cipher: FugoCipher,
        table: LegalTable,
        merkle: MerkleLog,
        topology: Topology,
        trust: TrustStore,
        settings: LinkageSettings,
    ):
        self.db = db
        self.org_id = org_id
        self.cipher = cipher
        self.table = table
        self.log = merkle
        self.topology = topology
        self.trust = trust
        self.settings = settings
        self._serial_lock = threading.Lock()
        self._serial: tuple[str, int] | None = None

    # --- 符号 ------------------------------------------------------------------------------
    def issue_fugo(self, holder: str, items: list[dict[str, str]]) -> list[dict[str, str]]:
        """符号 for ``holder`` of each 住民票コード J-LIS relayed with the holder's 取得番号."""
        try:
            kind = self.topology.org(holder).kind
        except TopologyError:
            raise BusinessError("the holder is not an organisation of this deployment") from None
        if kind not in HOLDER_KINDS:
            raise BusinessError(f"a {kind} does not hold 符号")
        if len(items) > MAX_FUGO_ITEMS:
            raise BusinessError(f"at most {MAX_FUGO_ITEMS} persons per request")
        t = now()
        out: list[dict[str, str]] = []
        with writing(self.db) as s:
            digests = []
            for i, item in enumerate(items):
                try:
                    code = validate_resident_code(str(item.get("resident_code", "")))
                except IdentifierError as exc:
                    raise BusinessError(f"item {i + 1}: {exc}") from None
                digests.append(self.cipher.code_digest(code))
            known = {
                d: pid
                for d, pid in s.execute(
                    select(Person.code_digest, Person.id).where(Person.code_digest.in_(digests))
                )
            }
            for d in digests:
                if d not in known:
                    p = Person(code_digest=d, created_at=t)
                    s.add(p)
                    s.flush()
                    known[d] = p.id
            have = set(
                s.scalars(
                    select(FugoIssuance.person_id).where(
                        FugoIssuance.holder == holder, FugoIssuance.person_id.in_(list(known.values()))
                    )
                )
            )
            for item, d in zip(items, digests, strict=True):
                pid = known[d]
                if pid not in have:
                    s.add(FugoIssuance(holder=holder, person_id=pid, issued_at=t))
                    have.add(pid)
                out.append(
                    {
                        "acquisition_number": str(item["acquisition_number"]),
                        "fugo": self.cipher.make(pid, holder),
                    }
                )
        return out

    def person_of(self, fugo: str, holder: str) -> int:
        try:
            return self.cipher.open(fugo, holder)
        except FugoError as exc:
            raise BusinessError(str(exc)) from None

    # --- exchanges -------------------------------------------------------------------------
    def _exchange_id(self) -> str:
        """処理通番: EXyyyymmdd-nnnnnnnn, numbered per day in Japan (continues after a restart)."""
        day = today_jst().strftime("%Y%m%d")
        with self._serial_lock:
            if self._serial is None or self._serial[0] != day:
                with self.db.transaction() as s:
                    last = s.scalar(
                        select(func.max(Exchange.exchange_id)).where(Exchange.exchange_id.like(f"EX{day}-%"))
                    )
                start = int(last.rsplit("-", 1)[1]) if last else 0
                self._serial = (day, start)
            self._serial = (day, self._serial[1] + 1)
            return f"EX{day}-{self._serial[1]:08d}"

    def _kind(self, org_id: str) -> str:
        return self.topology.org(org_id).kind

    def _record(self, ex: Any, outcome: str) -> dict[str, Any]:
        row = next((r for r in self.table.rows() if r.id == ex.affair), None)
        return {
            "v": 1,
            "exchange_id": ex.exchange_id,
            "querier": public_id(self.topology, ex.querier),
            "querier_name": self.topology.org(ex.querier).name,
            "provider": public_id(self.topology, ex.provider),
            "provider_name": self.topology.org(ex.provider).name,
            "affair": ex.affair,
            "affair_name": row.affair if row else "",
            "info": ex.info,
            "requested_at": iso(ex.requested_at),
            "provided_at": iso(ex.provided_at),
            "outcome": outcome,
            "reason": ex.reason,
            "nondisclosure": False,
        }

    def _conclude(self, appender: Appender, ex: Any, status: str, outcome: str) -> None:
        ex.status = status
        ex.next_attempt_at = None
        ex.log_index = appender.append(self._record(ex, outcome), ex.person_id)

    def accept(
        self,
        querier: str,
        request_id: str,
        querier_fugo: str,
        provider: str,
        affair: str,
        info: str,
    ) -> dict[str, Any]:
        """A query arrives through the IF: authorise, translate, and open the exchange."""
        return only(self.accept_many([Asked(querier, request_id, querier_fugo, provider, affair, info)]))

    def accept_many(self, asks: list[Asked]) -> list[dict[str, Any] | BaseException]:
        """``accept`` for queries that arrived together: each checked on its own (a refusal is that
        query's outcome), then every exchange opened in one transaction with its provision record
        where the exchange ends here.  Should that transaction fail, each is tried alone."""
        outcomes: list[dict[str, Any] | BaseException] = [BusinessError("not processed")] * len(asks)
        checked: list[tuple[int, Asked, int, Decision]] = []
        for i, ask in enumerate(asks):
            try:
                checked.append((i, ask, *self._check(ask)))
            except BusinessError as exc:
                outcomes[i] = exc
        if not checked:
            return outcomes

        def open_all(part: list[tuple[Asked, int, Decision]]) -> list[dict[str, Any]]:
            with self.log.core_transaction() as a:
                return self._open_all(a, part)

        parts = [(ask, person, decision) for _, ask, person, decision in checked]
        opened = together_or_alone(parts, open_all, "queries")
        for (i, *_), state in zip(checked, opened, strict=True):
            outcomes[i] = state
        return outcomes

    def _check(self, ask: Asked) -> tuple[int, Decision]:
        """The person behind the querier's 符号 and the legal table's decision (BusinessError for a
        query that cannot even be opened)."""
        try:
            provider_kind = self._kind(ask.provider)
        except TopologyError:
            raise BusinessError("the provider is not an organisation of this deployment") from None
        person = self.person_of(ask.fugo, ask.querier)
        decision = self.table.authorise(
            self._kind(ask.querier), ask.querier, provider_kind, ask.provider, ask.affair, ask.info
        )
        return person, decision

    def _open_all(self, a: Appender, checked: list[tuple[Asked, int, Decision]]) -> list[dict[str, Any]]:
        """Open each exchange in ``a``'s transaction (a request id seen before: the exchange it
        opened) and — where it ends here (refused, or the provider holds no 符号 for this person) —
        its provision record in the log."""
        s = a.session
        known: dict[tuple[str, str], dict[str, Any]] = {}
        for querier in {ask.querier for ask, _, _ in checked}:
            rids = [ask.request_id for ask, _, _ in checked if ask.querier == querier]
            for row in s.execute(_FIND_EXCHANGES, {"querier": querier, "rids": rids}):
                known[(querier, row.request_id)] = self.state(SimpleNamespace(**row._mapping))
        holds: set[tuple[str, int]] = set()
        for provider in {ask.provider for ask, _, decision in checked if decision.allowed}:
            persons = list({p for ask, p, _ in checked if ask.provider == provider})
            holds.update((provider, p) for p in s.scalars(_HOLDS, {"holder": provider, "persons": persons}))
        out: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        for ask, person, decision in checked:
            key = (ask.querier, ask.request_id)
            if key in known:  # opened before, or earlier in this batch: never delivered twice
                out.append({k: v for k, v in known[key].items() if k != "_delivery"})
                continue
            t = now()
            ex = SimpleNamespace(
                exchange_id=self._exchange_id(),
                request_id=ask.request_id,
                querier=ask.querier,
                provider=ask.provider,
                affair=ask.affair,
                info=ask.info,
                person_id=person,
                status="pending",
                reason="",
                requested_at=t,
                provided_at=None,
                attempts=0,
                next_attempt_at=t + dt.timedelta(seconds=self.settings.sync_wait_seconds + 5),
                last_error="",
                answer=None,
                collected_at=None,
                log_index=None,
            )
            if not decision.allowed:
                ex.reason = f"refused by the legal table: {decision.reason}"
                self._conclude(a, ex, "refused", "refused")
                log.info("exchange %s refused: %s", ex.exchange_id, decision.reason)
            elif (ask.provider, person) not in holds:
                ex.reason = "the provider holds no 符号 for this person (該当なし)"
                self._conclude(a, ex, "not_held", "not_held")
            rows.append(vars(ex))
            state = self.state(ex)
            if ex.status == "pending":
                state["_delivery"] = self._delivery(ex)
            known[key] = state
            out.append(state)
        if rows:
            s.execute(_INSERT_EXCHANGE, rows)
        return out

    def _delivery(self, ex: Any) -> Delivery:
        assert ex.person_id is not None
        payload = {
            "exchange_id": ex.exchange_id,
            "tenant": ex.provider,
            "fugo": self.cipher.make(ex.person_id, ex.provider),
            "querier": ex.querier,
            "querier_name": self.topology.org(ex.querier).name,
            "affair": ex.affair,
            "info": ex.info,
            "requested_at": iso(ex.requested_at),
        }
        return Delivery(ex.exchange_id, ex.provider, self.settings.receiver(ex.provider), payload)

    def delivery(self, exchange_id: str) -> Delivery | None:
        """What the IF sends to the provider's intermediate server (None once the exchange ended)."""
        with self.db.transaction() as s:
            ex = s.get(Exchange, exchange_id)
            if ex is None or ex.status != "pending" or ex.person_id is None:
                return None
            return self._delivery(ex)

    def complete(self, d: Delivery, doc: dict[str, Any], collected: bool = False) -> dict[str, Any] | None:
        """The provider answered: check its signed document, record the provision, keep the answer.

        Returns the exchange's state, or None when the answer was rejected (the delivery is retried).
        ``collected``: the querier is waiting for this very answer (the synchronous path).
        """
        return self.complete_many([(d, doc)], collected)[0]

    def complete_many(
        self, answered: list[tuple[Delivery, dict[str, Any]]], collected: bool = False
    ) -> list[dict[str, Any] | None]:
        """``complete`` for answers that came back together: each checked on its own, the provisions
        recorded in one transaction (each alone should that one fail)."""
        out: list[dict[str, Any] | None] = [None] * len(answered)
        good: list[tuple[int, Delivery, dict[str, Any], dict[str, Any]]] = []
        for i, (d, doc) in enumerate(answered):
            check = check_answer(doc, self.trust, self.settings, d.exchange_id, d.provider)
            if (
                not check.valid
                or check.payload.get("querier_org") != d.payload["querier"]
                or check.payload.get("info") != d.payload["info"]
            ):
                reason = check.reason or "it answers another query"
                self.attempt_failed(d.exchange_id, f"answer rejected: {reason}")
            else:
                good.append((i, d, doc, check.payload))
        if not good:
            return out

        def provided(part: list[tuple[Delivery, dict[str, Any], dict[str, Any]]]) -> list[dict[str, Any]]:
            with self.log.core_transaction() as a:
                return self._provided(a, part, collected)

        states = together_or_alone([(d, doc, payload) for _, d, doc, payload in good], provided, "answers")
        for (i, *_), state in zip(good, states, strict=True):
            if isinstance(state, Exception):  # left pending: the retry worker delivers it again
                log.error("recording an answer failed", exc_info=state)
            else:
                out[i] = state
        return out

    def _provided(
        self, a: Appender, answers: list[tuple[Delivery, dict[str, Any], dict[str, Any]]], collected: bool
    ) -> list[dict[str, Any]]:
        """Record checked answers in ``a``'s transaction (each once: a late duplicate changes nothing)."""
        ids = [d.exchange_id for d, _, _ in answers]
        rows = {r.exchange_id: r for r in a.session.execute(_EXCHANGES_BY_ID, {"ids": ids})}
        out: list[dict[str, Any]] = []
        updates: dict[str, dict[str, Any]] = {}
        current: dict[str, Any] = {}  # an exchange answered twice in one batch: the first answer counts
        for d, doc, payload in answers:
            if d.exchange_id not in current:
                if d.exchange_id not in rows:
                    raise NotFound("no exchange with this 処理通番")
                current[d.exchange_id] = SimpleNamespace(**rows[d.exchange_id]._mapping)
            ex = current[d.exchange_id]
            held = bool(payload.get("held"))
            if ex.status == "pending":
                provided = dt.datetime.fromisoformat(str(payload["provided_at"]).rstrip("Z"))
                ex.provided_at = provided if held else None
                ex.answer = doc
                ex.attempts += 1
                if not held:
                    ex.reason = "the provider holds no such information for this person (該当なし)"
                self._conclude(a, ex, "answered" if held else "not_held", "provided" if held else "not_held")
            if collected and ex.collected_at is None:
                ex.collected_at = now()
            updates[ex.exchange_id] = {
                "ex": ex.exchange_id, "p_status": ex.status, "p_reason": ex.reason, "p_provided_at": ex.provided_at,
                "p_answer": ex.answer, "p_attempts": ex.attempts, "p_next": ex.next_attempt_at,
                "p_collected_at": ex.collected_at, "p_log_index": ex.log_index,
            }  # fmt: skip
            out.append(self.state(ex))
        a.session.execute(_UPDATE_EXCHANGE, list(updates.values()))
        return out

    def attempt_failed(self, exchange_id: str, error: str) -> None:
        """Delivery failed: try again later with backoff; give up (and record it) after a long while."""
        with self.log.transaction() as a:
            assert isinstance(a.session, Session)
            ex = a.session.get(Exchange, exchange_id)
            if ex is None or ex.status != "pending":
                return
            ex.attempts += 1
            ex.last_error = error[:400]
            give_up = ex.requested_at + dt.timedelta(hours=self.settings.retry_give_up_hours)
            if now() >= give_up:
                ex.reason = f"the provider could not be reached: {ex.last_error}"
                self._conclude(a, ex, "failed", "failed")
                return
            delay = min(self.settings.retry_max_seconds, 0.5 * 2 ** min(ex.attempts, 10))
            ex.next_attempt_at = now() + dt.timedelta(seconds=delay)

    def due(self, limit: int = 50) -> list[str]:
        with self.db.transaction() as s:
            return list(
                s.scalars(
                    select(Exchange.exchange_id)
                    .where(Exchange.status == "pending", Exchange.next_attempt_at <= now())
                    .order_by(Exchange.next_attempt_at)
                    .limit(limit)
                )
            )

    def lease(self, exchange_id: str, seconds: float) -> None:
        with writing(self.db) as s:
            s.execute(
                update(Exchange)
                .where(Exchange.exchange_id == exchange_id, Exchange.status == "pending")
                .values(next_attempt_at=now() + dt.timedelta(seconds=seconds))
            )

    def state(self, ex: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "exchange_id": ex.exchange_id,
            "status": ex.status,
            "reason": ex.reason,
            "querier": ex.querier,
            "provider": ex.provider,
            "affair": ex.affair,
            "info": ex.info,
            "requested_at": iso(ex.requested_at),
            "provided_at": iso(ex.provided_at),
            "attempts": ex.attempts,
            "last_error": ex.last_error,
            "log_index": ex.log_index,
        }
        if ex.answer is not None:
            out["answer"] = ex.answer
        return out

    def result(self, querier: str, exchange_id: str) -> dict[str, Any]:
        """結果取得要求: the querier collects the state (and the answer, once there is one)."""
        with writing(self.db) as s:
            ex = s.get(Exchange, exchange_id)
            if ex is None or ex.querier != querier:
                raise NotFound("no exchange with this 処理通番 for this querier")
            if ex.status in FINAL and ex.collected_at is None:
                ex.collected_at = now()
            return self.state(ex)

    def purge_answers(self, at: dt.datetime | None = None) -> int:
        """Erase the answer documents the network has held ``answer_retention_days`` since the
        querier collected them (or, never collected, since the request): the network only relays
        information; the exchange row and its provision record stay."""
        cutoff = (at or now()) - dt.timedelta(days=self.settings.answer_retention_days)
        with writing(self.db) as s:
            result = s.execute(
                update(Exchange)
                .where(
                    Exchange.answer.is_not(None),
                    Exchange.status.in_(("answered", "not_held")),
                    func.coalesce(Exchange.collected_at, Exchange.requested_at) < cutoff,
                )
                .values(answer=null())  # SQL NULL (None would be stored as JSON null)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def counts(self) -> dict[str, int]:
        with self.db.transaction() as s:
            return exchange_counts(s)

    # --- the resident's records (マイナポータル) ------------------------------------------------
    def records_for(self, holder: str, fugo: str, known_size: int | None) -> dict[str, Any]:
        """Every provision record about the person behind the portal's 符号, with inclusion proofs
        against a signed tree head and a consistency proof from the head the portal saw before."""
        if self._kind(holder) != "portal":
            raise Unauthorised("only the portal shows a resident their records")
        person = self.person_of(fugo, holder)
        head = self.log.tree_head()
        if head is None:
            return {"tree_head": None, "records": [], "consistency": [], "log_problems": []}
        size = int(head["payload"]["tree_size"])
        tree, problems = self.log.tree(size)
        entries = self.log.entries_of(person, size)
        found, misfiled = self.log.check_entries(entries, person)
        problems += found
        records = []
        for seq, text in entries:
            rec = {
                "index": seq,
                "leaf": text,
                "proof": [h.hex() for h in tree.inclusion_proof(seq, size)],
                # the record commits to this person (its index column could have been changed)
                "filed_correctly": seq not in misfiled,
            }
            if text is None:  # erased after its retention period: its hash still proves it was there
                rec["leaf_hash"] = tree.levels[0][seq].hex()
            records.append(rec)
        consistency: list[str] = []
        old_head = None
        if known_size and 0 < known_size < size:
            consistency = [h.hex() for h in tree.consistency_proof(known_size, size)]
            old_head = self.log.head_at(known_size)
        return {
            "tree_head": head,
            "records": records,
            # the newest record of this person the log knows of: the list must end with it
            "chain_head": self.log.chain_head(person, size),
            "consistency_from": known_size if consistency else None,
            "consistency": consistency,
            "old_head": old_head,
            "log_problems": problems[:5],
        }
