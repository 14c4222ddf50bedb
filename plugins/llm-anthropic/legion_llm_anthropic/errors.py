"""Anthropic failures -> typed kernel errors (the router decides failover from the type alone)."""

from __future__ import annotations

from typing import Any

from legion_core.errors import (
    ContentPolicy,
    ContextOverflow,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    error_for_status,
)
from legion_core.log import scrub
from legion_core.providers.http import retry_after_seconds

_OVERFLOW_HINTS = ("prompt is too long", "too many tokens", "context window", "context length",
                   "exceeds the maximum")
_POLICY_HINTS = ("content filtering", "content policy", "usage policy")


def _status_for(err_type: str) -> int | None:
    return {"authentication_error": 401, "permission_error": 403, "not_found_error": 404,
            "request_too_large": 413, "rate_limit_error": 429, "api_error": 500,
            "overloaded_error": 529, "invalid_request_error": 400}.get(err_type)


def from_error_body(status: int | None, body: Any, *, provider: str,
                    headers: Any = None) -> ProviderError:
    """Map an error response (or an SSE `error` event) to a typed error.

    `body` is the decoded `{"type": "error", "error": {"type", "message"}}`, or anything else
    when the upstream (or a proxy in front of it) answered with something unexpected.
    """
    err = body.get("error") if isinstance(body, dict) else None
    err_type = err.get("type", "") if isinstance(err, dict) else ""
    message = scrub(str(err.get("message", ""))) if isinstance(err, dict) else ""
    status = status or _status_for(err_type) or 500
    text = f"{provider}: anthropic {err_type or status}: {message or 'no message'}"
    low = message.lower()
    kw: dict[str, Any] = {"provider": provider, "upstream_status": status}
    if err_type in ("authentication_error", "permission_error") or status in (401, 403):
        return ProviderAuthError(text, **kw)
    if err_type == "rate_limit_error" or status == 429:
        return RateLimited(text, retry_after=retry_after_seconds(headers), **kw)
    if err_type == "overloaded_error" or status == 529:
        return ProviderUnavailable(text, **kw)
    if err_type == "request_too_large" or status == 413 or any(h in low for h in _OVERFLOW_HINTS):
        return ContextOverflow(text, **kw)
    if any(h in low for h in _POLICY_HINTS):
        return ContentPolicy(text, **kw)
    if err_type == "not_found_error" or status == 404:
        # An unknown model here may exist elsewhere: let the router try another candidate.
        return ProviderError(text, **kw)
    if err_type == "invalid_request_error" or 400 <= status < 500:
        return ProviderBadRequest(text, **kw)
    if err_type == "api_error":
        return ProviderUnavailable(text, **kw)
    return error_for_status(status, text, provider=provider,
                            retry_after=retry_after_seconds(headers))
