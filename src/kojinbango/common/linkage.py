"""What every party of information linkage (情報連携) agrees on: settings, public ids, answer documents.

* Settings live in the topology (``settings.linkage``): where the legal table file is, which
  intermediate server receives for which organisation (共同設置: one server, many tenants), how
  each municipality refreshes each category, the retention of provision records and of the
  お知らせ texts the network holds.
* Organisations are shown by their public id: a municipality by its 地方公共団体コード, anyone else
  by its organisation id (``nenkin``).
* The provider's answer is a signed document (論点7) of kind ``linkage_answer``, signed by the
  intermediate server that answers for the provider; anyone holding the deployment's certificates
  can check it later.  The information in it is sealed to the querier's encryption certificate
  (``sealed_data``, a JWE: ``common.sealing``; with ``sealed_key``, its batch's key sealed the same
  way), so only the querier reads it; the rest (who, what, when, held or not) stays readable for
  the network's records.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from kojinbango.common.db import Database, DbNonceStore
from kojinbango.common.documents import verify_document
from kojinbango.common.errors import BusinessError
from kojinbango.common.sealing import Opener, SealError
from kojinbango.common.signing import SignatureError, TrustStore
from kojinbango.common.topology import Topology, TopologyError

ANSWER_KIND = "linkage_answer"
TREE_HEAD_KIND = "tree_head"
REFRESH_MODES = ("on_change", "nightly")
DEFAULT_REFRESH = {
    "地方税関係情報": "nightly",
    "住民票関係情報": "on_change",
    "児童手当関係情報": "on_change",
}


def iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.isoformat(timespec="milliseconds") + "Z"


def parse_iso(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.rstrip("Z")).replace(tzinfo=None)


@dataclass
class LinkageSettings:
    legal_table: str = "linkage/legal-table.json"
    intermediate_of: dict[str, str] = field(default_factory=dict)
    refresh: dict[str, dict[str, str]] = field(default_factory=dict)
    nightly_at: str = "02:00"
    on_change_seconds: float = 5.0
    retention_years: int = 7
    notice_retention_days: int = 365  # お知らせ texts at the network (the rows stay, the text goes)
    # answers (sealed documents) at the network, counted from their collection (or, never collected,
    # from the request): the querier keeps its own copy; the exchange and its record stay
    answer_retention_days: float = 7.0
    sync_wait_seconds: float = 5.0
    retry_max_seconds: float = 60.0
    retry_give_up_hours: float = 72.0
    worker_threads: int = int(os.environ.get("KOJINBANGO_LINKAGE_THREADS", "8"))
    # the exchange path's hops batch what arrives while this many batches are on their way
    # (common.batching); 1 sends strictly one batch at a time, which measured less CPU per exchange
    # and a lower p99 than 2 at every load on a two-core machine (docs/flows/3-3-linkage.md)
    batches_in_flight: int = int(os.environ.get("KOJINBANGO_BATCHES_IN_FLIGHT", "1"))

    @classmethod
    def of(cls, topology: Topology) -> LinkageSettings:
        raw = topology.settings.get("linkage")
        if not isinstance(raw, dict):
            return cls()
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def receiver(self, org_id: str) -> str:
        """The intermediate server that receives queries and 符号 for ``org_id``."""
        try:
            return self.intermediate_of[org_id]
        except KeyError:
            raise TopologyError(
                f"{org_id} has no intermediate server in settings.linkage.intermediate_of"
            ) from None

    def tenants_of(self, intermediate: str) -> list[str]:
        return sorted(o for o, i in self.intermediate_of.items() if i == intermediate)

    def receives_itself(self, org_id: str) -> bool:
        """Whether ``org_id`` is its own receiver: an agency with its intermediate server in its own
        service, or a municipality in direct mode (論点2, compared in simulations: its business
        systems answer the network themselves, from the 正本, with no intermediate server)."""
        return self.intermediate_of.get(org_id) == org_id

    def refresh_mode(self, org_id: str, category: str) -> str:
        return self.refresh.get(org_id, {}).get(category, DEFAULT_REFRESH.get(category, "nightly"))

    def table_path(self, topology: Topology) -> Path:
        return topology.resolve(self.legal_table)


def linkage_database_url(municipality_url: str) -> str:
    """The database of a direct-mode municipality's linkage side (its 符号, queries and provision
    records; ``kojinbango.direct``), beside its own: ``X.db`` → ``X-linkage.db`` for SQLite,
    database ``name`` → ``name_linkage`` on a server (created by the operator, as every
    organisation's is)."""
    if municipality_url.startswith("sqlite:"):
        stem = municipality_url[:-3] if municipality_url.endswith(".db") else municipality_url
        return f"{stem}-linkage.db"
    base, _, rest = municipality_url.rpartition("/")
    name, sep, query = rest.partition("?")
    return f"{base}/{name}_linkage{sep}{query}"


def receiver_database_url(topology: Topology, receiver: str) -> str:
    """Where a receiver (intermediate server, agency, direct-mode municipality) keeps its 符号,
    queries and provision records."""
    url = topology.database_url(receiver)
    if topology.org(receiver).kind == "municipality":
        return linkage_database_url(url)
    return url


def public_id(topology: Topology, org_id: str) -> str:
    org = topology.org(org_id)
    return org.lg_code if org.kind == "municipality" and org.lg_code else org.id


def org_of_public_id(topology: Topology, ident: str) -> str:
    """An organisation id from a 地方公共団体コード or an organisation id; TopologyError otherwise."""
    ident = ident.strip()
    if ident in topology.organisations:
        return ident
    for o in topology.of_kind("municipality"):
        if o.lg_code == ident:
            return o.id
    known = sorted(
        [o.lg_code or o.id for o in topology.of_kind("municipality")]
        + [o.id for o in topology.of_kind("agency")]
    )
    raise TopologyError(f"no organisation {ident!r} in this deployment (known: {', '.join(known)})")


# --- the querier's side of a query (a municipality or a national agency) -------------------------
FINAL = ("answered", "not_held", "refused", "failed")
"""States of a query that no longer change."""
WAITING = ("unsent", "pending")
"""States of a query still waiting for its answer: not yet accepted by the network, or accepted and
not yet answered."""


def query_provider(topology: Topology, provider: str, info: str) -> str:
    """Check a query's information category and turn the provider's public id into its
    organisation id; BusinessError saying what is wrong otherwise."""
    from kojinbango.common.layouts import CATEGORIES

    if info not in CATEGORIES:
        raise BusinessError(f"unknown information category {info!r} (known: {', '.join(CATEGORIES)})")
    try:
        return org_of_public_id(topology, provider)
    except TopologyError as exc:
        raise BusinessError(str(exc)) from None


def wait_final(
    state: dict[str, Any], poll: Callable[[], dict[str, Any]], wait_seconds: float
) -> dict[str, Any]:
    """Poll a query's state until it is final or ``wait_seconds`` have passed (the synchronous
    convenience over the asynchronous 処理通番)."""
    deadline = time.monotonic() + wait_seconds
    while state["status"] not in FINAL and time.monotonic() < deadline:
        time.sleep(0.2)
        state = poll()
    return state


async def await_final(
    state: dict[str, Any], poll: Callable[[], dict[str, Any]], wait_seconds: float
) -> dict[str, Any]:
    """``wait_final`` for a handler on the event loop: a state not yet final is polled (blocking
    calls) on a thread."""
    if state["status"] in FINAL:
        return state
    return await asyncio.to_thread(wait_final, state, poll, wait_seconds)


def answer_view(
    topology: Topology,
    querier: str,
    provider: str,
    *,
    exchange_id: str | None,
    status: str,
    reason: str,
    affair: str,
    info: str,
    requested_at: dt.datetime | None,
    as_of: dt.datetime | None,
    document: dict[str, Any] | None,
    signature_valid: bool | None,
    data: Any,
) -> dict[str, Any]:
    """A query and its answer as the querier shows it (CLI, JSON interface): organisations by their
    public id; ``data``: the provided information, opened from the signed document."""
    payload = (document or {}).get("payload", {})
    return {
        "exchange_id": exchange_id,
        "status": status,
        "reason": reason,
        "querier": public_id(topology, querier),
        "provider": public_id(topology, provider),
        "affair": affair,
        "info": info,
        "requested_at": iso(requested_at),
        "provided_at": payload.get("provided_at"),
        "as_of": iso(as_of),
        "held": payload.get("held"),
        "layout": payload.get("layout"),
        "data": data,
        "signature_valid": signature_valid,
    }


class StoredAnswer(Protocol):
    """A querier's row of a query and its answer (the municipality's and the agency's alike)."""

    exchange_id: str | None
    status: str
    reason: str
    provider: str
    affair: str
    info: str
    requested_at: dt.datetime
    as_of: dt.datetime | None
    document: dict[str, Any] | None
    signature_valid: bool | None


_NOT_OPENED: Any = object()


def stored_answer_view(
    topology: Topology, querier: str, row: StoredAnswer, opener: Opener | None, opened: Any = _NOT_OPENED
) -> dict[str, Any]:
    """``answer_view`` of a stored row (its information opened with the querier's ``opener``, or
    ``opened``: what ``verify_answer`` already opened from this very document)."""
    data = None
    if opened is not _NOT_OPENED:
        data = opened if row.signature_valid else None
    elif row.document is not None and row.signature_valid:
        try:
            data = answer_data(row.document.get("payload", {}), opener)
        except SealError:
            data = None
    return answer_view(
        topology,
        querier,
        row.provider,
        exchange_id=row.exchange_id,
        status=row.status,
        reason=row.reason,
        affair=row.affair,
        info=row.info,
        requested_at=row.requested_at,
        as_of=row.as_of,
        document=row.document,
        signature_valid=row.signature_valid,
        data=data,
    )


@dataclass(frozen=True)
class AnswerCheck:
    valid: bool
    reason: str
    payload: dict[str, Any]


def check_answer(
    doc: dict[str, Any],
    trust: TrustStore,
    settings: LinkageSettings,
    exchange_id: str | None = None,
    provider: str | None = None,
) -> AnswerCheck:
    """Is ``doc`` a genuine answer of ``provider`` for 処理通番 ``exchange_id``?"""
    try:
        signer, payload = verify_document(doc, trust, ANSWER_KIND)
    except SignatureError as exc:
        return AnswerCheck(False, str(exc), {})
    said = str(payload.get("provider_org", ""))
    try:
        expected_signer = settings.receiver(said)
    except TopologyError:
        return AnswerCheck(False, "the answer names a provider without an intermediate server", payload)
    if signer != expected_signer:
        return AnswerCheck(False, "the answer is not signed by the provider's intermediate server", payload)
    if provider is not None and said != provider:
        return AnswerCheck(False, "the answer comes from another provider", payload)
    if exchange_id is not None and payload.get("exchange_id") != exchange_id:
        return AnswerCheck(False, "the answer belongs to another 処理通番", payload)
    return AnswerCheck(True, "", payload)


def answer_data(payload: dict[str, Any], opener: Opener | None) -> Any:
    """The information an answer's payload carries: opened when sealed to the querier (SealError
    when ``opener`` cannot), as it is for an answer made before answers were sealed."""
    sealed = payload.get("sealed_data")
    if sealed is None:
        return payload.get("data")
    if opener is None:
        raise SealError("the answer is sealed and this organisation holds no key to open it")
    key = payload.get("sealed_key")  # sealed with its batch's key (common.sealing.Sealer.seal_batch)
    return opener.open(str(sealed), None if key is None else str(key))


def verify_answer(
    doc: dict[str, Any],
    trust: TrustStore,
    settings: LinkageSettings,
    exchange_id: str | None,
    provider: str | None = None,
    opener: Opener | None = None,
) -> tuple[bool, dt.datetime | None, Any]:
    """The querier's check of an answer before it is stored: the signature and, when information is
    held, that it opens with the querier's key and fits the layout version the answer names.
    Returns (valid, as_of, the information — None unless valid and held)."""
    from kojinbango.common.layouts import LayoutError, validate

    check = check_answer(doc, trust, settings, exchange_id, provider)
    valid, payload, data = check.valid, check.payload, None
    if valid and payload.get("held"):
        try:
            data = answer_data(payload, opener)
            validate(str(payload["info"]), data, payload.get("layout_version"))
        except (LayoutError, SealError):
            valid, data = False, None
    return valid, parse_iso(payload.get("as_of")), data


def new_request_id() -> str:
    """A querier's id for a new query: ``RQ``, the time in milliseconds (12 hex digits), 48 random
    bits. Time-ordered, so that the unique indexes on it at the querier and at the network take each
    new one at their end — random ids put every insert on a page of its own (and each such page into
    the WAL); the random half keeps two ids of one millisecond apart."""
    return f"RQ{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


FUGO_CHUNK = 1000  # persons per 符号 request to J-LIS
Caller = Callable[[str, str, Any], Any]  # (method, path, payload) → the answer, on one organisation


def acquire_fugo(
    todo: Sequence[tuple[int, str, str]],
    asked: Mapping[int, str],
    expect: Callable[[list[dict[str, str]]], Any],
    jlis: Caller,
    record_asked: Callable[[list[tuple[int, str]]], None],
    record_delivered: Callable[[list[int]], None],
) -> dict[str, int]:
    """符号の取得 (DOMAIN.md §3) for ``todo`` — (the querier's own id for the person, the 統合宛名番号
    its intermediate server knows them by, their 個人番号) — in chunks: each person gets a 取得番号
    (the one in ``asked`` if they were asked about before, else a new one, written first with
    ``record_asked``); the intermediate server is told which 統合宛名番号 each 取得番号 is for
    (``expect``); J-LIS is given the 取得番号 with the 個人番号 (``jlis``: a call to it) and has the network
    deliver the 符号 to the intermediate server — the number itself never goes further; those
    delivered are marked (``record_delivered``).  The two records are called only with someone in
    them (no empty transaction).  Returns how many were requested, delivered, and unknown to J-LIS."""
    counts = {"requested": 0, "delivered": 0, "unknown": 0}
    for i in range(0, len(todo), FUGO_CHUNK):
        chunk = todo[i : i + FUGO_CHUNK]
        acq = {pid: asked.get(pid) or "AQ" + secrets.token_hex(12) for pid, _, _ in chunk}
        new = [(pid, acq[pid]) for pid, _, _ in chunk if pid not in asked]
        if new:
            record_asked(new)
        expect([{"acquisition_number": acq[pid], "integrated_number": number} for pid, number, _ in chunk])
        items = [{"acquisition_number": acq[pid], "my_number": mn} for pid, _, mn in chunk]
        answer = jlis("POST", "/api/fugo/acquire", {"items": items})
        missing = set(answer.get("unknown", [])) | set(answer.get("unexpected", []))
        delivered = [pid for pid, _, _ in chunk if acq[pid] not in missing]
        if delivered:
            record_delivered(delivered)
        counts["requested"] += len(chunk)
        counts["delivered"] += len(chunk) - len(missing)
        counts["unknown"] += len(answer.get("unknown", []))
    return counts


# --- writing to SQLite from many threads ----------------------------------------------------------
def write_lock(db: Database) -> threading.RLock:
    """The in-process lock around ``db``'s write transactions (``Database.write_lock``: the SQLite
    file's, which the checkpointer takes too)."""
    return db.write_lock


def waiting_queries(
    db: Database,
    model: Any,
    view: Callable[[Any], dict[str, Any]],
    collect: Callable[[str], Any] | None = None,
    limit: int = 500,
) -> dict[str, Any]:
    """A querier's queries still waiting for their answer (``WAITING``: not yet accepted by the
    network, or accepted and not yet answered), oldest first, as ``view`` shows a stored row — the
    linkage staff's list when a provider is down.  With ``collect`` (the querier's 結果取得要求 by
    処理通番), each with a 処理通番 is asked for again first, one failure not stopping the others, and
    only what still waits is listed.  At most ``limit`` are listed (the oldest); ``total`` says how many
    wait in all.  ``model``: the querier's answer table (a ``StoredAnswer``)."""
    collected = 0
    failed: list[dict[str, str]] = []
    if collect is not None:
        with writing(db) as s:
            ids = [
                str(i)
                for i in s.scalars(
                    select(model.exchange_id)
                    .where(model.status.in_(WAITING), model.exchange_id.is_not(None))
                    .order_by(model.id)
                    .limit(limit)
                )
            ]
        for exchange_id in ids:
            try:
                state = collect(exchange_id)
            except Exception as exc:  # an unreachable network or provider: listed as still waiting
                failed.append({"exchange_id": exchange_id, "error": f"{type(exc).__name__}: {exc}"[:300]})
                continue
            collected += state.get("status") not in WAITING
    with writing(db) as s:
        rows = s.scalars(select(model).where(model.status.in_(WAITING)).order_by(model.id).limit(limit))
        waiting = [view(r) for r in rows]
        total = len(waiting)
        if total == limit:  # more may wait than are listed: say how many
            total = int(
                s.scalar(select(func.count()).select_from(model).where(model.status.in_(WAITING))) or 0
            )
    out: dict[str, Any] = {"waiting": waiting, "total": total}
    if collect is not None:
        out["collected"] = collected
        out["collect_failed"] = failed
    return out


@contextmanager
def writing(db: Database) -> Iterator[Session]:
    """``db.transaction()`` that, on SQLite, holds the database's in-process write lock."""
    if not db.is_sqlite:
        with db.transaction() as s:
            yield s
        return
    with write_lock(db), db.transaction() as s:
        yield s


@contextmanager
def writing_core(db: Database) -> Iterator[Connection]:
    """``writing`` with a bare connection (Core statements only): the exchange path's transactions."""
    if not db.is_sqlite:
        with db.begin() as conn:
            yield conn
        return
    with write_lock(db), db.begin() as conn:
        yield conn


class LockedNonceStore(DbNonceStore):
    """The organisation's replay protection, taking the same write lock as its other writes."""

    def __call__(self, signer: str, nonce: str, created: int) -> bool:
        if not self.db.is_sqlite:
            return super().__call__(signer, nonce, created)
        with write_lock(self.db):
            return super().__call__(signer, nonce, created)


def limit_worker_threads(app: Any, threads: int) -> None:
    """Run at most ``threads`` sync handlers at once when served on its own (``kojinbango serve``).

    The linkage services' handlers are short and CPU-bound; dozens of threads contending for the GIL
    made latencies under load grow far beyond their work (measured with bench/exchange.py).
    """
    from contextlib import asynccontextmanager

    import anyio

    original = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> Any:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        async with original(a) as state:
            yield state

    app.router.lifespan_context = lifespan
