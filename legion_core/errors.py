"""Typed errors. The router decides between failover and giving up from these types alone.

Provider plugins map their upstream's failures to a `ProviderError` subclass; the
gateway maps any `LegionError` to a status code and the caller's dialect. Messages
must never contain a secret value: build them from names and references only.
"""

from __future__ import annotations

from typing import Any


class LegionError(Exception):
    """Base class. `status` is the HTTP status the gateway answers with."""

    status: int = 500
    kind: str = "internal"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class SettingsError(LegionError):
    """Malformed settings: names the file, the key path, the value's type and what was expected."""

    status = 500
    kind = "settings"

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        key: str | None = None,
        got: str | None = None,
        expected: str | None = None,
    ) -> None:
        parts = []
        if file:
            parts.append(file)
        if key:
            parts.append(f"key '{key}'")
        where = ": ".join(parts)
        full = f"{where}: {message}" if where else message
        if got or expected:
            full += f" (got {got or '?'}; expected {expected or '?'})"
        super().__init__(full, file=file, key=key, got=got, expected=expected)
        self.file, self.key, self.got, self.expected = file, key, got, expected


class SecretError(LegionError):
    """A secret reference could not be resolved. Carries the reference, never a value."""

    kind = "secret"


class PluginError(LegionError):
    kind = "plugin"


class BadRequest(LegionError):
    """The caller's request is malformed or asks for something unsupported."""

    status = 400
    kind = "invalid_request"


class NotFound(LegionError):
    status = 404
    kind = "not_found"


class AuthenticationFailed(LegionError):
    """The caller (not an upstream) failed gateway auth."""

    status = 401
    kind = "authentication"


class RequestRefused(LegionError):
    """A before-chat guard refused the request (e.g. a budget is spent)."""

    status = 403
    kind = "refused"

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None,
                 **details: Any) -> None:
        super().__init__(message, **details)
        if status is not None:
            self.status = status
        self.retry_after = retry_after


class NoProviderAvailable(LegionError):
    """Routing found no candidate. `decision` explains why each one was dropped."""

    status = 503
    kind = "no_provider"

    def __init__(self, message: str, decision: Any = None, attempts: Any = None) -> None:
        super().__init__(message)
        self.decision = decision
        self.attempts = attempts or []


class EscalationExhausted(LegionError):
    """Every escalation attempt failed its quality check (or errored)."""

    status = 502
    kind = "escalation_exhausted"

    def __init__(self, message: str, history: Any = None) -> None:
        super().__init__(message)
        self.history = history or []


# ------------------------------------------------------------------ provider errors
class ProviderError(LegionError):
    """An upstream failure. `failover` says whether trying another candidate can help."""

    status = 502
    kind = "provider"
    failover: bool = True

    def __init__(self, message: str, *, provider: str = "", upstream_status: int | None = None,
                 **details: Any) -> None:
        super().__init__(message, **details)
        self.provider = provider
        self.upstream_status = upstream_status


class ProviderAuthError(ProviderError):
    """Legion's credential for this upstream was rejected. Another provider may still work."""

    kind = "auth"
    status = 502


class RateLimited(ProviderError):
    kind = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ContextOverflow(ProviderError):
    """The prompt does not fit. From a provider: a candidate with a larger window may still take
    it (failover). From the router (`decision` set, no failover): no candidate the request allows
    has a window large enough, so the caller must send less; a 503 would invite useless retries."""

    kind = "context_overflow"
    status = 400

    def __init__(self, message: str, *, decision: Any = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.decision = decision
        if decision is not None:
            self.failover = False


class ContentPolicy(ProviderError):
    """The upstream refused on content grounds: failing over would launder the request."""

    kind = "content_policy"
    status = 400
    failover = False


class ProviderUnavailable(ProviderError):
    """Connection refused, DNS failure, 5xx."""

    kind = "unavailable"
    status = 503


class ProviderTimeout(ProviderError):
    kind = "timeout"
    status = 504


class ProviderBadRequest(ProviderError):
    """The upstream says our request is invalid: the same request will fail anywhere."""

    kind = "bad_request"
    status = 400
    failover = False


class StreamInterrupted(ProviderError):
    """A stream broke after its first token; it cannot be failed over transparently."""

    kind = "stream_interrupted"
    status = 502
    failover = False


PROVIDER_ERROR_KINDS: dict[str, type[ProviderError]] = {
    cls.kind: cls
    for cls in (
        ProviderAuthError,
        RateLimited,
        ContextOverflow,
        ContentPolicy,
        ProviderUnavailable,
        ProviderTimeout,
        ProviderBadRequest,
        StreamInterrupted,
    )
}


def error_for_status(status: int, message: str, *, provider: str = "",
                     retry_after: float | None = None) -> ProviderError:
    """Map an upstream HTTP status to a typed error. Providers refine with body details."""
    if status in (401, 403):
        return ProviderAuthError(message, provider=provider, upstream_status=status)
    if status == 429:
        return RateLimited(message, provider=provider, upstream_status=status, retry_after=retry_after)
    if status == 413:
        return ContextOverflow(message, provider=provider, upstream_status=status)
    if status in (408, 504):
        return ProviderTimeout(message, provider=provider, upstream_status=status)
    if 400 <= status < 500:
        return ProviderBadRequest(message, provider=provider, upstream_status=status)
    return ProviderUnavailable(message, provider=provider, upstream_status=status)
