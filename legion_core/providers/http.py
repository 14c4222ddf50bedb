"""HTTP plumbing shared by providers: timeouts, transport-error mapping, Retry-After.

Providers talk through `providers.pool.Pool` (`providers.http1` on the hot path, httpx off it).
`make_client` builds a bare pooled `httpx.AsyncClient` over the aiohttp transport for plugins
that want only httpx: httpx's default pool collapses under concurrency (DESIGN.md measured 483
vs 1868 req/s at 32 connections). Timeouts come from settings (`llm.timeouts`, overridable per
provider).
"""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx
from aiohttp.http_exceptions import TransferEncodingError
from httpx_aiohttp import AiohttpTransport

from legion_core.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from legion_core.settings.models import ProviderSettings, TimeoutSettings


def timeouts_for(settings: ProviderSettings, defaults: TimeoutSettings | None = None) -> httpx.Timeout:
    d = defaults or TimeoutSettings()
    read = settings.timeout_read if settings.timeout_read is not None else d.read
    connect = settings.timeout_connect if settings.timeout_connect is not None else d.connect
    return httpx.Timeout(read, connect=connect, pool=connect)


def make_client(settings: ProviderSettings, *, base_url: str | None = None,
                headers: dict[str, str] | None = None, defaults: TimeoutSettings | None = None,
                **kw: Any) -> httpx.AsyncClient:
    """A pooled async client. Create it lazily (inside the running loop) and reuse it."""
    limits = httpx.Limits(max_connections=settings.max_connections,
                          max_keepalive_connections=settings.max_connections, keepalive_expiry=30)
    transport = AiohttpTransport(limits=limits, trust_env=False)
    return httpx.AsyncClient(base_url=base_url or "", headers=headers or {}, transport=transport,
                             timeout=timeouts_for(settings, defaults), **kw)


#: A connection that failed or broke, as opposed to a slow answer: refused, reset, closed early,
#: a body cut short: http1's are `ConnectionError`s (the hot path); aiohttp's and httpx's (off it).
BROKEN: tuple[type[BaseException], ...] = (
    ConnectionError, aiohttp.ClientOSError, aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
    TransferEncodingError, httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)


def transport_error(exc: BaseException, provider: str, url: str | None = None) -> ProviderError:
    """Map a connection-level failure to a typed error: a broken connection anywhere in the
    chain of causes is `ProviderUnavailable`, else a timeout is `ProviderTimeout`, else
    unavailable. `url` (the upstream's base URL) goes into the message when given.

    aiohttp's timeouts (`ServerTimeoutError`, `SocketTimeoutError`, `ConnectionTimeoutError`) are
    `TimeoutError`s. httpx-aiohttp reports every `aiohttp.ClientConnectionError` (refused, server
    disconnected) as `httpx.ConnectTimeout`, so an httpx timeout counts only when no aiohttp
    connection error lies underneath.
    """
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    if not any(isinstance(x, BROKEN) for x in chain):
        timed_out = any(isinstance(x, TimeoutError) for x in chain) or (
            isinstance(exc, httpx.TimeoutException)
            and not any(isinstance(x, aiohttp.ClientConnectionError) for x in chain[1:]))
        if timed_out:
            return ProviderTimeout(f"{provider}: upstream timed out" + (f" ({url})" if url else ""),
                                   provider=provider)
    return ProviderUnavailable(f"{provider}: upstream unreachable" + (f" at {url}" if url else "")
                               + f" ({type(chain[-1]).__name__})", provider=provider)


#: What the aiohttp hot path can raise for a failed exchange (map with `transport_error`).
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError, OSError)


def retry_after_seconds(headers: Any) -> float | None:
    raw = headers.get("retry-after") if headers is not None else None
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        import datetime as dt
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(raw)
            return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())
        except (TypeError, ValueError):
            return None
