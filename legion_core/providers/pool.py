"""A provider connection pool: httpx's API over the aiohttp transport (as
`legion_core.providers.http.make_client` builds it), plus `send()`, the request hot path, which
hands a ready `httpx.Request` straight to the transport. Skipping the client's URL merging,
cookie jar and redirect/auth machinery roughly halves the client CPU per request
(bench/provider_overhead.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from httpx_aiohttp import AiohttpTransport

from legion_core.errors import ProviderTimeout
from legion_core.providers.base import Provider
from legion_core.providers.http import timeouts_for
from legion_core.settings.models import ProviderSettings, TimeoutSettings


class Pool:
    def __init__(self, settings: ProviderSettings, base_url: str, headers: dict[str, str],
                 defaults: TimeoutSettings | None = None) -> None:
        limits = httpx.Limits(max_connections=settings.max_connections,
                              max_keepalive_connections=settings.max_connections, keepalive_expiry=30)
        self.transport = AiohttpTransport(limits=limits, trust_env=False)
        self.timeout = timeouts_for(settings, defaults)
        self.client = httpx.AsyncClient(base_url=base_url, headers=headers, transport=self.transport,
                                        timeout=self.timeout)
        self.loop = asyncio.get_running_loop()
        self._base = base_url.rstrip("/")
        self._headers = httpx.Headers(headers)
        self._timeout_ext: dict[str, Any] = self.timeout.as_dict()
        self._urls: dict[str, httpx.URL] = {}  # parsed once per path

    @property
    def usable(self) -> bool:
        """Bound to the running loop and open (a pool cannot move between loops)."""
        try:
            return self.loop is asyncio.get_running_loop() and not self.client.is_closed
        except RuntimeError:
            return False

    async def send(self, method: str, path: str, content: bytes | None = None,
                   headers: dict[str, str] | None = None) -> httpx.Response:
        """Send and return the response with its body unread: the caller reads and closes it.
        Raises httpx errors (connection, timeout)."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(self._base + path)
        h = self._headers.copy()
        if headers:
            h.update(headers)
        request = httpx.Request(method, url, headers=h, content=content,
                                extensions={"timeout": self._timeout_ext})
        response = await self.transport.handle_async_request(request)
        response.request = request
        return response

    async def read(self, method: str, path: str, content: bytes | None = None,
                   headers: dict[str, str] | None = None) -> tuple[httpx.Response, bytes]:
        """`send`, then the whole raw body (no content decoding: we never ask for compression);
        the connection goes back to the pool."""
        resp = await self.send(method, path, content, headers)
        try:
            body = b"".join([chunk async for chunk in resp.aiter_raw()])
        finally:
            await resp.aclose()
        return resp, body

    async def aclose(self) -> None:
        try:
            await self.client.aclose()
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
        if self._pool is None or not self._pool.usable:
            self._pool = Pool(self.settings, self.base_url or "", self._headers(), self.timeout_defaults)
        return self._pool

    def client(self) -> httpx.AsyncClient:
        """The pooled httpx client (off the hot path: health, discovery, token counting)."""
        return self.pool().client

    async def startup(self) -> None:
        self.client()

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
        """Await `coro` within the total timeout (connect and read timeouts bound each step)."""
        total = self.total_timeout()
        if total is None:
            return await coro
        try:
            async with asyncio.timeout(total):
                return await coro
        except TimeoutError:
            raise ProviderTimeout(f"{self.name}: no complete answer within timeout_total={total:g}s",
                                  provider=self.name) from None
