"""Bedrock failures → typed kernel errors.

HTTP errors carry the type in the `x-amzn-ErrorType` header (`ThrottlingException:http://...`)
and a JSON `{"message": ...}` body; stream failures arrive as exception frames whose
`:exception-type` is the same name in lower camel case (`throttlingException`).
"""

from __future__ import annotations

import re
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
    error_for_status,
)

_OVERFLOW = re.compile(r"too long|too many (input )?tokens|context (length|window)|input length|"
                       r"maximum context|exceeds? the (model's )?max", re.I)
_POLICY = re.compile(r"content filter|blocked by|guardrail|responsible ai|content policy", re.I)

AUTH_TYPES = frozenset({"accessdeniedexception", "unrecognizedclientexception", "invalidsignatureexception",
                        "expiredtokenexception", "missingauthenticationtokenexception",
                        "incompletesignatureexception", "invalidclienttokenid"})
THROTTLE_TYPES = frozenset({"throttlingexception", "servicequotaexceededexception", "toomanyrequestsexception"})
UNAVAILABLE_TYPES = frozenset({"serviceunavailableexception", "internalserverexception", "modelnotreadyexception",
                               "modelerrorexception", "modelstreamerrorexception"})


def error_type(headers: Any, body: Any) -> str:
    """The bare exception name from `x-amzn-ErrorType` (or the body's `__type`)."""
    raw = ""
    if headers is not None:
        raw = headers.get("x-amzn-errortype") or headers.get("x-amzn-ErrorType") or ""
    if not raw and isinstance(body, dict):
        raw = str(body.get("__type") or body.get("code") or "")
    raw = raw.split(":", 1)[0]
    return raw.rsplit("#", 1)[-1]


def map_error(etype: str, message: str, *, provider: str, status: int | None = None,
              retry_after: float | None = None) -> ProviderError:
    """One mapping for HTTP errors and exception frames. `etype` in either casing."""
    t = etype.lower()
    text = f"{provider}: Bedrock {etype or status}: {message}".strip()
    kw: dict[str, Any] = {"provider": provider, "upstream_status": status}
    if t in THROTTLE_TYPES:
        return RateLimited(text, retry_after=retry_after, **kw)
    if t in AUTH_TYPES:
        return ProviderAuthError(text, **kw)
    if t == "validationexception":
        if _OVERFLOW.search(message):
            return ContextOverflow(text, **kw)
        if _POLICY.search(message):
            return ContentPolicy(text, **kw)
        return ProviderBadRequest(text, **kw)
    if t == "modeltimeoutexception":
        return ProviderTimeout(text, **kw)
    if t in UNAVAILABLE_TYPES:
        return ProviderUnavailable(text, **kw)
    if t == "resourcenotfoundexception":
        return ProviderBadRequest(text, **kw)
    if status is not None:
        return error_for_status(status, text, provider=provider, retry_after=retry_after)
    return ProviderUnavailable(text, **kw)
