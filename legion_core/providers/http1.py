"""A lean HTTP/1.1 client for the hot path: one POST, the whole answer back, keep-alive.

`Pool.read()` (every non-streamed provider call) goes through this when httptools is installed
(`legion-core[fast]`, which the gateway also uses to parse requests); streams, and everything
off the hot path, stay on aiohttp and httpx. The exchange it serves is narrow: a POST with a
known length to one origin, answered with a status, headers and a body delimited by
Content-Length, chunked encoding or the end of the connection. For that, aiohttp's general
machinery (request and response objects, payload registry, URL and header normalisation,
tracing, a stream reader per response) cost about three times the Python of the exchange
itself, and it runs on every routed request (`bench/provider_overhead.py`).

What it keeps from aiohttp's behaviour, as `Pool` configured it: a per-origin limit on open
connections (callers wait for a free one), idle connections reused for `keepalive` seconds, a
connect timeout, a read timeout between received bytes, TLS for `https://`, gzip and deflate
answers decoded, and no proxy from the environment. A cancelled call closes its connection,
which is how an upstream generation is cancelled. Failures are `ConnectionError`s (refused,
reset, closed early, a malformed answer) or `TimeoutError`s, which `providers.http` maps.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque
from urllib.parse import urlsplit

import httptools
from multidict import CIMultiDict


class UpstreamClosed(ConnectionError):
    """The upstream closed the connection before its answer was complete."""


class MalformedResponse(ConnectionError):
    """The upstream's answer is not HTTP/1.1 this client can read."""


class ReadTimeout(TimeoutError):
    """No byte arrived from the upstream for the read timeout."""


class ConnectTimeout(TimeoutError):
    """The connection could not be made within the connect timeout."""


Answer = tuple[int, CIMultiDict[str], bytes]


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one exchange at a time (no pipelining)."""

    def __init__(self, pool: Http1Pool) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Answer] | None = None
        self.closed = False
        self.counted = True  # in the pool's count of open connections
        self.idle_since = 0.0
        self.got_data = False
        self.timer: asyncio.TimerHandle | None = None  # the read timeout of the exchange under way
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.headers_done = False
        self.length_known = False  # Content-Length or chunked: the end is not the connection's

    # ------------------------------------------------------------ transport events
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.got_data = True
        if self.waiter is None:  # bytes nobody asked for: the connection cannot be trusted
            self.abort()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(MalformedResponse(f"malformed HTTP response from the upstream: {e}"))
            self.abort()

    def eof_received(self) -> bool:
        return False  # close our side too (connection_lost follows)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool._forget(self)
        w = self.waiter
        if w is None or w.done():
            return
        if self.headers_done and not self.length_known:  # a body delimited by the close
            self._complete(keep_alive=False)
            return
        detail = f": {exc}" if exc else ""
        self._fail(UpstreamClosed("the upstream closed the connection before its answer was complete"
                                  + detail))

    # ------------------------------------------------------------ parser callbacks (httptools)
    def on_message_begin(self) -> None:
        self.headers = []
        self.body = []
        self.headers_done = False
        self.length_known = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True
        for name, value in self.headers:
            n = name.lower()
            if n == b"content-length" or (n == b"transfer-encoding" and b"chunked" in value.lower()):
                self.length_known = True
                break

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:  # an interim answer (100 Continue): the real one follows
            return
        self._complete(keep_alive=self.parser.should_keep_alive())

    # ------------------------------------------------------------ the exchange
    def _complete(self, keep_alive: bool) -> None:
        w = self.waiter
        if w is None or w.done():
            return
        if not keep_alive:
            self.closed = True
        try:
            answer = (self.status, _header_map(self.headers), _decode(self.headers, self.body))
        except (zlib.error, ValueError) as e:
            self._fail(MalformedResponse(f"the upstream's answer could not be decoded: {e}"))
            self.closed = True
            return
        w.set_result(answer)

    def _fail(self, exc: BaseException) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_exception(exc)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    async def exchange(self, head: bytes, body: bytes, read_timeout: float | None) -> Answer:
        loop = self.pool.loop
        self.waiter = w = loop.create_future()
        self.got_data = False
        assert self.transport is not None
        self.transport.write(head + body if len(body) < 16384 else head)
        if len(body) >= 16384:
            self.transport.write(body)
        if read_timeout is not None:
            self.timer = loop.call_later(read_timeout, self._read_timer, read_timeout)
        try:
            return await w
        finally:
            self.waiter = None
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None

    def _read_timer(self, read_timeout: float) -> None:
        """Fires `read_timeout` after the last check; fails the call if nothing arrived since.
        One timer per exchange instead of one per received packet: a silence is caught after
        one to two read timeouts (aiohttp's `sock_read`: after one)."""
        w = self.waiter
        if w is None or w.done():
            return
        if self.got_data:  # something came: check again one read timeout from now
            self.got_data = False
            self.timer = self.pool.loop.call_later(read_timeout, self._read_timer, read_timeout)
            return
        self._fail(ReadTimeout(f"no data from the upstream for {read_timeout:g}s"))
        self.abort()


def _header_map(raw: list[tuple[bytes, bytes]]) -> CIMultiDict[str]:
    return CIMultiDict([(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw])


def _decode(headers: list[tuple[bytes, bytes]], body: list[bytes]) -> bytes:
    raw = body[0] if len(body) == 1 else b"".join(body)
    for name, value in headers:
        if name.lower() == b"content-encoding":
            enc = value.strip().lower()
            if enc in (b"gzip", b"x-gzip"):
                return zlib.decompress(raw, 16 + zlib.MAX_WBITS)
            if enc == b"deflate":
                try:
                    return zlib.decompress(raw)
                except zlib.error:
                    return zlib.decompress(raw, -zlib.MAX_WBITS)  # raw deflate, as some servers send
            if enc not in (b"", b"identity"):
                raise ValueError(f"unsupported content-encoding {enc.decode('latin-1')!r}")
    return raw


def _check_header(name: str, value: str) -> None:
    if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
        raise ValueError(f"header {name!r} holds a character HTTP does not allow there")


class Http1Pool:
    """Keep-alive connections to one origin (`base_url`'s scheme, host and port).

    :param base_url: `http://` or `https://`; its path is prefixed to every `post()` path.
    :param headers: sent with every request (after Host and Content-Length).
    :param limit: most connections open at once; further calls wait for one to be free.
    """

    def __init__(self, base_url: str, headers: dict[str, str] | None = None, *, limit: int = 100,
                 connect_timeout: float | None = None, read_timeout: float | None = None,
                 keepalive: float = 30.0, ssl_context: ssl.SSLContext | None = None) -> None:
        u = urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.loop = asyncio.get_running_loop()
        self.host = u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = None
        if u.scheme == "https":
            self.ssl = ssl_context or ssl.create_default_context()
        self.prefix = u.path.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        if u.port is not None:
            host += f":{u.port}"
        base = {"Host": host, "Accept-Encoding": "identity", "Content-Type": "application/json"}
        for k, v in (headers or {}).items():
            _check_header(k, v)
            for existing in [e for e in base if e.lower() == k.lower()]:
                del base[existing]
            base[k] = v
        self._base_lines = "".join(f"{k}: {v}\r\n" for k, v in base.items())
        self._base_names = {k.lower() for k in base}
        self._heads: dict[str, bytes] = {}  # path -> request line + base headers
        self.limit = max(1, limit)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.keepalive = keepalive
        self._idle: list[_Connection] = []
        self._open = 0  # connections open or being opened
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    # ------------------------------------------------------------ the call
    async def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> Answer:
        """POST `body` to the base URL + `path`: (status, headers, decoded body)."""
        head = self._head(path, headers, len(body))
        conn = self._take_idle()
        reused = conn is not None
        if conn is None:
            conn = await self._connect()
        try:
            answer = await conn.exchange(head, body, self.read_timeout)
        except UpstreamClosed:
            self._release(conn)
            if not reused or conn.got_data:
                raise
            # an idle connection the upstream had closed as we sent: once more, on a new one
            conn = await self._connect()
            try:
                answer = await conn.exchange(head, body, self.read_timeout)
            except BaseException:
                conn.abort()
                self._release(conn)
                raise
        except BaseException:  # cancelled, timed out, broken: the connection cannot be reused
            conn.abort()
            self._release(conn)
            raise
        self._release(conn)
        return answer

    def _head(self, path: str, headers: dict[str, str] | None, length: int) -> bytes:
        start = self._heads.get(path)
        if start is None:
            if len(self._heads) > 256:
                self._heads.clear()
            start = self._heads[path] = (f"POST {self.prefix}{path} HTTP/1.1\r\n"
                                         + self._base_lines).encode("latin-1")
        if not headers:
            return b"%bContent-Length: %d\r\n\r\n" % (start, length)
        extra = []
        for k, v in headers.items():
            _check_header(k, v)
            extra.append(f"{k}: {v}\r\n")
        if any(k.lower() in self._base_names for k in headers):  # a per-call value replaces the base one
            lines = [ln for ln in start.decode("latin-1").split("\r\n")[1:] if ln]
            names = {k.lower() for k in headers}
            kept = "".join(ln + "\r\n" for ln in lines if ln.split(":", 1)[0].lower() not in names)
            first = f"POST {self.prefix}{path} HTTP/1.1\r\n"
            return (first + kept + "".join(extra) + f"Content-Length: {length}\r\n\r\n").encode("latin-1")
        return start + ("".join(extra) + f"Content-Length: {length}\r\n\r\n").encode("latin-1")

    # ------------------------------------------------------------ connections
    def _take_idle(self) -> _Connection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.closed or time.monotonic() - conn.idle_since > self.keepalive:
                conn.abort()
                self._discount(conn)
                continue
            return conn
        return None

    async def _connect(self) -> _Connection:
        while self._open >= self.limit:
            if self._closed:
                raise UpstreamClosed("the connection pool is closed")
            w = self.loop.create_future()
            self._waiters.append(w)
            try:
                await w
            except BaseException:
                if w in self._waiters:
                    self._waiters.remove(w)
                elif not w.cancelled():
                    self._wake()  # the slot handed to us goes to the next one
                raise
            conn = self._take_idle()
            if conn is not None:
                return conn
        self._open += 1
        try:
            coro = self.loop.create_connection(lambda: _Connection(self), self.host, self.port,
                                               ssl=self.ssl)
            if self.connect_timeout is None:
                _, conn = await coro
            else:
                try:
                    async with asyncio.timeout(self.connect_timeout):
                        _, conn = await coro
                except TimeoutError:
                    raise ConnectTimeout(f"no connection to {self.host}:{self.port} within "
                                         f"{self.connect_timeout:g}s") from None
        except BaseException:
            self._open -= 1
            self._wake()
            raise
        return conn

    def _release(self, conn: _Connection) -> None:
        """The exchange is over: the connection goes back to the idle list, or is closed."""
        if conn.closed or self._closed:
            conn.abort()
            self._discount(conn)
        else:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        self._wake()

    def _forget(self, conn: _Connection) -> None:
        """The connection closed (either side): an idle one leaves the idle list."""
        if conn in self._idle:
            self._idle.remove(conn)
            self._discount(conn)
            self._wake()

    def _discount(self, conn: _Connection) -> None:
        if conn.counted:
            conn.counted = False
            self._open -= 1

    def _wake(self) -> None:
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_result(None)
                return

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.abort()
            self._discount(conn)
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_result(None)

    @property
    def open_connections(self) -> int:
        return self._open
