"""The provider's connection pool: httpx's API over the aiohttp transport (as
`legion_core.providers.http.make_client` builds it), plus `send()`, the request hot path, which
hands a ready `httpx.Request` straight to the transport. Skipping the client's URL merging,
cookie jar and redirect/auth machinery roughly halves the client CPU per request
(bench/provider_overhead.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from httpx_aiohttp import AiohttpTransport

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
