"""Routing hints a caller can give in any dialect, and the fast builders for internal types.

Intent arrives in the `x-legion-intent` header (`privacy=strict,capability=reasoning`) or in
an extra body field `legion: {intent: {...}, tier, provider, cache, escalate}`; the body wins
where both are given. `Cache-Control: no-cache` bypasses the tier-0 cache.

The builders hand pydantic already-built instances: nested models are passed through as they
are (pydantic does not re-validate instances), so building the internal request costs a few
microseconds. (`model_construct` looks cheaper but is not: it inspects every default factory's
signature on each call, ~30x slower here.)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from legion_core.server.errors import bad_request
from legion_core.types import ChatRequest, Intent, Message, TextBlock

_INTENT_VALUES: dict[str, tuple[str, ...]] = {
    "privacy": ("normal", "strict"),
    "capability": ("basic", "moderate", "reasoning"),
    "cost": ("minimize", "normal"),
}
DEFAULT_INTENT = Intent()


class IntentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    privacy: Literal["normal", "strict"] | None = None
    capability: Literal["basic", "moderate", "reasoning"] | None = None
    cost: Literal["minimize", "normal"] | None = None


class LegionExtras(BaseModel):
    """The `legion` body field (same in every dialect)."""

    model_config = ConfigDict(extra="forbid")

    intent: IntentIn | None = None
    tier: str | None = None
    provider: str | None = None
    cache: bool | None = None
    escalate: bool | None = None
    max_escalations: int | None = None
    session_id: str | None = None
    caller: str | None = None
    metadata: dict[str, Any] | None = None


def parse_intent_header(value: str | None) -> dict[str, str]:
    """`privacy=strict, capability=reasoning` → dict; bad keys or values → 400 naming the fix."""
    if not value:
        return {}
    out: dict[str, str] = {}
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        k, sep, v = part.partition("=")
        k, v = k.strip().lower(), v.strip().lower()
        allowed = _INTENT_VALUES.get(k)
        if not sep or allowed is None:
            raise bad_request(
                f"x-legion-intent: cannot read {part!r}; use key=value pairs separated by commas with "
                f"keys {', '.join(_INTENT_VALUES)} (e.g. 'privacy=strict,capability=reasoning')",
                param="x-legion-intent")
        if v not in allowed:
            raise bad_request(f"x-legion-intent: {k} must be one of {', '.join(allowed)} (got {v!r})",
                              param="x-legion-intent")
        out[k] = v
    return out


def build_intent(header: str | None, extras: LegionExtras | None) -> Intent:
    fields = parse_intent_header(header)
    if extras is not None and extras.intent is not None:
        fields.update({k: v for k, v in extras.intent.model_dump().items() if v is not None})
    if not fields:
        return Intent(privacy="normal", capability=None, cost="normal")
    return Intent.model_validate({"privacy": fields.get("privacy", "normal"),
                                  "capability": fields.get("capability"),
                                  "cost": fields.get("cost", "normal")})


def no_cache(cache_control: str | None) -> bool:
    if not cache_control:
        return False
    cc = cache_control.lower()
    return "no-cache" in cc or "no-store" in cc


def text(t: str) -> TextBlock:
    return TextBlock(type="text", text=t)


def message(role: str, content: Any, name: str | None = None) -> Message:
    return Message(role=role, content=content, name=name)  # type: ignore[arg-type]  # roles come from typed dialect models


def apply_extras(fields: dict[str, Any], extras: LegionExtras | None) -> None:
    """Copy the `legion` body field's routing choices into ChatRequest fields."""
    if extras is None:
        return
    for k in ("tier", "provider", "session_id", "caller"):
        v = getattr(extras, k)
        if v is not None:
            fields[k] = v
    if extras.cache is not None:
        fields["cache"] = extras.cache and fields.get("cache", True)
    if extras.escalate is not None:
        fields["escalate"] = extras.escalate
    if extras.max_escalations is not None:
        fields["max_escalations"] = extras.max_escalations
    if extras.metadata:
        fields.setdefault("metadata", {}).update(extras.metadata)


def chat_request(**fields: Any) -> ChatRequest:
    """A ChatRequest from already-validated values and model instances (defaults filled)."""
    return ChatRequest.model_validate(fields)
