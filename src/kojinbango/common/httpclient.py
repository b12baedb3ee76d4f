"""The project's async HTTP/1.1 client: keep-alive connections, one request in flight on each, no more.

The exchange path's onward calls (``SignedClient.acall``) and the benchmark driver send small
requests to a few servers, one after another or a few at once, on an event loop.  aiohttp's
client did that with about twice this one's CPU per request (a profile of one exchange at a time
had aiohttp's own code at 11-18 % of a service's CPU): here each request is written as one
prepared block and its answer parsed by httptools (uvicorn's own C parser), on an
``asyncio.Protocol`` per connection.  No pipelining, no compression, no cookies, no redirects, no
proxies, no streaming: every answer is read whole.

A ``Client`` belongs to the event loop it is first used on, as an aiohttp session does.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import cast

import httptools

# An idle connection is dropped after this long, well before the servers close theirs
# (transport.SERVER_KEEP_ALIVE_SECONDS): a connection the server is closing is not reused.
IDLE_SECONDS = 15.0
_NO_CONTENT_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
# set by the client itself: a caller's copy would make the request ambiguous
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class ConnectionClosed(ConnectionError):
    """The server closed (or reset) the connection before its whole answer had arrived."""


class MalformedAnswer(ConnectionError):
    """The server's answer was not valid HTTP/1.1."""


class Headers(Mapping[str, str]):
    """An answer's headers, looked up case-insensitively; a repeated header's values joined with
    ", " (RFC 9110 §5.3)."""

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[str, str] | None = None) -> None:
        self._fields = fields if fields is not None else {}  # lower-case names

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()]

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self._fields.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"Headers({self._fields!r})"


Server = tuple[str, str, int]  # scheme, host, port


class _Connection(asyncio.Protocol):
    """One keep-alive connection: a request is written whole and its answer read whole, one at a time."""

    def __init__(self, client: Client, server: Server) -> None:
        self._client = client
        self.server = server
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[tuple[int, Headers, bytes]] | None = None
        self._fields: dict[str, str] = {}
        self._chunks: list[bytes] = []
        self._head = False  # the request was HEAD: the answer has no body, whatever its headers say
        self._until_close = False  # the answer's body ends when the server closes the connection
        self.received = False  # some byte of the current answer has arrived
        self.reusable = True
        self.idle_since = 0.0
        self.lost = asyncio.get_running_loop().create_future()

    # --- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._answer is None:  # nothing asked: a server that talks out of turn is not reused
            self.close()
            return
        self.received = True
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(MalformedAnswer(f"malformed answer from {_origin(self.server)}: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        answer = self._answer
        if answer is not None and not answer.done():
            if self._until_close and exc is None:
                self._complete()
            else:
                why = f": {exc}" if exc is not None else ""
                closed = ConnectionClosed(
                    f"{_origin(self.server)} closed the connection before the whole answer{why}"
                )
                closed.__cause__ = exc
                answer.set_exception(closed)
        self._client._forget(self)
        if not self.lost.done():
            self.lost.set_result(None)

    # --- httptools callbacks
    def on_message_begin(self) -> None:
        if self._answer is None:  # a second answer in the same read: nothing asked for it
            self.reusable = False

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        known = self._fields.get(key)
        self._fields[key] = text if known is None else f"{known}, {text}"

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            return
        if self._head:
            # httptools cannot be told that a HEAD answer's content-length announces no body: answer
            # now and drop the connection rather than parse the next answer as this one's body
            self.reusable = False
            self._complete()
            return
        fields = self._fields
        self._until_close = (
            status not in (204, 304) and "content-length" not in fields and "transfer-encoding" not in fields
        )

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        # an interim answer (100 Continue, 103 Early Hints): the final one follows
        if self._parser.get_status_code() < 200:
            self._fields = {}
            self._chunks = []
            return
        self.reusable = self.reusable and self._parser.should_keep_alive()
        self._complete()

    # --- the client's side
    def send(self, request: bytes, head: bool) -> asyncio.Future[tuple[int, Headers, bytes]]:
        assert self.transport is not None
        self._answer = answer = asyncio.get_running_loop().create_future()
        self._fields = {}
        self._chunks = []
        self._head = head
        self._until_close = False
        self.received = False
        self.transport.write(request)
        return answer

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()

    def _complete(self) -> None:
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            body = b"".join(self._chunks)
            answer.set_result((self._parser.get_status_code(), Headers(self._fields), body))
        self._chunks = []

    def _fail(self, exc: Exception) -> None:
        self.reusable = False
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc)


class Client:
    """Keep-alive HTTP/1.1 connections per server: a request takes an idle one or opens one, so
    there are as many as requests in flight, at most ``limit`` to one server (0: no limit; more wait).

    ``timeout``: seconds for a whole request (waiting for a connection, connecting, the answer),
    else ``TimeoutError``.  Failures to connect and broken or malformed answers raise
    ``ConnectionError``.  ``ssl_context`` is used for ``https://`` URLs (default: Python's verifying
    one).  Connections idle for ``idle_seconds`` are closed.
    """

    def __init__(
        self,
        limit: int = 0,
        timeout: float = 60.0,
        *,
        ssl_context: ssl.SSLContext | None = None,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        if limit < 0:
            raise ValueError(f"limit must be 0 (none) or more, not {limit}")
        if timeout <= 0 or idle_seconds <= 0:
            raise ValueError("timeout and idle_seconds must be positive")
        self._limit = limit
        self._timeout = timeout
        self._ssl_context = ssl_context
        self._idle_seconds = idle_seconds
        self._idle: dict[Server, list[_Connection]] = {}  # oldest first
        self._open: set[_Connection] = set()
        self._slots: dict[Server, asyncio.Semaphore] = {}
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]:
        """POST ``body`` (JSON) to ``url``: (status, answer body)."""
        status, _, content = await self.request(
            "POST", url, body, {"content-type": "application/json", **(headers or {})}
        )
        return status, content

    async def request(
        self, method: str, url: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> tuple[int, Headers, bytes]:
        """Send ``method`` ``url`` with ``body`` and ``headers``: (status, answer headers, answer body)."""
        method = method.upper()  # as aiohttp and httpx send it (and as signing.sign_request signs it)
        if self._closed:
            raise RuntimeError("the HTTP client is closed")
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self._loop is not None:
                raise RuntimeError("an HTTP client belongs to the event loop it was first used on")
            self._loop = loop
        server, request = _prepare(method, url, body, headers)
        try:
            async with asyncio.timeout(self._timeout):
                if not self._limit:
                    return await self._send(server, request, method == "HEAD")
                slot = self._slots.get(server)
                if slot is None:
                    slot = self._slots[server] = asyncio.Semaphore(self._limit)
                async with slot:
                    return await self._send(server, request, method == "HEAD")
        except TimeoutError:
            raise TimeoutError(f"no answer from {_origin(server)} within {self._timeout} s") from None

    async def _send(self, server: Server, request: bytes, head: bool) -> tuple[int, Headers, bytes]:
        conn = self._idle_connection(server)
        if conn is None:
            return await self._exchange(await self._connect(server), request, head)
        try:
            return await self._exchange(conn, request, head)
        except ConnectionClosed:
            if conn.received or self._closed:  # part of an answer came: the request was acted on
                raise
        # A kept-alive connection the server closed (its idle timeout, a restart) just as we sent on
        # it: the same bytes once more, on a new connection.  Safe even if the first copy was served:
        # every request between organisations (and every MAC'd internal call) carries a nonce its
        # server remembers, so a second copy is refused as replayed instead of acted on twice.  Never
        # after a new connection failed, nor after any byte of an answer (the request surely arrived).
        return await self._exchange(await self._connect(server), request, head)

    async def _exchange(self, conn: _Connection, request: bytes, head: bool) -> tuple[int, Headers, bytes]:
        try:
            answer = await conn.send(request, head)
        except BaseException:  # broken, timed out or cancelled: the rest could pass for the next answer
            conn.close()
            raise
        if conn.reusable and not self._closed:
            conn.idle_since = asyncio.get_running_loop().time()
            self._idle.setdefault(conn.server, []).append(conn)
            if self._sweep is None:
                self._sweep = asyncio.get_running_loop().call_later(self._idle_seconds, self._close_idle)
        else:
            conn.close()
        return answer

    def _idle_connection(self, server: Server) -> _Connection | None:
        idle = self._idle.get(server)
        if not idle:
            return None
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()  # the most recently used: the others may age out unused
            if now - conn.idle_since >= self._idle_seconds:  # too old: so are all the others
                for stale in (conn, *idle):
                    stale.close()
                idle.clear()
                return None
            if conn.reusable and conn.transport is not None and not conn.transport.is_closing():
                return conn
            conn.close()
        return None

    async def _connect(self, server: Server) -> _Connection:
        scheme, host, port = server
        loop = asyncio.get_running_loop()
        context: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl_context is None:
                self._ssl_context = ssl.create_default_context()
            context = self._ssl_context
        try:
            _, conn = await loop.create_connection(
                lambda: _Connection(self, server),
                host,
                port,
                ssl=context,
                server_hostname=host if context is not None else None,
            )
        except ConnectionError:
            raise
        except OSError as exc:  # a name that does not resolve, no route, a refused certificate
            raise ConnectionError(f"could not connect to {_origin(server)}: {exc}") from exc
        if self._closed:  # closed while connecting
            conn.close()
            raise ConnectionClosed("the HTTP client was closed")
        self._open.add(conn)
        return conn

    def _close_idle(self) -> None:
        """Close the connections idle for ``idle_seconds``; come back when the next one will be."""
        self._sweep = None
        now = asyncio.get_running_loop().time()
        next_due: float | None = None
        for idle in self._idle.values():
            while idle and now - idle[0].idle_since >= self._idle_seconds:
                idle.pop(0).close()
            if idle:
                due = idle[0].idle_since + self._idle_seconds
                next_due = due if next_due is None else min(next_due, due)
        if next_due is not None:
            self._sweep = asyncio.get_running_loop().call_at(next_due, self._close_idle)

    def _forget(self, conn: _Connection) -> None:
        self._open.discard(conn)
        idle = self._idle.get(conn.server)
        if idle and conn in idle:
            idle.remove(conn)

    async def close(self) -> None:
        """Close every connection (a request in flight fails with ``ConnectionError``).  Again: nothing."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        conns = list(self._open)
        self._open.clear()
        self._idle.clear()
        for conn in conns:
            conn.close()
        pending = [conn.lost for conn in conns if not conn.lost.done()]
        if pending:  # TLS connections say goodbye first; don't wait on a server that doesn't answer
            await asyncio.wait(pending, timeout=1.0)
        for conn in conns:
            if not conn.lost.done() and conn.transport is not None:
                conn.transport.abort()


def _prepare(method: str, url: str, body: bytes, headers: Mapping[str, str] | None) -> tuple[Server, bytes]:
    """The server to send to and the request as bytes, or ValueError saying what is wrong."""
    if not method or not _TOKEN_CHARS.issuperset(method):
        raise ValueError(f"not an HTTP method: {method!r}")
    split = urllib.parse.urlsplit(url)
    scheme = split.scheme
    if scheme not in ("http", "https"):
        raise ValueError(f"only http:// and https:// URLs can be requested, not {url!r}")
    host = split.hostname
    if not host or "@" in split.netloc:
        raise ValueError(f"a URL needs a host (and no user name): {url!r}")
    try:
        port = split.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise ValueError(f"bad port in {url!r}") from exc
    target = split.path or "/"
    if split.query:
        target += "?" + split.query
    if " " in target or " " in split.netloc or "\r" in target or "\n" in target:
        raise ValueError(f"a URL may not contain spaces or line breaks: {url!r}")
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError(f"the body must be bytes, not {type(body).__name__}")
    lines = [f"{method} {target} HTTP/1.1\r\nhost: {split.netloc}\r\n"]
    if body or method not in _NO_CONTENT_METHODS:
        lines.append(f"content-length: {len(body)}\r\n")
    if headers:
        for name, value in headers.items():
            if not name or not _TOKEN_CHARS.issuperset(name) or name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"not a header a caller can set: {name!r}")
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {name} may not contain a line break")
            lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    try:
        head = "".join(lines).encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"a header or the URL has a character latin-1 cannot encode: {exc}") from exc
    return (scheme, host, port), head + body if body else head


def _origin(server: Server) -> str:
    scheme, host, port = server
    return f"{scheme}://{host}:{port}"
