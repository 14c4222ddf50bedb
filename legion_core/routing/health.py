"""Per-provider health: a circuit breaker, a rolling latency window and Retry-After.

The router reads it on every decision (so reads are cheap and never block); the pipeline
writes it after every provider call. The clock is injectable so tests can step through
cooldowns without sleeping.

Circuit: `failure_threshold` consecutive failures open it; after `cooldown_seconds` it is
half-open and lets exactly one probe through; the probe's success closes it, its failure
re-opens it for another cooldown. A 429 with Retry-After blocks the provider until then.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from legion_core.settings.models import HealthSettings

State = Literal["closed", "open", "half_open"]

#: Failure kinds that say nothing about the provider's health (the request was the problem).
NEUTRAL_KINDS: frozenset[str] = frozenset({"bad_request", "content_policy", "context_overflow"})
#: Score points lost per failure seen within the last cooldown period.
FAILURE_PENALTY = 2.0


@dataclass
class _ProviderHealth:
    latencies: deque[float]
    consecutive_failures: int = 0
    state: State = "closed"
    opened_at: float = 0.0
    probe_started: float | None = None
    retry_until: float = 0.0
    failures: deque[float] = field(default_factory=lambda: deque(maxlen=64))
    last_error: str | None = None
    successes: int = 0
    total_failures: int = 0
    #: `latencies`, kept sorted as they come and go: the p50 the router reads on every
    #: decision is then an index, not a sort of the window.
    ordered: list[float] = field(default_factory=list)


class HealthTracker:
    def __init__(self, settings: HealthSettings | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or HealthSettings()
        self.clock = clock
        self._h: dict[str, _ProviderHealth] = {}

    def _get(self, provider: str) -> _ProviderHealth:
        h = self._h.get(provider)
        if h is None:
            h = self._h[provider] = _ProviderHealth(latencies=deque(maxlen=self.settings.latency_window))
        return h

    # ------------------------------------------------------------------ writes
    def record_success(self, provider: str, latency_ms: float) -> None:
        h = self._get(provider)
        lat = h.latencies
        if lat.maxlen is not None and len(lat) == lat.maxlen:
            if not lat.maxlen:
                return self._succeeded(h)
            del h.ordered[bisect.bisect_left(h.ordered, lat[0])]  # the sample the window drops
        v = float(latency_ms)
        lat.append(v)
        bisect.insort(h.ordered, v)
        self._succeeded(h)

    @staticmethod
    def _succeeded(h: _ProviderHealth) -> None:
        h.consecutive_failures = 0
        h.state = "closed"
        h.probe_started = None
        h.successes += 1

    def record_failure(self, provider: str, kind: str, retry_after: float | None = None) -> None:
        """Count a failed call. `kind` is the `ProviderError.kind` (e.g. "timeout")."""
        h = self._get(provider)
        now = self.clock()
        if retry_after is not None and retry_after > 0:
            h.retry_until = max(h.retry_until, now + float(retry_after))
        if kind in NEUTRAL_KINDS:
            return
        h.last_error = kind
        h.total_failures += 1
        h.failures.append(now)
        h.consecutive_failures += 1
        state = self._state(h, now)
        if state == "half_open" or h.consecutive_failures >= self.settings.failure_threshold:
            h.state = "open"
            h.opened_at = now
            h.probe_started = None

    def reset(self, provider: str | None = None) -> None:
        if provider is None:
            self._h.clear()
        else:
            self._h.pop(provider, None)

    # ------------------------------------------------------------------ reads
    def _state(self, h: _ProviderHealth, now: float) -> State:
        if h.state == "open" and now - h.opened_at >= self.settings.cooldown_seconds:
            h.state = "half_open"
            h.probe_started = None
        return h.state

    def state(self, provider: str) -> State:
        h = self._h.get(provider)
        if h is None:
            return "closed"
        return self._state(h, self.clock())

    def retry_after_remaining(self, provider: str) -> float:
        h = self._h.get(provider)
        if h is None:
            return 0.0
        return max(0.0, h.retry_until - self.clock())

    def blocked_reason(self, provider: str) -> str | None:
        """Why the router must skip this provider now, without consuming a probe; None if usable."""
        h = self._h.get(provider)
        if h is None:
            return None
        return self._blocked(h, self.clock())

    def assess(self, provider: str) -> tuple[str | None, float]:
        """`(blocked_reason, penalty)` with one lookup and one clock read: the router asks both
        for every provider on every decision. The penalty is 0.0 when the provider is blocked."""
        h = self._h.get(provider)
        if h is None:
            return None, 0.0
        now = self.clock()
        why = self._blocked(h, now)
        return why, (0.0 if why is not None else self._penalty(provider, h, now))

    def _blocked(self, h: _ProviderHealth, now: float) -> str | None:
        if h.retry_until > now:
            return f"rate limited: Retry-After for {h.retry_until - now:.1f}s more"
        state = self._state(h, now)
        if state == "open":
            left = self.settings.cooldown_seconds - (now - h.opened_at)
            return f"circuit open ({h.consecutive_failures} failures; half-open in {left:.0f}s)"
        if state == "half_open" and self._probe_busy(h, now):
            return "circuit half-open: a probe is already in flight"
        return None

    def _probe_busy(self, h: _ProviderHealth, now: float) -> bool:
        # A probe whose caller never reported back stops blocking after one cooldown.
        return h.probe_started is not None and now - h.probe_started < self.settings.cooldown_seconds

    def allow(self, provider: str) -> bool:
        """May a call go to this provider now? In half-open state this reserves the one probe."""
        h = self._h.get(provider)
        if h is None:
            return True
        now = self.clock()
        if h.retry_until > now:
            return False
        state = self._state(h, now)
        if state == "closed":
            return True
        if state == "open":
            return False
        if self._probe_busy(h, now):
            return False
        h.probe_started = now
        return True

    def p50(self, provider: str) -> float | None:
        h = self._h.get(provider)
        if h is None or not h.ordered:
            return None
        return _percentile_sorted(h.ordered, 0.5)

    def penalty(self, provider: str) -> float:
        """Score points to subtract: slow p50 over the threshold, plus recent failures."""
        h = self._h.get(provider)
        if h is None:
            return 0.0
        return self._penalty(provider, h, None)

    def _penalty(self, provider: str, h: _ProviderHealth, now: float | None) -> float:
        s = self.settings
        pen = 0.0
        p50 = self.p50(provider)
        if p50 is not None:
            if p50 > s.latency_penalty_threshold_ms:
                pen += (p50 - s.latency_penalty_threshold_ms) / 1000.0 * s.latency_penalty_per_second
        if h.failures:
            horizon = (self.clock() if now is None else now) - s.cooldown_seconds
            pen += FAILURE_PENALTY * sum(1 for t in h.failures if t >= horizon)
        return pen

    def snapshot(self) -> dict[str, Any]:
        """JSON-able view per provider (for /api/llm/providers and `legion providers`)."""
        out: dict[str, Any] = {}
        for name, h in self._h.items():
            lat = list(h.latencies)
            out[name] = {
                "state": self.state(name),
                "consecutive_failures": h.consecutive_failures,
                "total_failures": h.total_failures,
                "successes": h.successes,
                "last_error": h.last_error,
                "latency_p50_ms": round(_percentile(lat, 0.5), 1) if lat else None,
                "latency_p95_ms": round(_percentile(lat, 0.95), 1) if lat else None,
                "latency_samples": len(lat),
                "retry_after_s": round(self.retry_after_remaining(name), 1),
                "penalty": round(self.penalty(name), 3),
            }
        return out


def _percentile(values: Any, q: float) -> float:
    return _percentile_sorted(sorted(values), q)


def _percentile_sorted(data: list[float], q: float) -> float:
    if not data:
        return 0.0
    k = (len(data) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)
