"""Ollama failures -> typed kernel errors. Ollama's errors are `{"error": "<text>"}`, so the
status code and a few well-known phrases decide the type."""

from __future__ import annotations

from typing import Any

import httpx

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


def from_transport(exc: BaseException, *, provider: str, url: str) -> ProviderError:
    """Connection-level failure. httpx-aiohttp reports a refused connection as ConnectTimeout, so
    the underlying aiohttp/OS error decides between "unreachable" and "timed out"."""
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(chain) < 6:
        chain.append(e)
        e = e.__cause__ or e.__context__
    names = {type(x).__name__ for x in chain}
    broken = any(isinstance(x, ConnectionError) for x in chain) or bool(
        names & {"ClientConnectorError", "ServerDisconnectedError", "ClientOSError", "ClientPayloadError",
                 "ConnectError", "ReadError", "RemoteProtocolError", "TransferEncodingError"})
    timed_out = isinstance(exc, httpx.TimeoutException) or any(isinstance(x, TimeoutError) for x in chain)
    if timed_out and not broken:
        return ProviderTimeout(f"{provider}: upstream timed out ({url})", provider=provider)
    return ProviderUnavailable(f"{provider}: unreachable at {url} ({type(exc).__name__})", provider=provider)
