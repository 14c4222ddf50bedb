"""A provider connection pool, one per provider instance and event loop.

Two faces over one purpose:

- the hot path, `read()` (a whole answer: every non-streamed chat call) and `post()` (a
  stream): `providers.http1`, a lean keep-alive HTTP/1.1 client on httptools, one set of
  connections for both. A whole-answer exchange cost aiohttp's client about 50 µs of CPU and
  http1 15 µs (`bench/provider_overhead.py --client`), on every routed request; httpx on top
  of aiohttp had cost as much again.
- `client()`: an `httpx.AsyncClient` (over the aiohttp transport) for everything off the hot
  path (health checks, catalogs, token counting), where httpx's conveniences are worth it.

`max_connections` bounds each of the two connection sets.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from httpx_aiohttp import AiohttpTransport

from legion_core import __version__
from legion_core.errors import ProviderTimeout
from legion_core.providers.base import Provider
from legion_core.providers.http import timeouts_for
from legion_core.providers.http1 import Http1Pool, StreamResponse
from legion_core.settings.models import ProviderSettings, TimeoutSettings

#: How long a finished stream's connection may take to deliver the end of its body (the chunked
#: terminator after the last event) before it is closed instead of reused, and how many stray
#: bytes after the last event are read before giving up on it. The stream's caller waits for the
#: end at most DRAIN_WAIT seconds (upstreams send it at once); past that it is read in the background.
DRAIN_WAIT = 0.05
DRAIN_SECONDS = 5.0
DRAIN_BYTES = 64 * 1024
_draining: set[asyncio.Task[None]] = set()  # referenced until done (the loop keeps weak ones)
USER_AGENT = f"legion/{__version__}"


async def release_stream(resp: StreamResponse, *, complete: bool) -> None:
    """Done with a streamed response. `complete`: its last event (`[DONE]`, `message_stop`,
    `done: true`) was read. The upstream sends the end of the body (for chunked encoding, the
    terminator) just after that event, and often in a later packet: releasing at once would
    close a connection that is about to become reusable, and against a TLS upstream every
    streamed request would pay a new handshake. So the rest is read in the background and the
    connection then goes back to the pool (waiting for it briefly, so that the caller's next
    request finds the connection free). Abandoned part-way (`complete=False`), the response
    is released now, which closes the connection: that is how an upstream generation is
    cancelled."""
    if not complete or resp.content.at_eof():
        resp.release()
        return
    task = asyncio.get_running_loop().create_task(_drain(resp))
    _draining.add(task)
    task.add_done_callback(_draining.discard)
    await asyncio.wait((task,), timeout=DRAIN_WAIT)  # the task goes on alone past that


async def _drain(resp: StreamResponse) -> None:
    left = DRAIN_BYTES
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while left > 0:
                chunk = await resp.content.readany()
                if not chunk:
                    break
                left -= len(chunk)
    except (Exception, asyncio.CancelledError):  # noqa: BLE001 - any failure: just do not reuse it
        resp.close()
        return
    if resp.content.at_eof():
        resp.release()  # the body ended: the connection goes back to the pool
    else:
        resp.close()  # an upstream still talking after its last event: not reusable


class Pool:
    def __init__(self, settings: ProviderSettings, base_url: str, headers: dict[str, str],
                 defaults: TimeoutSettings | None = None) -> None:
        self.settings = settings
        self.timeout = timeouts_for(settings, defaults)
        self.loop = asyncio.get_running_loop()
        self._base = base_url.rstrip("/")
        self._header_dict = dict(headers)
        self._client: httpx.AsyncClient | None = None
        self._lean: Http1Pool | None = None  # made on first use (inside the running loop)
        self._closed = False

    # ------------------------------------------------------------ the hot path (http1)
    @property
    def lean(self) -> Http1Pool:
        p = self._lean
        if p is None:
            p = self._lean = Http1Pool(
                self._base, {"User-Agent": USER_AGENT, **self._header_dict},
                limit=self.settings.max_connections, connect_timeout=self.timeout.connect,
                read_timeout=self.timeout.read, keepalive=30.0)
        return p

    async def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> StreamResponse:
        """POST `body` to `base_url + path`; returns at the answer's headers. The caller reads
        the body and `release()`s the response in a `finally` (`release_stream` for streams):
        read to the end, the connection goes back to the pool; abandoned part-way, it is
        closed, which is how an upstream generation gets cancelled. Raises
        `providers.http.TRANSPORT_ERRORS`; `providers.http.transport_error` maps them.
        `headers` add to (or replace) the pool's own for this call."""
        return await self.lean.stream(path, body, headers)

    async def read(self, path: str, body: bytes, headers: dict[str, str] | None = None,
                   ) -> tuple[int, Any, bytes]:
        """POST, then the whole answer: (status, headers, raw body); the connection goes back
        to the pool. Raises `TRANSPORT_ERRORS` as `post` does."""
        return await self.lean.post(path, body, headers)

    # ------------------------------------------------------------ off the hot path (httpx)
    @property
    def client(self) -> httpx.AsyncClient:
        c = self._client
        if c is None:
            limits = httpx.Limits(max_connections=self.settings.max_connections,
                                  max_keepalive_connections=self.settings.max_connections,
                                  keepalive_expiry=30)
            c = self._client = httpx.AsyncClient(base_url=self._base, headers=self._header_dict,
                                                 transport=AiohttpTransport(limits=limits, trust_env=False),
                                                 timeout=self.timeout)
        return c

    # ------------------------------------------------------------ lifecycle
    @property
    def usable(self) -> bool:
        """Bound to the running loop and open (a pool cannot move between loops)."""
        try:
            return self.loop is asyncio.get_running_loop() and not self._closed
        except RuntimeError:
            return False

    async def aclose(self) -> None:
        self._closed = True
        client, self._client = self._client, None
        lean, self._lean = self._lean, None
        try:
            if lean is not None:
                await lean.aclose()
            if client is not None:
                await client.aclose()
        except RuntimeError:  # opened on a loop that has gone away
            pass


class PooledProvider(Provider):
    """A provider that talks HTTP through one `Pool` per event loop. Subclasses supply
    `_headers()`; they get lazy pool creation, `llm.timeouts` defaults, the `timeout_total`
    cap (`_bounded`) and closing."""

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        super().__init__(name, settings)
        self._pool: Pool | None = None
        #: The kernel's `llm.timeouts`, under this provider's own `timeout_*` (set at startup).
        self.timeout_defaults: TimeoutSettings | None = None

    def _headers(self) -> dict[str, str]:
        return {}

    def pool(self) -> Pool:
        """The pool for the running loop (created lazily, recreated if the loop changed)."""
        p = self._pool
        if p is None or not p.usable:
            p = self._pool = Pool(self.settings, self.base_url or "", self._headers(), self.timeout_defaults)
        return p

    def client(self) -> httpx.AsyncClient:
        """The pooled httpx client (off the hot path: health, discovery, token counting)."""
        return self.pool().client

    async def startup(self) -> None:
        self.pool()

    async def apply_timeouts(self, defaults: TimeoutSettings) -> None:
        """Use the kernel's `llm.timeouts` where this provider sets none (the pool is rebuilt)."""
        self.timeout_defaults = defaults
        await self.aclose()

    def total_timeout(self) -> float | None:
        """`timeout_total`, else `llm.timeouts.total`: the cap on one whole `chat()` call."""
        if self.settings.timeout_total is not None:
            return self.settings.timeout_total
        return self.timeout_defaults.total if self.timeout_defaults is not None else None

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()

    async def _bounded(self, coro: Any) -> Any:
        """Await `coro` within the total timeout (connect and read timeouts bound each step).

        `asyncio.timeout()`, reduced to what this needs: one timer that cancels the task, and a
        cancellation told apart from anyone else's by `uncancel()`. It runs on every request;
        the general context manager cost as much as the rest of the provider call's Python."""
        total = self.total_timeout()
        if total is None:
            return await coro
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always inside a task under asyncio
            return await coro
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        loop = task.get_loop()
        handle = loop.call_at(loop.time() + total, expire)
        try:
            return await coro
        except asyncio.CancelledError:
            if expired and task.uncancel() == 0:  # our timer's cancellation, and only ours
                raise ProviderTimeout(f"{self.name}: no complete answer within timeout_total={total:g}s",
                                      provider=self.name) from None
            raise
        finally:
            handle.cancel()
