"""Ollama failures -> typed kernel errors. Ollama's errors are `{"error": "<text>"}`, so the
status code and a few well-known phrases decide the type."""

from __future__ import annotations

from typing import Any

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
