"""A lean HTTP/1.1 client for the hot path: one POST, the answer whole or streamed, keep-alive.

Every provider call on the hot path goes through this: `Pool.read()` (`Http1Pool.post`, the
whole answer) and `Pool.post()` (`Http1Pool.stream`, a `StreamResponse` read as it arrives);
httpx (over aiohttp) stays for everything off it. The exchange it serves is narrow: a POST
with a known length to one origin, answered with a status, headers and a body delimited by
Content-Length, chunked encoding or the end of the connection. For that, aiohttp's general
machinery (request and response objects, payload registry, URL and header normalisation,
tracing, a stream reader per response) cost about three times the CPU of this client
(`bench/provider_overhead.py --client`), on every routed request.

What it keeps from aiohttp's behaviour, as `Pool` configured it: a per-origin limit on open
connections (callers wait for a free one), idle connections reused for `keepalive` seconds, a
connect timeout, a read timeout between received bytes, TLS for `https://`, gzip and deflate
answers decoded, and no proxy from the environment. A cancelled call, or a stream released
before its end, closes its connection, which is how an upstream generation is cancelled. Failures are `ConnectionError`s (refused,
reset, closed early, a malformed answer) or `TimeoutError`s, which `providers.http` maps.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httptools
from multidict import CIMultiDict


class UpstreamClosed(ConnectionError):
    """The upstream closed the connection before its answer was complete."""


class MalformedResponse(ConnectionError):
    """The upstream's answer is not HTTP/1.1 this client can read."""


class InvalidURL(ConnectionError):
    """The base URL is not an http:// or https:// URL with a host."""


class ReadTimeout(TimeoutError):
    """No byte arrived from the upstream for the read timeout."""


class ConnectTimeout(TimeoutError):
    """The connection could not be made within the connect timeout."""


Answer = tuple[int, CIMultiDict[str], bytes]

#: A stream's unread bytes past which the connection stops reading (the upstream then waits),
#: and below which it reads again.
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one exchange at a time (no pipelining).

    An exchange is whole (`waiter` resolves with the `Answer` when the body is complete) or
    streamed (`waiter` resolves when the headers are in; the body is then pulled chunk by chunk
    through a `StreamResponse`)."""

    def __init__(self, pool: Http1Pool) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.counted = True  # in the pool's count of open connections
        self.idle_since = 0.0
        # ---- the exchange under way
        self.busy = False
        self.streaming = False
        self.waiter: asyncio.Future[Answer | None] | None = None
        self.got_data = False
        self.timer: asyncio.TimerHandle | None = None  # the read timeout
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.headers_done = False
        self.length_known = False  # Content-Length or chunked: the end is not the connection's
        self.eof = False  # the answer's body is complete
        self.error: BaseException | None = None
        # ---- streamed bodies
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self.reader: asyncio.Future[None] | None = None  # a StreamResponse waiting for bytes

    # ------------------------------------------------------------ transport events
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.got_data = True
        if not self.busy or self.eof:  # bytes nobody asked for: the connection cannot be trusted
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
        if not self.busy or self.eof or self.error is not None:
            return
        if self.headers_done and not self.length_known:  # a body delimited by the close
            self._message_done(keep_alive=False)
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
        if self.streaming and self.status >= 200:
            w = self.waiter
            if w is not None and not w.done():
                w.set_result(None)

    def on_body(self, body: bytes) -> None:
        if not self.streaming:
            self.body.append(body)
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:  # an interim answer (100 Continue): the real one follows
            return
        self._message_done(keep_alive=self.parser.should_keep_alive())

    # ------------------------------------------------------------ the exchange
    def _message_done(self, keep_alive: bool) -> None:
        self.eof = True
        if not keep_alive:
            self.closed = True
        self._stop_timer()
        if self.streaming:
            self._wake_reader()
            return
        w = self.waiter
        if w is None or w.done():
            return
        try:
            answer = (self.status, _header_map(self.headers), _decode(self.headers, self.body))
        except (zlib.error, MalformedResponse) as e:
            self.closed = True
            self._fail(MalformedResponse(f"the upstream's answer could not be decoded: {e}"))
            return
        w.set_result(answer)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self._stop_timer()
        w = self.waiter
        if w is not None and not w.done():
            w.set_exception(exc)
        self._wake_reader()

    def _wake_reader(self) -> None:
        r = self.reader
        if r is not None and not r.done():
            r.set_result(None)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    async def exchange(self, head: bytes, body: bytes, read_timeout: float | None,
                       streaming: bool = False) -> Answer | None:
        """Send the request; wait for the whole answer, or (`streaming`) for its headers."""
        loop = self.pool.loop
        self.busy = True
        self.streaming = streaming
        self.eof = False
        self.error = None
        self.waiter = w = loop.create_future()
        self.got_data = False
        assert self.transport is not None
        if len(body) < 16384:
            self.transport.write(head + body)
        else:
            self.transport.write(head)
            self.transport.write(body)
        if read_timeout is not None:
            self.timer = loop.call_later(read_timeout, self._read_timer, read_timeout)
        try:
            return await w
        except BaseException:
            self._stop_timer()
            raise
        finally:
            self.waiter = None
            if not streaming:
                self._stop_timer()

    def end_exchange(self) -> None:
        """The caller is done with the answer (read or not)."""
        self.busy = False
        self.streaming = False
        self._stop_timer()
        self.chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None and not self.closed:
            self.transport.resume_reading()
        self.paused = False

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _read_timer(self, read_timeout: float) -> None:
        """Fires `read_timeout` after the last check; fails the exchange if nothing arrived
        since. One timer per exchange instead of one per received packet: a silence is caught
        after one to two read timeouts (aiohttp's `sock_read`: after one). A stream whose reader
        is not keeping up (reading paused) is not the upstream's silence."""
        self.timer = None
        if not self.busy or self.eof or self.error is not None:
            return
        if self.got_data or self.paused:  # something came: check again one read timeout from now
            self.got_data = False
            self.timer = self.pool.loop.call_later(read_timeout, self._read_timer, read_timeout)
            return
        self._fail(ReadTimeout(f"no data from the upstream for {read_timeout:g}s"))
        self.abort()

    # ------------------------------------------------------------ pulled by StreamResponse
    async def next_chunk(self) -> bytes:
        while not self.chunks:
            if self.error is not None:
                raise self.error
            if self.eof:
                return b""
            self.reader = r = self.pool.loop.create_future()
            try:
                await r
            finally:
                self.reader = None
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self.paused and self.buffered < LOW_WATER and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return chunk


class StreamResponse:
    """An answer whose body is read as it arrives: the part of aiohttp's `ClientResponse`
    the providers use (`status`, `headers`, `read()`, `content.iter_any()`, `content.readany()`,
    `content.at_eof()`, `release()`, `close()`). Read to its end, `release()` gives the
    connection back to the pool; released before that, or `close()`d, the connection closes,
    which is how an upstream generation is cancelled."""

    def __init__(self, pool: Http1Pool, conn: _Connection) -> None:
        self.status = conn.status
        self.headers = _header_map(conn.headers)
        self.content = self  # `resp.content.iter_any()`, as with aiohttp
        self._pool = pool
        self._conn: _Connection | None = conn
        self._decoder = _decoder(conn.headers)

    async def readany(self) -> bytes:
        """The next bytes of the body as they arrived (b"" at its end)."""
        conn = self._conn
        if conn is None:
            return b""
        chunk = await conn.next_chunk()
        if self._decoder is not None:
            chunk = self._decoder.decompress(chunk) if chunk else self._decoder.flush()
        return chunk

    async def iter_any(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self.readany()
            if not chunk:
                if self.at_eof():
                    return
                continue
            yield chunk

    def at_eof(self) -> bool:
        conn = self._conn
        return conn is None or (conn.eof and not conn.chunks)

    async def read(self) -> bytes:
        """The rest of the body."""
        parts = []
        while not self.at_eof():
            parts.append(await self.readany())
        return b"".join(parts)

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if not (conn.eof and not conn.chunks and conn.error is None):
            conn.abort()
        conn.end_exchange()
        self._pool._release(conn)

    def close(self) -> None:
        conn = self._conn
        if conn is not None:
            conn.abort()
        self.release()


def _header_map(raw: list[tuple[bytes, bytes]]) -> CIMultiDict[str]:
    return CIMultiDict([(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw])


def _wbits(headers: list[tuple[bytes, bytes]]) -> int | None:
    """zlib's `wbits` for the answer's Content-Encoding (gzip or deflate), None for identity."""
    for name, value in headers:
        if name.lower() == b"content-encoding":
            enc = value.strip().lower()
            if enc in (b"gzip", b"x-gzip"):
                return 16 + zlib.MAX_WBITS
            if enc == b"deflate":
                return zlib.MAX_WBITS
            if enc not in (b"", b"identity"):
                raise MalformedResponse(f"unsupported content-encoding {enc.decode('latin-1')!r}")
    return None


def _decode(headers: list[tuple[bytes, bytes]], body: list[bytes]) -> bytes:
    raw = body[0] if len(body) == 1 else b"".join(body)
    wbits = _wbits(headers)
    if wbits is None:
        return raw
    try:
        return zlib.decompress(raw, wbits)
    except zlib.error:
        if wbits != zlib.MAX_WBITS:
            raise
        return zlib.decompress(raw, -zlib.MAX_WBITS)  # raw deflate, as some servers send


def _decoder(headers: list[tuple[bytes, bytes]]) -> Any:
    """An incremental decoder for a compressed stream, or None."""
    wbits = _wbits(headers)
    return None if wbits is None else zlib.decompressobj(wbits)


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
            raise InvalidURL(f"not an http(s) URL: {base_url!r}")
        self.loop = asyncio.get_running_loop()
        self.host = u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = None
        if u.scheme == "https":
            self.ssl = ssl_context or ssl.create_default_context()
        self.prefix = u.path.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        if u.port is not None and u.port != (443 if u.scheme == "https" else 80):  # as curl and SigV4 do
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
        conn, answer = await self._send(path, body, headers, streaming=False)
        conn.end_exchange()
        self._release(conn)
        assert answer is not None
        return answer

    async def stream(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> StreamResponse:
        """POST `body`; returns once the answer's headers are in. The caller reads the body and
        `release()`s the response in a `finally` (see `StreamResponse`)."""
        conn, _ = await self._send(path, body, headers, streaming=True)
        try:
            return StreamResponse(self, conn)
        except BaseException:  # an encoding it cannot decode
            self._discard(conn)
            raise

    async def _send(self, path: str, body: bytes, headers: dict[str, str] | None,
                    streaming: bool) -> tuple[_Connection, Answer | None]:
        head = self._head(path, headers, len(body))
        conn = self._take_idle()
        reused = conn is not None
        if conn is None:
            conn = await self._connect()
        try:
            return conn, await conn.exchange(head, body, self.read_timeout, streaming)
        except UpstreamClosed:
            self._discard(conn)
            if not reused or conn.got_data:
                raise
            # an idle connection the upstream had closed as we sent: once more, on a new one
        except BaseException:  # cancelled, timed out, broken: the connection cannot be reused
            self._discard(conn)
            raise
        conn = await self._connect()
        try:
            return conn, await conn.exchange(head, body, self.read_timeout, streaming)
        except BaseException:
            self._discard(conn)
            raise

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

    def _discard(self, conn: _Connection) -> None:
        """An exchange that failed: its connection is closed, not reused."""
        conn.abort()
        conn.end_exchange()
        self._release(conn)

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
