"""One error, three shapes: OpenAI's error object, Anthropic's, and the native one.

Every failure the gateway answers with goes through `render_error`, so a client always
gets the error shape of the API it called, a status code that matches the failure,
and a message that says what to fix. Unexpected exceptions become a 500 in the same
shape that carries the request id (never a bare 500, never a traceback on the wire).
"""

from __future__ import annotations

from typing import Any

import orjson

from legion_core.errors import (
    LegionError,
    NoProviderAvailable,
    RateLimited,
    RequestRefused,
)
from legion_core.log import scrub

Dialect = str  # "openai" | "anthropic" | "native"


class GatewayError(LegionError):
    """An error raised by the gateway itself (bad input, auth, size limits)."""

    def __init__(self, message: str, *, status: int = 400, kind: str = "invalid_request",
                 param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.param = param
        self.code = code
        self.headers = headers or {}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(message, status=400, kind="invalid_request", param=param, code=code)


def not_found(message: str, code: str = "not_found") -> GatewayError:
    return GatewayError(message, status=404, kind="not_found", code=code)


def unauthorized(message: str) -> GatewayError:
    return GatewayError(message, status=401, kind="authentication", code="invalid_api_key")


def too_large(limit: int) -> GatewayError:
    return GatewayError(
        f"request body is larger than the gateway's limit of {limit} bytes; send a smaller "
        "request or raise llm.api.max_body_bytes", status=413, kind="request_too_large",
        code="request_too_large")


# kind -> (OpenAI error type, Anthropic error type)
_TYPES: dict[str, tuple[str, str]] = {
    "invalid_request": ("invalid_request_error", "invalid_request_error"),
    "bad_request": ("invalid_request_error", "invalid_request_error"),
    "context_overflow": ("invalid_request_error", "invalid_request_error"),
    "content_policy": ("invalid_request_error", "invalid_request_error"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "authentication": ("authentication_error", "authentication_error"),
    "refused": ("permission_error", "permission_error"),
    "not_found": ("not_found_error", "not_found_error"),
    "rate_limited": ("rate_limit_error", "rate_limit_error"),
    "no_provider": ("service_unavailable", "overloaded_error"),
    "unavailable": ("service_unavailable", "overloaded_error"),
    "timeout": ("timeout", "api_error"),
    "auth": ("upstream_error", "api_error"),
    "stream_interrupted": ("upstream_error", "api_error"),
    "escalation_exhausted": ("upstream_error", "api_error"),
    "provider": ("upstream_error", "api_error"),
    "method_not_allowed": ("invalid_request_error", "invalid_request_error"),
}


class ErrorInfo:
    """The dialect-independent facts about a failure."""

    __slots__ = ("status", "kind", "message", "param", "code", "headers", "extra")

    def __init__(self, status: int, kind: str, message: str, *, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        self.status = status
        self.kind = kind
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}
        self.extra = extra or {}


def describe(exc: BaseException, request_id: str) -> ErrorInfo:
    """Facts about any exception; unexpected ones become an internal error naming the request id."""
    if isinstance(exc, GatewayError):
        return ErrorInfo(exc.status, exc.kind, scrub(exc.message), param=exc.param, code=exc.code,
                         headers=dict(exc.headers))
    if isinstance(exc, LegionError):
        status = int(getattr(exc, "status", 500) or 500)
        kind = exc.kind
        headers: dict[str, str] = {}
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(exc, RateLimited | RequestRefused) and retry_after:
            headers["retry-after"] = str(max(1, round(float(retry_after))))
        if isinstance(exc, RequestRefused) and status == 429:
            kind = "rate_limited"
        extra: dict[str, Any] = {}
        if isinstance(exc, NoProviderAvailable):
            status, kind = _all_failed_alike(exc, status, kind)
        decision = getattr(exc, "decision", None)  # NoProviderAvailable, the router's ContextOverflow
        if decision is not None:
            dump = getattr(decision, "model_dump", None)
            if dump is not None:
                extra["decision"] = dump(mode="json")
        if status >= 500 and kind in ("internal", "settings", "secret", "plugin"):
            message = f"internal error (request id {request_id}); the gateway log has the details"
            return ErrorInfo(500, "internal", message, code="internal_error")
        return ErrorInfo(status, kind, scrub(exc.message), code=kind, headers=headers, extra=extra)
    return ErrorInfo(500, "internal",
                     f"internal error (request id {request_id}); the gateway log has the details",
                     code="internal_error")


def _all_failed_alike(exc: NoProviderAvailable, status: int, kind: str) -> tuple[int, str]:
    """When every candidate failed the same way (all rate limited, all timed out), say so:
    a client retries a 429 after its Retry-After, which a generic 503 would not tell it."""
    kinds = {getattr(a, "error_kind", None) for a in exc.attempts
             if getattr(a, "outcome", None) == "failed"}
    if len(kinds) == 1:
        only = next(iter(kinds))
        if only == "rate_limited":
            return 429, "rate_limited"
        if only == "timeout":
            return 504, "timeout"
    return status, kind


def openai_body(info: ErrorInfo, request_id: str) -> dict[str, Any]:
    etype = _TYPES.get(info.kind, ("server_error", "api_error"))[0]
    return {"error": {"message": info.message, "type": etype, "param": info.param,
                      "code": info.code or info.kind}, "request_id": request_id}


def anthropic_body(info: ErrorInfo, request_id: str) -> dict[str, Any]:
    etype = _TYPES.get(info.kind, ("server_error", "api_error"))[1]
    return {"type": "error", "error": {"type": etype, "message": info.message},
            "request_id": request_id}


def native_body(info: ErrorInfo, request_id: str) -> dict[str, Any]:
    err: dict[str, Any] = {"kind": info.kind, "message": info.message, "status": info.status,
                           "request_id": request_id}
    if info.param:
        err["param"] = info.param
    err.update(info.extra)
    return {"error": err}


_BODIES = {"openai": openai_body, "anthropic": anthropic_body, "native": native_body}


def error_body(dialect: Dialect, info: ErrorInfo, request_id: str) -> dict[str, Any]:
    return _BODIES.get(dialect, native_body)(info, request_id)


def error_bytes(dialect: Dialect, info: ErrorInfo, request_id: str) -> bytes:
    return orjson.dumps(error_body(dialect, info, request_id))


def validation_message(exc: Any, prefix: str = "") -> tuple[str, str | None]:
    """A pydantic ValidationError as one readable sentence, plus the first bad field's path."""
    parts: list[str] = []
    first: str | None = None
    for e in exc.errors(include_url=False)[:5]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if not _is_union_tag(x))
        loc = f"{prefix}{loc}" if loc else (prefix.rstrip(".") or "body")
        first = first or loc
        msg = e.get("msg", "invalid")
        if e.get("type") == "extra_forbidden":
            msg = "unknown or unsupported parameter; remove it"
        elif e.get("type") == "missing":
            msg = "required field is missing"
        parts.append(f"{loc}: {msg}")
    more = len(exc.errors()) - len(parts)
    if more > 0:
        parts.append(f"(and {more} more)")
    return "; ".join(parts), first


def _is_union_tag(x: Any) -> bool:
    # pydantic puts union member names ("str", "list[...]", "function-after[...]") into locations
    return isinstance(x, str) and ("[" in x or x in {"str", "int", "float", "bool", "dict", "list"})
