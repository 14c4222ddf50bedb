"""The budget guard: price the request on the candidate the router would pick, reserve that
estimate atomically in shared state, and downgrade or refuse when a limit would be crossed.

Why reserve: checking "spent + estimate <= limit" and recording later lets N parallel requests
all pass the check. `SharedState.incr` is atomic (SQLite transaction, Redis INCRBYFLOAT), so the
estimate is added first and taken back when it crosses a limit; after the call the reservation
is reconciled with the real `response.cost_usd`. Overshoot is then bounded by estimate error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from legion_core.errors import LegionError, RequestRefused
from legion_core.log import get_logger
from legion_core.types import ChatRequest, ChatResponse, ModelInfo, RoutingDecision
from legion_guard_budget.metrics import REGISTRY, GaugeRegistry
from legion_guard_budget.periods import Clock, Periods, utcnow
from legion_guard_budget.settings import BudgetSettings

log = get_logger("legion.budget")

#: (provider, model) -> what the router knows about it (prices per million tokens), or None.
Catalog = Callable[[str, str], ModelInfo | None]
DAY_TTL = 3 * 86400.0
SESSION_TTL = 30 * 86400.0
RESERVATION = "budget.reservation"


@dataclass(frozen=True)
class Limit:
    """One enforced limit: its state key, its amount, and how to name it to a human."""

    name: str  # metrics label, e.g. "daily", "provider:openai", "caller:bob", "session:s1"
    key: str
    limit_usd: float | None
    label: str  # "daily limit", "daily limit of provider 'openai'", ...
    daily: bool = True


@dataclass
class Reservation:
    amount: float
    provider: str
    keys: list[str]
    created: float = field(default_factory=time.monotonic)


class BudgetGuard:
    """Enforces `BudgetSettings` against a `SharedState` (`context.state` wins over `state`)."""

    def __init__(self, settings: BudgetSettings | dict[str, Any] | None = None, *, state: Any = None,
                 catalog: Catalog | None = None, clock: Clock = utcnow,
                 metrics: GaugeRegistry = REGISTRY) -> None:
        self.settings = settings if isinstance(settings, BudgetSettings) else \
            BudgetSettings.model_validate(settings or {})
        self.state = state
        self.catalog = catalog
        self.periods = Periods(self.settings.timezone, clock)
        self.metrics = metrics
        self._outstanding: dict[str, Reservation] = {}
        self._warned: set[str] = set()
        self._last_sweep = 0.0  # keys carry the period, so a new day starts empty
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ limits
    def limits_for(self, provider: str | None, caller: str | None, api_key_id: str | None,
                   session_id: str | None) -> list[Limit]:
        """The counters this request touches: the day's total (always, `legion budget` shows it)
        and every one that has a limit. Unlimited counters are not kept: each costs a write."""
        return [lim for lim in self._all_limits(provider, caller, api_key_id, session_id)
                if lim.limit_usd is not None or lim.name == "daily"]

    def _all_limits(self, provider: str | None, caller: str | None, api_key_id: str | None,
                    session_id: str | None) -> list[Limit]:
        s, day = self.settings, self.periods.day()
        out = [Limit("daily", f"budget:day:{day}:total", s.daily_usd, "daily limit")]
        if provider:
            pb = s.providers.get(provider)
            out.append(Limit(f"provider:{provider}", f"budget:day:{day}:provider:{provider}",
                             pb.daily_usd if pb else None, f"daily limit of provider '{provider}'"))
        if caller:
            out.append(Limit(f"caller:{caller}", f"budget:day:{day}:caller:{caller}",
                             s.per_caller_daily_usd, f"daily limit of caller '{caller}'"))
        if api_key_id:
            out.append(Limit(f"api_key:{api_key_id}", f"budget:day:{day}:api_key:{api_key_id}",
                             s.per_api_key_daily_usd, "daily limit of this API key"))
        if session_id:
            out.append(Limit(f"session:{session_id}", f"budget:session:{session_id}", s.session_usd,
                             f"limit of session '{session_id}'", daily=False))
        return out

    # ------------------------------------------------------------------ pricing
    def estimate(self, request: ChatRequest, decision: RoutingDecision) -> float:
        """USD for this request on the decided candidate: catalog prices × estimated tokens."""
        if not decision.provider or not decision.model or self.catalog is None:
            return 0.0
        info = self.catalog(decision.provider, decision.model)
        if info is None or (not info.input_price and not info.output_price):
            return 0.0
        tokens_in = decision.estimated_tokens or _rough_tokens(request)
        tokens_out = request.max_tokens if request.max_tokens is not None else \
            self.settings.default_output_tokens
        if info.max_output_tokens:
            tokens_out = min(tokens_out, info.max_output_tokens)
        return (tokens_in * info.input_price + tokens_out * info.output_price) / 1_000_000

    # ------------------------------------------------------------------ before chat
    def before_chat(self, request: ChatRequest, context: Any) -> ChatRequest | None:
        if not self.settings.enabled or not self.settings.any_limit():
            return None
        state = self._state(context)
        if state is None:
            return None
        self.release_stale(state)
        decision = self._preview(request, context)
        if decision is None or not decision.provider:
            return None  # the pipeline will report "no provider" itself
        est = self.estimate(request, decision)
        if est <= 0:
            return None  # free candidates (local/fleet, cache) are always allowed
        caller = getattr(context, "caller", None) or request.caller
        limits = self.limits_for(decision.provider, caller, getattr(context, "api_key_id", None),
                                 request.session_id)
        pb = self.settings.providers.get(decision.provider)
        if pb and pb.per_request_usd is not None and est > pb.per_request_usd:
            lim = Limit(f"provider:{decision.provider}:per_request", "", pb.per_request_usd,
                        f"per-request limit of provider '{decision.provider}'", daily=False)
            return self._exceeded(request, context, lim, est, spent=None)
        done: list[Limit] = []
        totals: dict[str, float] = {}
        for lim in limits:
            total = totals[lim.key] = state.incr(lim.key, est, ttl=DAY_TTL if lim.daily else SESSION_TTL)
            done.append(lim)
            prior = total - est
            if lim.limit_usd is not None and (total > lim.limit_usd + 1e-12 or prior >= lim.limit_usd):
                for d in done:
                    state.incr(d.key, -est)
                return self._exceeded(request, context, lim, est, spent=prior)
        res = Reservation(est, decision.provider, [lim.key for lim in limits])
        with self._lock:
            self._outstanding[request.request_id] = res
        if context is not None and isinstance(getattr(context, "extras", None), dict):
            context.extras[RESERVATION] = res
        self._observe(state, limits, totals)
        return None

    def _preview(self, request: ChatRequest, context: Any) -> RoutingDecision | None:
        preview = getattr(context, "route_preview", None)
        if preview is None:
            return None
        try:
            return preview(request)
        except LegionError:
            return None

    def _exceeded(self, request: ChatRequest, context: Any, lim: Limit, est: float,
                  spent: float | None) -> ChatRequest:
        s = self.settings
        if s.on_exceed == "downgrade":
            down = request.model_copy(update={"constraints": {**request.constraints,
                                                              **s.downgrade_constraints}})
            decision = self._preview(down, context)
            if decision is not None and decision.provider and self.estimate(down, decision) <= 0:
                self.metrics.inc("legion_budget_downgrades_total")
                log.info("budget: request downgraded to a free tier", limit=lim.label,
                         request_id=request.request_id, to_provider=decision.provider)
                return down
            why = "and no free provider can take it"
        else:
            why = ""
        self.metrics.inc("legion_budget_blocks_total")
        reset = self.periods.reset_at() if lim.daily and lim.key else None
        spent_txt = f"; spent ${spent:.4f}" if spent is not None else ""
        msg = (f"budget exceeded: the {lim.label} of ${lim.limit_usd:.2f} would be crossed by this "
               f"request (estimated ${est:.4f}{spent_txt})")
        if why:
            msg += f" {why}"
        if reset is not None:
            msg += f"; it resets at {reset.isoformat()} ({s.timezone})"
        raise RequestRefused(msg, status=429,
                             retry_after=self.periods.seconds_to_reset() if reset is not None else None,
                             limit=lim.name, limit_usd=lim.limit_usd,
                             resets_at=reset.isoformat() if reset else None)

    # ------------------------------------------------------------------ after chat
    def after_chat(self, request: ChatRequest, response: ChatResponse, context: Any) -> None:
        if not self.settings.enabled:
            return
        state = self._state(context)
        if state is None:
            return
        res = None
        if context is not None and isinstance(getattr(context, "extras", None), dict):
            res = context.extras.pop(RESERVATION, None)
        with self._lock:
            res = self._outstanding.pop(request.request_id, None) or res
        actual = max(0.0, float(response.cost_usd or 0.0))
        caller = getattr(context, "caller", None) or request.caller
        provider = response.provider or (res.provider if res else None)
        limits = self.limits_for(provider, caller, getattr(context, "api_key_id", None),
                                 request.session_id)
        # One increment per key (actual - reserved): subtracting the reservation and adding the
        # actual cost in two steps would let a concurrent reservation slip into the gap.
        delta: dict[str, tuple[float, float]] = {}
        if res is not None:  # reconcile the reservation in the period it was made
            for key in res.keys:
                delta[key] = (-res.amount, SESSION_TTL)
        if actual > 0:
            for lim in limits:
                d, _ = delta.get(lim.key, (0.0, 0.0))
                delta[lim.key] = (d + actual, DAY_TTL if lim.daily else SESSION_TTL)
        totals: dict[str, float] = {}
        for key, (amount, ttl) in delta.items():
            if amount:
                totals[key] = state.incr(key, amount, ttl=ttl)
        self._observe(state, limits, totals)

    def release_stale(self, state: Any = None) -> int:
        """Give back reservations whose call never reported (it failed); returns how many."""
        state = state or self.state
        now = time.monotonic()
        if not self._outstanding or now - self._last_sweep < min(1.0, self.settings.reservation_timeout_seconds):
            return 0  # sweep at most once a second: the scan is O(requests in flight)
        self._last_sweep = now
        cutoff = now - self.settings.reservation_timeout_seconds
        with self._lock:
            stale = [k for k, r in self._outstanding.items() if r.created < cutoff]
            gone = [self._outstanding.pop(k) for k in stale]
        for r in gone:
            for key in r.keys:
                state.incr(key, -r.amount)
        return len(gone)

    def release_all(self) -> None:
        """At shutdown: in-flight reservations will never be reconciled by this process."""
        if self.state is None:
            return
        with self._lock:
            gone = list(self._outstanding.values())
            self._outstanding.clear()
        for r in gone:
            for key in r.keys:
                self.state.incr(key, -r.amount)

    # ------------------------------------------------------------------ reporting
    def _state(self, context: Any) -> Any:
        st = getattr(context, "state", None)
        return st if st is not None else self.state

    def _observe(self, state: Any, limits: list[Limit], totals: dict[str, float]) -> None:
        """Update gauges from the totals the increments returned (no extra read); warn once per
        period, atomically across replicas, past the threshold."""
        for lim in limits:
            if lim.limit_usd is None or lim.key not in totals:
                continue
            spent = totals[lim.key]
            crossed = lim.limit_usd > 0 and spent >= self.settings.warning_threshold * lim.limit_usd
            if lim.daily:  # not per session: one series per conversation would grow without end
                self.metrics.set("legion_budget_spend_usd", spent, limit=lim.name)
                self.metrics.set("legion_budget_limit_usd", lim.limit_usd, limit=lim.name)
                self.metrics.set("legion_budget_warning", 1.0 if crossed else 0.0, limit=lim.name)
            if not crossed or lim.key in self._warned:
                continue
            if len(self._warned) > 10_000:  # sessions and days accumulate: forget, ask again
                self._warned.clear()
            self._warned.add(lim.key)  # this process asks the shared state once per key
            if state.incr(f"{lim.key}:warned", 1, ttl=DAY_TTL if lim.daily else SESSION_TTL) == 1:
                log.warning("budget warning threshold crossed", limit=lim.label,
                            spent_usd=round(spent, 6), limit_usd=lim.limit_usd,
                            threshold=self.settings.warning_threshold)

    def status(self, state: Any = None) -> list[dict[str, Any]]:
        """Today's spend for every configured daily limit (for `legion budget`)."""
        state = state or self.state
        s, day = self.settings, self.periods.day()
        rows = [("daily", f"budget:day:{day}:total", s.daily_usd)]
        for name, pb in sorted(s.providers.items()):
            if pb.daily_usd is None:
                continue  # only limited providers have a counter
            rows.append((f"provider:{name}", f"budget:day:{day}:provider:{name}", pb.daily_usd))
        out = []
        for name, key, limit in rows:
            spent = float(state.get(key, 0.0) or 0.0) if state is not None else 0.0
            out.append({"limit": name, "spent_usd": round(spent, 6), "limit_usd": limit,
                        "fraction": round(spent / limit, 4) if limit else None, "period": day,
                        "resets_at": self.periods.reset_at().isoformat()})
        return out


def _rough_tokens(request: ChatRequest) -> int:
    """About four characters a token, when the router gave no estimate."""
    chars = len(request.system or "") + sum(len(m.text) for m in request.messages)
    return max(1, chars // 4)
