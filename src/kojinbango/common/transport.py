"""HTTP between organisations: a signing client and a verifying ASGI middleware.

Only paths under ``/api/`` are organisation-to-organisation calls and must be signed; staff pages,
the OpenAPI document and the health check are not.  An organisation's *internal* interfaces (the
JSON the ``kojinbango`` commands drive, ``INTERNAL_PREFIXES``) must be signed too, by the
organisation itself: the commands run on its side with its own key — a signature, or the MAC derived
from that key (``signing.InternalKey``), which only internal interfaces take.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import functools
import logging
import sqlite3
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import delete, insert, select, tuple_
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kojinbango.common import jsoncodec
from kojinbango.common.db import DbNonceStore, ProcessChore, SqliteRows, sqlite_path
from kojinbango.common.errors import BusinessError, Unauthorised
from kojinbango.common.httpclient import Client
from kojinbango.common.pki import OrgCredentials
from kojinbango.common.signing import (
    MAX_SKEW_SECONDS,
    InternalKey,
    MemoryNonceStore,
    NonceStore,
    NonceWindow,
    SignatureError,
    TrustStore,
    sign_request,
    sign_response,
    verify_request,
    verify_response,
)

log = logging.getLogger(__name__)
API_PREFIX = "/api/"
# Servers keep an idle connection open much longer than clients reuse one (httpx drops its idle
# connections after 5 s): with equal timeouts a client could send on a connection the server is
# closing that instant, and the call fails with a ReadError under load.
SERVER_KEEP_ALIVE_SECONDS = 75
# JSON interfaces of an organisation's own systems (the CLI on its side): outside the staff login,
# accepted only when signed with the serving organisation's own credentials.
INTERNAL_PREFIXES = (
    "/staff/cards/api/",  # a municipality's card desk
    "/staff/linkage/api/",  # a municipality's or agency's linkage staff
    "/staff/cards/manufacture",  # J-LIS's card centre: run the manufacturing batch
    "/staff/cards/applications/postal",  # J-LIS's 受付センター: key in a paper application
)
# How a staff name typed into such a call is recorded: marked as having come through it.
INTERNAL_STAFF_MARK = "［内部IF］"


class RemoteError(Exception):
    """Another organisation refused or failed a call; ``status`` is its HTTP status."""

    def __init__(self, org_id: str, status: int, detail: str):
        super().__init__(f"{org_id} answered {status}: {detail}")
        self.org_id = org_id
        self.status = status
        self.detail = detail


class Unreachable(Exception):
    """Another organisation could not be reached at all."""


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default verifying TLS context, made once per process and shared by every client:
    each ``httpx.Client`` made its own, reading the CA bundle again (about 50 ms a client; a nation
    starts a dozen of them)."""
    return httpx.create_ssl_context()


def http_client(**kwargs: Any) -> httpx.Client:
    """``httpx.Client(**kwargs)`` with the shared TLS context."""
    return httpx.Client(verify=tls_context(), **kwargs)


class SignedClient:
    """Calls other organisations' APIs with signed requests and checks their signed answers.

    ``call``/``send`` block (httpx); ``acall`` does the same on the caller's event loop (httpclient),
    for handlers that call onward while serving — the exchange path — without holding a thread.
    """

    def __init__(
        self,
        creds: OrgCredentials,
        trust: TrustStore,
        directory: Mapping[str, str],
        timeout: float = 120.0,
    ):
        self.creds = creds
        self.trust = trust
        self.directory = dict(directory)
        self.timeout = timeout
        self._http = http_client(timeout=timeout)
        # its own internal interfaces are called with a MAC (signing.InternalKey), not a signature
        self._internal = InternalKey.of(creds)
        self._answer_nonces = MemoryNonceStore()
        self._answer_lock = threading.Lock()
        # One async client per event loop that used ``acall`` (a client belongs to its loop).
        self._sessions: dict[asyncio.AbstractEventLoop, Client] = {}

    def close(self) -> None:
        self._http.close()
        for loop, session in list(self._sessions.items()):
            if loop.is_running():
                with contextlib.suppress(Exception):
                    asyncio.run_coroutine_threadsafe(session.close(), loop).result(timeout=5)
        self._sessions.clear()

    async def aclose(self) -> None:
        """Close the current event loop's connections (its server is shutting down)."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()

    def call(self, org_id: str, method: str, path: str, payload: Any = None) -> Any:
        """Send ``payload`` as JSON to ``org_id`` and return the verified JSON answer."""
        resp = self.send(org_id, method, path, payload)
        return _answer(org_id, resp.status_code, resp.content)

    def send(self, org_id: str, method: str, path: str, payload: Any = None) -> httpx.Response:
        """Send ``payload`` as JSON to ``org_id``; the answer, whatever its status, once its
        signature is verified (a refused signature or a replayed answer raises ``RemoteError``)."""
        url, body, headers = self._signed(org_id, method, path, payload)
        try:
            resp = self._http.request(method, url, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise Unreachable(f"{org_id} could not be reached: {type(exc).__name__}") from exc
        self._check_answer(org_id, headers, resp.status_code, resp.headers, resp.content)
        return resp

    async def acall(self, org_id: str, method: str, path: str, payload: Any = None) -> Any:
        """``call`` on the running event loop."""
        url, body, headers = self._signed(org_id, method, path, payload)
        try:
            status, answer_headers, content = await self._session().request(method, url, body, headers)
        except (TimeoutError, ConnectionError) as exc:  # the client maps other OSErrors to ConnectionError
            raise Unreachable(f"{org_id} could not be reached: {type(exc).__name__}") from exc
        self._check_answer(org_id, headers, status, answer_headers, content)
        return _answer(org_id, status, content)

    def _session(self) -> Client:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            # idle connections dropped after 15 s, before the servers' (SERVER_KEEP_ALIVE_SECONDS)
            session = Client(timeout=self.timeout, ssl_context=tls_context(), idle_seconds=15.0)
            for other in list(self._sessions):  # other loops' threads may add theirs meanwhile
                if other.is_closed():  # a finished loop's client: nothing left to close
                    self._sessions.pop(other, None)
            self._sessions[loop] = session
        return session

    def _signed(self, org_id: str, method: str, path: str, payload: Any) -> tuple[str, bytes, dict[str, str]]:
        try:
            base = self.directory[org_id]
        except KeyError:
            raise Unreachable(f"no address known for organisation {org_id}") from None
        body = b"" if payload is None else jsoncodec.encode(payload)
        url = base.rstrip("/") + path
        parts = urlsplit(url)
        own_internal = org_id == self.creds.org_id and parts.path.startswith(INTERNAL_PREFIXES)
        mac = self._internal if own_internal else None
        headers = sign_request(self.creds, method, parts.path, parts.query, body, org_id, mac)
        headers["content-type"] = "application/json"
        return url, body, headers

    def _check_answer(
        self, org_id: str, sent: Mapping[str, str], status: int, headers: Mapping[str, str], content: bytes
    ) -> None:
        nonce = _nonce_of(sent["signature-input"])
        try:
            internal = self._internal if org_id == self.creds.org_id else None
            verified = verify_response(headers, status, content, org_id, nonce, self.trust, internal=internal)
        except SignatureError as exc:
            raise RemoteError(org_id, status, f"answer rejected: {exc}") from exc
        with self._answer_lock:
            fresh = self._answer_nonces(verified.signer, verified.nonce, verified.created)
        if not fresh:
            raise RemoteError(org_id, status, "answer rejected: replayed")


def _answer(org_id: str, status: int, content: bytes) -> Any:
    """A verified answer's JSON, or RemoteError with the organisation's stated reason."""
    if status >= 400:
        try:
            detail = jsoncodec.decode(content).get("detail", content.decode(errors="replace"))
        except (ValueError, AttributeError):
            detail = content.decode(errors="replace")
        raise RemoteError(org_id, status, str(detail))
    return jsoncodec.decode(content) if content else None


def _nonce_of(signature_input: str) -> str:
    marker = ';nonce="'
    start = signature_input.index(marker) + len(marker)
    return signature_input[start : signature_input.index('"', start)]


class GroupCommitNonceStore:
    """An organisation's replay protection: a window of nonces in memory, written in group commits.

    A nonce already in the window is refused at once, without the database.  A new one is written
    to the ``seen_nonces`` table together with every other nonce that arrived meanwhile, in one
    transaction, and only then is its request let through: nothing is acted on before its nonce is
    durable, so a restart — which reloads the window from the table — still refuses a replay of any
    request still inside the signature's validity window.  The table's primary key catches a nonce
    another process of the same organisation accepted first.  One transaction per batch instead of
    one per request is what this buys; see bench/exchange.py.  Requests served on an event loop
    (``remember``) are committed on that loop, a batch per round of the loop; blocking callers
    (``submit``) go through a writer thread.

    Nonces past the window are forgotten as they expire (in arrival order, a little at each write)
    and deleted from the table by one thread per process, in small chunks, off the event loop
    (``prune_database``): a whole minute's worth in one statement, inside a request's group commit,
    held the loop for a fifth of a second at 400 requests/s.
    """

    WINDOW_SECONDS = 2 * MAX_SKEW_SECONDS  # older signatures are refused as stale anyway
    MAX_BATCH = 500
    PRUNE_CHUNK = 1000  # rows per DELETE: each holds an SQLite organisation's write lock briefly

    def __init__(self, store: DbNonceStore):
        self.db = store.db
        self.table = store.table
        self._seen = NonceWindow()
        self._queue: list[tuple[tuple[str, str], int, concurrent.futures.Future[bool]]] = []
        self._cond = threading.Condition()
        self._writer: threading.Thread | None = None
        self._waiting = False
        # Nonces of requests served on an event loop, waiting for that loop's next group commit.
        self._loop_batches: dict[
            asyncio.AbstractEventLoop, list[tuple[tuple[str, str], int, asyncio.Future[bool]]]
        ] = {}
        on_file = self.db.is_sqlite and sqlite_path(self.db.url) is not None  # not an in-memory database
        self._sqlite = SqliteRows(self.db, self.table, _NONCE_COLUMNS) if on_file else None
        cutoff = int(time.time()) - self.WINDOW_SECONDS
        t = self.table
        with self.db.engine.connect() as conn:
            for signer, nonce, created in conn.execute(
                select(t.c.signer, t.c.nonce, t.c.created).where(t.c.created >= cutoff).order_by(t.c.created)
            ):
                self._seen.add((signer, nonce), int(created))
        PRUNER.register(self)

    def submit(self, signer: str, nonce: str, created: int) -> concurrent.futures.Future[bool]:
        """A future that is True once the nonce is durably remembered, False if it was seen before."""
        fut: concurrent.futures.Future[bool] = concurrent.futures.Future()
        key = (signer, nonce)
        with self._cond:
            if key in self._seen:
                fut.set_result(False)
                return fut
            self._seen.add(key, created)
            self._queue.append((key, created, fut))
            if self._writer is None:
                self._writer = threading.Thread(target=self._run, name="nonce-writer", daemon=True)
                self._writer.start()
            elif self._waiting:  # a busy writer takes the queue when its batch is done
                self._cond.notify()
        return fut

    def __call__(self, signer: str, nonce: str, created: int) -> bool:
        return self.submit(signer, nonce, created).result(timeout=120)

    async def remember(self, signer: str, nonce: str, created: int) -> bool:
        """``submit`` for a request being served on an event loop, committed on that loop: the
        nonces of the requests the loop is handling in this round are written together as soon as
        it has started them all — no writer thread to hand over to and wake (which cost more than
        the write itself)."""
        key = (signer, nonce)
        with self._cond:
            if key in self._seen:
                return False
            self._seen.add(key, created)
        loop = asyncio.get_running_loop()
        batch = self._loop_batches.get(loop)
        if batch is None:
            batch = self._loop_batches[loop] = []
            loop.call_soon(self._commit_loop_batch, loop)
        fut: asyncio.Future[bool] = loop.create_future()
        batch.append((key, created, fut))
        return await fut

    def _commit_loop_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._loop_batches.pop(loop, [])
        for i in range(0, len(batch), self.MAX_BATCH):
            part = batch[i : i + self.MAX_BATCH]
            for (_key, _created, fut), outcome in zip(part, self._commit(part), strict=True):
                if fut.done():  # a request whose client went away: its nonce stays remembered
                    continue
                if isinstance(outcome, BaseException):
                    fut.set_exception(outcome)
                else:
                    fut.set_result(outcome)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    self._waiting = True
                    self._cond.wait(timeout=30)
                    self._waiting = False
                if not self._queue:  # idle: end, the next request starts a writer again
                    self._writer = None
                    return
                batch, self._queue = self._queue[: self.MAX_BATCH], self._queue[self.MAX_BATCH :]
            for (_key, _created, fut), outcome in zip(batch, self._commit(batch), strict=True):
                _settle(fut, outcome)

    def _commit(self, batch: Sequence[tuple[tuple[str, str], int, object]]) -> list[bool | BaseException]:
        """Each nonce's outcome: True (new, now durable), False (seen first elsewhere), or — when
        the database failed — the error, the nonces forgotten again so a retry is not a replay."""
        try:
            return list(self._write(batch))
        except Exception as exc:
            log.exception("remembering request nonces failed")
            with self._cond:
                for key, _created, _fut in batch:
                    self._seen.discard(key)
            return [exc] * len(batch)

    def _lock(self) -> Any:
        if not self.db.is_sqlite:
            return threading.RLock()
        from kojinbango.common.linkage import write_lock  # the organisation's SQLite write lock

        return write_lock(self.db)

    def _write(self, batch: Sequence[tuple[tuple[str, str], int, object]]) -> list[bool]:
        seen_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        rows = [(k[0], k[1], c, seen_at) for k, c, _f in batch]
        now = time.time()
        try:
            with self._lock():
                self._insert(rows)
        except (IntegrityError, sqlite3.IntegrityError):
            # Another process of this organisation took one of them first: settle each on its own.
            results = []
            for row in rows:
                try:
                    with self._lock():
                        self._insert([row])
                    results.append(True)
                except (IntegrityError, sqlite3.IntegrityError):
                    results.append(False)
            self._prune_memory(now)
            return results
        self._prune_memory(now)
        return [True] * len(rows)

    def _insert(self, rows: Sequence[tuple[str, str, int, dt.datetime]]) -> None:
        """The rows (signer, nonce, created, seen_at) in one transaction: on SQLite straight through
        ``sqlite3`` (``db.SqliteRows``), elsewhere with SQLAlchemy."""
        if self._sqlite is not None:
            self._sqlite.insert(rows)
            return
        with self.db.begin() as conn:
            conn.execute(insert(self.table), [dict(zip(_NONCE_COLUMNS, row, strict=True)) for row in rows])

    def _prune_memory(self, now: float) -> None:
        """Forget the nonces that expired since the last write (only those: ``NonceWindow``)."""
        with self._cond:
            self._seen.expire(now)

    def prune_database(self, now: float | None = None) -> int:
        """Delete the nonces past the window from the table, ``PRUNE_CHUNK`` rows per transaction
        (so an SQLite organisation's write lock is never held long); returns how many."""
        cutoff = int(time.time() if now is None else now) - self.WINDOW_SECONDS
        t = self.table
        # whole primary keys, ``created`` first: each chunk is found and deleted through the key.
        # (Signer and nonce alone made SQLite scan the table for every chunk: 240,000 nonces in the
        # window at 400 requests/s, a minute's chunks held the write lock for seconds.)
        key = (t.c.created, t.c.signer, t.c.nonce)
        expired = select(*key).where(t.c.created < cutoff).order_by(t.c.created).limit(self.PRUNE_CHUNK)
        statement = delete(t).where(tuple_(*key).in_(expired))
        total = 0
        while True:
            with self._lock(), self.db.begin() as conn:
                deleted = conn.execute(statement).rowcount
            total += deleted
            if deleted < self.PRUNE_CHUNK:
                return total
            time.sleep(PRUNE_PAUSE_SECONDS)  # the writers waiting for the lock go first


PRUNE_PAUSE_SECONDS = 0.005  # between two chunks of a prune: this thread would take the lock again at once
# One thread per process deletes the nonces past the window from every live store's table.
PRUNER: ProcessChore[GroupCommitNonceStore] = ProcessChore(
    "nonce-prune",
    60.0,
    GroupCommitNonceStore.prune_database,
    # a locked or vanished database: the next pass tries again
    lambda _store, exc: f"pruning expired request nonces failed: {type(exc).__name__}: {exc}",
    wait_first=True,
)


_NONCE_COLUMNS = ("signer", "nonce", "created", "seen_at")


def _settle(fut: concurrent.futures.Future[bool], outcome: bool | BaseException) -> None:
    """Give a waiting request its answer; one that was cancelled meanwhile (its client went away)
    has nobody to tell — its nonce stays remembered all the same."""
    try:
        if isinstance(outcome, BaseException):
            fut.set_exception(outcome)
        else:
            fut.set_result(outcome)
    except concurrent.futures.InvalidStateError:
        pass


DirectRoute = Callable[[Request, bytes], Awaitable[Response]]
"""A route answered by ``SignatureMiddleware`` itself (``direct_routes``): the verified request and
its body in, the response out; an exception it raises is answered by the application's handler for
it (``exception_handlers``), as the route would have been."""


class SignatureMiddleware:
    """Verifies every ``/api/`` request and signs every ``/api/`` answer.

    Unsigned, wrongly signed, mis-addressed, stale or replayed requests get 401 before any handler
    runs, so they change nothing.  The verified signer is put in ``request.state.caller``.

    Paths under ``internal_prefixes`` are verified and answered the same way, but accepted only
    when signed by this organisation itself (``allowed_callers`` does not apply to them), with its
    signature or its MAC (``InternalKey``; a MAC'd request is answered with a MAC); their requests
    carry ``request.state.internal = True``.

    ``direct_routes`` (method, path): handled here once verified, without the application's routing,
    dependencies and middleware below this one — the hot route of the exchange path (the agency's
    CPU per exchange 1.61–1.65 ms against 1.78–1.84 through the router, two alternating pairs).
    Its errors go to ``exception_handlers`` (the application's own, the same dict) by their class.
    """

    def __init__(
        self,
        app: ASGIApp,
        creds: OrgCredentials,
        trust: TrustStore,
        nonce_store: NonceStore,
        allowed_callers: Iterable[str] | None = None,
        internal_prefixes: Iterable[str] = (),
        direct_routes: Mapping[tuple[str, str], DirectRoute] | None = None,
        exception_handlers: Mapping[Any, Callable[[Request, Exception], Any]] | None = None,
    ):
        self.app = app
        self.creds = creds
        self.trust = trust
        # A database-backed store is used through group commits (see GroupCommitNonceStore).
        self.nonce_store = (
            GroupCommitNonceStore(nonce_store) if isinstance(nonce_store, DbNonceStore) else nonce_store
        )
        self.allowed = set(allowed_callers) if allowed_callers is not None else None
        self.internal = tuple(internal_prefixes)
        # internal interfaces also take the organisation's own MAC (signing.InternalKey)
        self.internal_key = InternalKey.of(creds) if self.internal else None
        self.direct = direct_routes if direct_routes is not None else {}
        self.handlers = exception_handlers if exception_handlers is not None else {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        internal = bool(self.internal) and scope["path"].startswith(self.internal)
        if not internal and not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        body = await request_body(receive)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = scope.get("query_string", b"").decode("latin-1")
        try:
            verified = verify_request(
                headers, scope["method"], scope["path"], query, body, self.creds.org_id, self.trust,
                internal=self.internal_key if internal else None,
            )  # fmt: skip
            if internal:
                if verified.signer != self.creds.org_id:
                    raise SignatureError("only this organisation itself may call its internal interfaces")
            elif self.allowed is not None and verified.signer not in self.allowed:
                raise SignatureError("signer may not call this organisation")
            store = self.nonce_store
            if isinstance(store, GroupCommitNonceStore):
                fresh = await store.remember(verified.signer, verified.nonce, verified.created)
            else:  # another store may block: keep it off the event loop
                fresh = await run_in_threadpool(store, verified.signer, verified.nonce, verified.created)
            if not fresh:
                raise SignatureError("request was replayed")
        except SignatureError as exc:
            log.warning("refused %s %s: %s", scope["method"], scope["path"], exc)
            nonce = _nonce_or_blank(headers.get("signature-input", ""))
            detail = f"unauthorised: {exc}"
            if internal:
                detail += (
                    " (an internal interface of this organisation: requests must be signed with its"
                    " own credentials, as the kojinbango commands on its side do)"
                )
            await self._send_signed(send, 401, {"detail": detail}, nonce)
            return
        state = scope.setdefault("state", {})
        state["caller"] = verified.signer
        if internal:
            state["internal"] = True
        direct = self.direct.get((scope["method"], scope["path"])) if self.direct else None
        answer_key = self.internal_key if verified.mac else None  # a MAC is answered with one
        if direct is not None:
            await self._direct(direct, scope, body, send, verified.nonce, answer_key)
            return

        sent = False

        async def replay_receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    await self._answer(
                        send,
                        start["status"],
                        start.get("headers", []),
                        b"".join(chunks),
                        verified.nonce,
                        answer_key,
                    )

        await self.app(scope, replay_receive, capture)

    async def _direct(
        self, route: DirectRoute, scope: Scope, body: bytes, send: Send, nonce: str, mac: InternalKey | None
    ) -> None:
        request = Request(scope)
        try:
            response = await route(request, body)
        except Exception as exc:
            handler = next((self.handlers[c] for c in type(exc).__mro__ if c in self.handlers), None)
            if handler is None:
                raise  # as from any route: the server's own 500, unsigned
            response = await handler(request, exc)
        await self._answer(send, response.status_code, response.raw_headers, bytes(response.body), nonce, mac)

    async def _send_signed(self, send: Send, status: int, payload: dict[str, Any], nonce: str) -> None:
        body = jsoncodec.encode(payload)
        await self._answer(send, status, [(b"content-type", b"application/json")], body, nonce)

    async def _answer(
        self,
        send: Send,
        status: int,
        headers: Iterable[tuple[bytes, bytes]],
        payload: bytes,
        nonce: str,
        mac: InternalKey | None = None,
    ) -> None:
        """Send ``payload`` with ``headers`` (its length set anew) and the answer's signature — or MAC,
        to a MAC'd request — over it, bound to the request's ``nonce``."""
        sig = sign_response(self.creds, status, payload, nonce, mac)
        out = [(k, v) for k, v in headers if k.lower() != b"content-length"]
        out += [(k.encode(), v.encode()) for k, v in sig.items()]
        out.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": payload})


async def request_body(receive: Receive) -> bytes:
    """An ASGI request's whole body, however many messages it came in."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


def _nonce_or_blank(signature_input: str) -> str:
    try:
        return _nonce_of(signature_input)
    except ValueError:
        return ""


def _check_internal(request: Request) -> None:
    if request.scope.get("state", {}).get("internal") is not True:
        raise Unauthorised("this route answers only signed calls of this organisation's own systems")


async def require_internal(request: Request) -> None:
    """A route dependency: the request came through the signed internal interface (see
    ``SignatureMiddleware``'s ``internal_prefixes``), else 401.  Async, so FastAPI runs it on the
    event loop rather than on a worker thread."""
    _check_internal(request)


def internal_staff(request: Request, typed: str, limit: int) -> str:
    """The staff name typed into a call of an internal interface, as it is recorded: marked
    (``INTERNAL_STAFF_MARK``) as having come through the signed internal interface; at most
    ``limit`` characters in all."""
    _check_internal(request)
    name = (typed or "").strip()
    room = limit - len(INTERNAL_STAFF_MARK)
    if not name or len(name) > room:
        raise BusinessError(f"the staff member's name or id (1-{room} characters) is required")
    return INTERNAL_STAFF_MARK + name


def caller(request: Request) -> str:
    """The organisation that signed the current request (set by SignatureMiddleware)."""
    value = request.scope.get("state", {}).get("caller")
    if not isinstance(value, str):
        raise RuntimeError("caller requested outside a signed /api/ route")
    return value
