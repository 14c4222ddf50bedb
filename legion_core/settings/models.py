"""Pydantic models for every settings key the kernel owns.

Plugins contribute their own sections through `legion_settings_schema`; the root model
allows extra top-level sections so those can be validated separately.
Secret-bearing fields hold *references* (`env://X`, `vault://p#k`, literals, or arrays of
them) until boot resolves them; see `legion_core.secrets`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SecretRef = str | list[str] | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# ------------------------------------------------------------------ providers
class ProviderSettings(BaseModel):
    """`llm.providers.<name>`. Unknown keys are provider-specific options (region, ...)."""

    model_config = ConfigDict(extra="allow")

    #: The provider class to use; defaults to the map key (`providers.ollama` → type `ollama`).
    type: str | None = None
    #: None means "auto": enabled when its credentials resolve (or it needs none).
    enabled: bool | None = None
    tier: str | None = None
    base_url: str | None = None
    default_model: str | None = None
    api_key: SecretRef = None
    #: Extra models to publish, or overrides of the built-in catalog, keyed by model id.
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    cost_multiplier: float = 1.0
    priority: int = 0
    timeout_connect: float | None = None
    timeout_read: float | None = None
    timeout_total: float | None = None
    max_connections: int = 100

    def extra_options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


# ------------------------------------------------------------------ routing
class RuleWhen(_Strict):
    """All given fields must match (AND). Omitted fields match anything."""

    privacy: Literal["normal", "strict"] | None = None
    capability: Literal["basic", "moderate", "reasoning"] | None = None
    cost: Literal["minimize", "normal"] | None = None
    #: Capabilities the request needs, e.g. ["tools"]; matches if the request needs all of them.
    requires: list[str] = Field(default_factory=list)
    complexity_gte: float | None = None
    complexity_lt: float | None = None
    tokens_gte: int | None = None
    tokens_lt: int | None = None
    caller: str | None = None


class RuleThen(_Strict):
    tier: str | None = None
    provider: str | None = None
    model: str | None = None
    compress_level: int | None = Field(default=None, ge=0, le=3)


class Schedule(_Strict):
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    #: Hours of the day, inclusive start and exclusive end, e.g. [9, 17]; may wrap midnight ([22, 6]).
    hours: tuple[int, int] | None = None
    #: Lower-case weekday abbreviations: mon tue wed thu fri sat sun.
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = None
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _tz_exists(cls, v: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(v)
        except Exception as e:  # noqa: BLE001 - zoneinfo raises several types
            raise ValueError(f"unknown timezone {v!r}") from e
        return v


class Rule(_Strict):
    name: str
    when: RuleWhen = Field(default_factory=RuleWhen)
    then: RuleThen = Field(default_factory=RuleThen)
    priority: int = 0
    constraint: Literal["never_cloud"] | None = None
    #: Provider name or tier to try when the rule's target is unavailable.
    fallback: str | None = None
    cost_multiplier: float = 1.0
    schedule: Schedule | None = None
    enabled: bool = True


class HealthSettings(_Strict):
    failure_threshold: int = 3
    cooldown_seconds: float = 60.0
    latency_window: int = 50
    #: p50 latency (ms) above which a provider starts losing score.
    latency_penalty_threshold_ms: float = 2000.0
    latency_penalty_per_second: float = 1.0


class EscalationSettings(_Strict):
    enabled: bool = False
    max_escalations: int = 2
    checks: list[str] = Field(default_factory=lambda: ["empty", "too_short", "repetition", "invalid_json"])
    min_length: int = 2


class TierSettings(_Strict):
    enabled: bool = True


class RoutingSettings(_Strict):
    enabled: bool = True
    strategy: Literal["cost_optimized", "latency_optimized", "round_robin"] = "cost_optimized"
    rules: list[Rule] = Field(default_factory=list)
    health: HealthSettings = Field(default_factory=HealthSettings)
    escalation: EscalationSettings = Field(default_factory=EscalationSettings)
    tiers: dict[str, TierSettings] = Field(default_factory=dict)
    #: Model aliases the gateway accepts, e.g. {"fast": {"tier": "local"}}.
    aliases: dict[str, RuleThen] = Field(default_factory=dict)
    #: Complexity above which a request leaves the lowest tier(s); see docs/routing.md.
    complexity_thresholds: dict[str, float] = Field(
        default_factory=lambda: {"local": 0.0, "fleet": 0.35, "openai_compat": 0.35, "cloud": 0.55,
                                 "frontier": 0.8}
    )


class DiscoverySettings(_Strict):
    enabled: bool = True
    ttl_seconds: float = 60.0
    #: Memory kept free when judging whether a local model fits.
    memory_floor_mb: int = 1024
    refresh_interval_seconds: float = 60.0


class CacheSettings(_Strict):
    enabled: bool = True
    ttl_seconds: float = 24 * 3600.0
    cache_side_effect_tools: bool = False


class AuthSettings(_Strict):
    enabled: bool = False
    api_keys: list[str | list[str]] = Field(default_factory=list)
    pass_through: bool = False


class ApiSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = 4567
    auth: AuthSettings = Field(default_factory=AuthSettings)
    max_body_bytes: int = 10 * 1024 * 1024


class DaemonSettings(_Strict):
    enabled: bool = False
    url: str | None = None
    #: The gateway's key when its auth is enabled (a secret reference is fine).
    api_key: SecretRef = None
    health_ttl_seconds: float = 30.0


class TimeoutSettings(_Strict):
    connect: float = 5.0
    read: float = 120.0
    total: float = 600.0


class Price(_Strict):
    input: float = 0.0
    output: float = 0.0


class StateSettings(_Strict):
    """Where shared counters (spend, circuit, rate) live: one machine (sqlite) or many (redis)."""

    backend: Literal["sqlite", "redis", "memory"] = "sqlite"
    url: SecretRef = "redis://127.0.0.1:6379/0"
    prefix: str = "legion:"


class SessionSettings(_Strict):
    token_budget: int | None = None
    lru_size: int = 256


class LLMSettings(BaseModel):
    """The `llm` section."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # --- seed shape 1: a single provider ---
    provider: str | None = None
    api_key: SecretRef = None
    model: str | None = None
    base_url: str | None = None
    # --- seed shape 2: the providers map ---
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    default_provider: str | None = None
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    discovery: DiscoverySettings = Field(default_factory=DiscoverySettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    pricing: dict[str, Price] = Field(default_factory=dict)
    api: ApiSettings = Field(default_factory=ApiSettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    timeouts: TimeoutSettings = Field(default_factory=TimeoutSettings)
    session: SessionSettings = Field(default_factory=SessionSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    tool_loop_limit: int = 8

    @field_validator("routing", mode="before")
    @classmethod
    def _routing_shorthand(cls, v: Any) -> Any:
        # `"routing": "cost_optimized"` is shorthand for a strategy with no rules.
        if isinstance(v, str):
            return {"strategy": v}
        return v

    @model_validator(mode="after")
    def _single_provider_shape(self) -> LLMSettings:
        # Seed shape 1 (`provider` + `api_key`) becomes a one-entry providers map.
        if self.provider and self.provider not in self.providers:
            self.providers[self.provider] = ProviderSettings(
                type=self.provider, enabled=True, api_key=self.api_key, default_model=self.model,
                base_url=self.base_url,
            )
        if self.provider and not self.default_provider:
            self.default_provider = self.provider
        return self


class PluginsSettings(_Strict):
    disabled: list[str] = Field(default_factory=list)


class LoggingSettings(_Strict):
    level: str = "warning"
    format: Literal["console", "json"] | None = None


class Settings(BaseModel):
    """The root. Top-level sections other than these belong to plugins."""

    model_config = ConfigDict(extra="allow")

    llm: LLMSettings = Field(default_factory=LLMSettings)
    plugins: PluginsSettings = Field(default_factory=PluginsSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

    def section(self, name: str) -> dict[str, Any]:
        """A plugin's raw section (validated separately against its registered schema)."""
        return dict((self.model_extra or {}).get(name) or {})
