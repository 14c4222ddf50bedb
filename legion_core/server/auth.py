"""Gateway authentication: `Authorization: Bearer <key>` or `x-api-key: <key>`.

Keys come from `llm.api.auth.api_keys` (secret references, resolved once at boot). A
presented token is compared with *every* key using `hmac.compare_digest`, so the time
taken says nothing about which key (or how much of one) matched.

`pass_through` forwards the client's token upstream instead of Legion's own credential.
With auth also enabled, the client sends its Legion key in one header and its upstream
token in the other (`x-api-key: <legion key>` + `Authorization: Bearer <upstream>`, or the
reverse); the header that matched a Legion key is never forwarded.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from legion_core.log import get_logger, redact
from legion_core.settings.models import AuthSettings

log = get_logger("legion.gateway.auth")


@dataclass(frozen=True)
class AuthResult:
    ok: bool
    #: A stable, non-secret id of the key that matched (`key-<sha256 prefix>`), for audit/metrics.
    key_id: str | None = None
    #: The client's token to forward upstream (pass_through only).
    forward_token: str | None = None
    reason: str = ""


def resolve_keys(refs: Iterable[str | list[str]], plugins: Any = None) -> list[str]:
    """Resolve secret references to key values. Uses the kernel's resolver when present."""
    refs = list(refs)
    if not refs:
        return []
    try:
        from legion_core.secrets import resolve_api_keys, schemes_for
    except ImportError:  # the kernel's resolver is missing: env:// and literals only
        return [k for k in (_resolve_one(r) for r in refs) if k]
    return [k for k in resolve_api_keys(refs, schemes_for(plugins)) if k]


def _resolve_one(ref: str | list[str]) -> str | None:
    """Fallback resolver (env:// and literals; arrays are fallback chains)."""
    chain = ref if isinstance(ref, list) else [ref]
    for r in chain:
        if not isinstance(r, str) or not r:
            continue
        if r.startswith("env://"):
            v = os.environ.get(r[len("env://"):])
            if v:
                return v
            continue
        if "://" in r:
            log.warning("api key reference scheme not supported by the fallback resolver",
                        reference=r.split("://", 1)[0] + "://…")
            continue
        return r
    return None


def key_id(key: str) -> str:
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:12]


class Authenticator:
    """Checks the headers of a request. Build once at boot; `check()` is on the hot path."""

    def __init__(self, settings: AuthSettings, keys: list[str]) -> None:
        self.enabled = settings.enabled
        self.pass_through = settings.pass_through
        self._keys = [(k.encode(), key_id(k)) for k in keys]
        for k in keys:
            redact(k)
        if self.enabled and not self._keys:
            log.warning("gateway auth is enabled but no api key resolved: every request will get 401")

    @classmethod
    def from_settings(cls, settings: AuthSettings, plugins: Any = None) -> Authenticator:
        keys = resolve_keys(settings.api_keys, plugins) if settings.enabled else []
        return cls(settings, keys)

    def _match(self, token: str) -> str | None:
        tok = token.encode()
        found: str | None = None
        for k, kid in self._keys:  # no early exit: constant time in which key matched
            if hmac.compare_digest(tok, k):
                found = kid
        return found

    def check(self, authorization: str | None, x_api_key: str | None) -> AuthResult:
        bearer = _bearer(authorization)
        if not self.enabled:
            fwd = (bearer or x_api_key) if self.pass_through else None
            return AuthResult(True, None, fwd)
        if bearer is None and not x_api_key:
            return AuthResult(False, reason="missing API key: send 'Authorization: Bearer <key>' "
                                            "or 'x-api-key: <key>'")
        kid_b = self._match(bearer) if bearer else None
        kid_x = self._match(x_api_key) if x_api_key else None
        kid = kid_b or kid_x
        if kid is None:
            return AuthResult(False, reason="invalid API key: the key presented is not one of "
                                            "llm.api.auth.api_keys")
        fwd = None
        if self.pass_through:
            fwd = x_api_key if kid_b else bearer
            if fwd and self._match(fwd):
                fwd = None  # both headers held Legion keys: nothing to forward
        return AuthResult(True, kid, fwd)


def _bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None
