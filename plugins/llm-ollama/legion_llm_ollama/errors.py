"""Ollama failures -> typed kernel errors. Ollama's errors are `{"error": "<text>"}`, so the
status code and a few well-known phrases decide the type."""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx
from aiohttp.http_exceptions import TransferEncodingError

from legion_core.errors import (
    ContentPolicy,
    ContextOverflow,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from legion_core.log import scrub
from legion_core.providers.http import retry_after_seconds

_OVERFLOW = ("context length", "context window", "too long", "exceeds the context")
_POLICY = ("content policy", "moderation", "safety filter")


def from_error(status: int | None, body: Any, *, provider: str, headers: Any = None) -> ProviderError:
    msg = body.get("error") if isinstance(body, dict) else None
    message = scrub(str(msg if msg is not None else (body or ""))).strip()[:500]
    low = message.lower()
    status = status or 500
    text = f"{provider}: ollama HTTP {status}: {message or 'no message'}"
    kw: dict[str, Any] = {"provider": provider, "upstream_status": status}
    if status in (401, 403):
        return ProviderAuthError(text, **kw)
    if status == 429:
        return RateLimited(text, retry_after=retry_after_seconds(headers), **kw)
    if status == 404 or ("not found" in low and "model" in low):
        # The model is not pulled *here*; another candidate may have it.
        return ProviderError(text, **kw)
    if status == 413 or any(h in low for h in _OVERFLOW):
        return ContextOverflow(text, **kw)
    if any(h in low for h in _POLICY):
        return ContentPolicy(text, **kw)
    if status in (408, 504):
        return ProviderTimeout(text, **kw)
    if 400 <= status < 500:
        return ProviderBadRequest(text, **kw)
    return ProviderUnavailable(text, **kw)


#: A connection that failed or broke, as opposed to a slow answer: refused, reset, closed early,
#: a body cut short. aiohttp's (the hot path, `Pool.post`) and httpx's (discovery, health).
_BROKEN: tuple[type[BaseException], ...] = (
    ConnectionError, aiohttp.ClientOSError, aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
    TransferEncodingError, httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)


def from_transport(exc: BaseException, *, provider: str, url: str) -> ProviderError:
    """Connection-level failure. aiohttp's timeouts (`ServerTimeoutError`, `SocketTimeoutError`,
    `ConnectionTimeoutError`) are `TimeoutError`s. httpx-aiohttp (off the hot path) reports a refused
    connection as `ConnectTimeout`, so a broken connection underneath wins over "timed out"."""
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(chain) < 6:
        chain.append(e)
        e = e.__cause__ or e.__context__
    broken = any(isinstance(x, _BROKEN) for x in chain)
    timed_out = isinstance(exc, httpx.TimeoutException) or any(isinstance(x, TimeoutError) for x in chain)
    if timed_out and not broken:
        return ProviderTimeout(f"{provider}: upstream timed out ({url})", provider=provider)
    return ProviderUnavailable(f"{provider}: unreachable at {url} ({type(exc).__name__})", provider=provider)
