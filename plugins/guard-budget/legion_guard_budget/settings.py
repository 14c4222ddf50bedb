"""The `budget` settings section (validated by the kernel through `legion_settings_schema`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


def _free_only() -> dict[str, object]:
    return {"free_only": True}

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderBudget(_Strict):
    """`budget.providers.<name>`: limits for one configured provider instance."""

    daily_usd: float | None = Field(default=None, ge=0)
    per_request_usd: float | None = Field(default=None, ge=0)


class BudgetSettings(_Strict):
    """Spend limits. Any limit left at None is not enforced."""

    enabled: bool = True
    #: Whole-deployment limit per day (midnight to midnight in `timezone`).
    daily_usd: float | None = Field(default=None, ge=0)
    #: Fraction of a limit at which a warning is logged (once per period) and exposed in /metrics.
    warning_threshold: float = Field(default=0.8, gt=0, le=1)
    #: Limit per conversation (`ChatRequest.session_id`), for its lifetime.
    session_usd: float | None = Field(default=None, ge=0)
    providers: dict[str, ProviderBudget] = Field(default_factory=dict)
    #: Daily limit applied to each caller separately (`ChatRequest.caller` / the context's caller).
    per_caller_daily_usd: float | None = Field(default=None, ge=0)
    #: Daily limit applied to each gateway API key separately (the context's `api_key_id`).
    per_api_key_daily_usd: float | None = Field(default=None, ge=0)
    on_exceed: Literal["downgrade", "block"] = "downgrade"
    #: Constraints added to a downgraded request; the router keeps it on free tiers.
    downgrade_constraints: dict[str, object] = Field(default_factory=_free_only)
    #: IANA zone whose midnight ends a day.
    timezone: str = "UTC"
    #: Output tokens assumed when a request sets no `max_tokens` (prices the estimate).
    default_output_tokens: int = Field(default=512, ge=0)
    #: An estimate that was reserved but never reconciled (the call failed) is released after this.
    reservation_timeout_seconds: float = Field(default=600.0, gt=0)

    @field_validator("timezone")
    @classmethod
    def _tz_exists(cls, v: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(v)
        except Exception as e:  # noqa: BLE001 - zoneinfo raises several types
            raise ValueError(f"unknown timezone {v!r}; use an IANA name such as 'Europe/Paris'") from e
        return v

    def any_limit(self) -> bool:
        return any(v is not None for v in (self.daily_usd, self.session_usd, self.per_caller_daily_usd,
                                           self.per_api_key_daily_usd)) or any(
            p.daily_usd is not None or p.per_request_usd is not None for p in self.providers.values())
