"""Circuit breaker, Retry-After and latency penalties, driven by an injected clock."""

from __future__ import annotations

import pytest

from legion_core.routing.health import FAILURE_PENALTY, HealthTracker
from legion_core.settings.models import HealthSettings
from tests.routing.routing_fakes import Clock


@pytest.fixture
def ht(clock: Clock) -> HealthTracker:
    return HealthTracker(HealthSettings(), clock=clock)


def test_unknown_provider_is_closed_and_allowed(ht):
    assert ht.state("x") == "closed" and ht.allow("x") and ht.penalty("x") == 0.0
    assert ht.blocked_reason("x") is None


def test_three_failures_open_the_circuit(ht):
    ht.record_failure("p", "timeout")
    ht.record_failure("p", "unavailable")
    assert ht.state("p") == "closed" and ht.allow("p")
    ht.record_failure("p", "unavailable")
    assert ht.state("p") == "open"
    assert not ht.allow("p")
    assert "circuit open" in ht.blocked_reason("p")


def test_success_resets_the_consecutive_count(ht):
    ht.record_failure("p", "timeout")
    ht.record_failure("p", "timeout")
    ht.record_success("p", 10)
    ht.record_failure("p", "timeout")
    assert ht.state("p") == "closed"


def test_cooldown_then_half_open_lets_exactly_one_probe(ht, clock):
    for _ in range(3):
        ht.record_failure("p", "unavailable")
    clock.advance(59.9)
    assert ht.state("p") == "open"
    clock.advance(0.2)
    assert ht.state("p") == "half_open"
    assert ht.blocked_reason("p") is None  # the router may still pick it ...
    assert ht.allow("p") is True  # ... and the first caller gets the probe
    assert ht.allow("p") is False  # a second concurrent caller does not
    assert "probe" in ht.blocked_reason("p")


def test_failed_probe_reopens_for_a_full_cooldown(ht, clock):
    for _ in range(3):
        ht.record_failure("p", "unavailable")
    clock.advance(60)
    assert ht.allow("p")
    ht.record_failure("p", "timeout")
    assert ht.state("p") == "open"
    clock.advance(59)
    assert ht.state("p") == "open"
    clock.advance(1)
    assert ht.state("p") == "half_open"


def test_successful_probe_closes(ht, clock):
    for _ in range(3):
        ht.record_failure("p", "unavailable")
    clock.advance(60)
    assert ht.allow("p")
    ht.record_success("p", 120.0)
    assert ht.state("p") == "closed"
    assert ht.allow("p") and ht.allow("p")


def test_abandoned_probe_stops_blocking_after_a_cooldown(ht, clock):
    for _ in range(3):
        ht.record_failure("p", "unavailable")
    clock.advance(60)
    assert ht.allow("p")
    clock.advance(30)
    assert not ht.allow("p")
    clock.advance(31)
    assert ht.allow("p")


def test_custom_threshold_and_cooldown(clock):
    ht = HealthTracker(HealthSettings(failure_threshold=1, cooldown_seconds=5), clock=clock)
    ht.record_failure("p", "timeout")
    assert ht.state("p") == "open"
    clock.advance(5)
    assert ht.state("p") == "half_open"


def test_request_problems_do_not_count_against_the_provider(ht):
    for kind in ("bad_request", "content_policy", "context_overflow") * 2:
        ht.record_failure("p", kind)
    assert ht.state("p") == "closed" and ht.penalty("p") == 0.0


def test_retry_after_blocks_until_it_passes(ht, clock):
    ht.record_failure("p", "rate_limited", retry_after=30)
    assert ht.state("p") == "closed"  # one 429 does not open the circuit ...
    assert not ht.allow("p")  # ... but the provider is not called before Retry-After
    assert "Retry-After" in ht.blocked_reason("p")
    clock.advance(29.5)
    assert not ht.allow("p")
    clock.advance(0.5)
    assert ht.allow("p") and ht.blocked_reason("p") is None


def test_latency_penalty_grows_with_p50_over_threshold(clock):
    ht = HealthTracker(HealthSettings(latency_penalty_threshold_ms=1000, latency_penalty_per_second=2.0),
                       clock=clock)
    for ms in (100, 200, 300):
        ht.record_success("fast", ms)
    for ms in (3000, 3000, 3000, 100):
        ht.record_success("slow", ms)
    assert ht.penalty("fast") == 0.0
    assert ht.p50("slow") == 3000
    assert ht.penalty("slow") == pytest.approx(4.0)  # (3000-1000)/1000 s * 2 per s


def test_latency_window_is_rolling(clock):
    ht = HealthTracker(HealthSettings(latency_window=3, latency_penalty_threshold_ms=1000), clock=clock)
    for ms in (5000, 5000, 5000):
        ht.record_success("p", ms)
    assert ht.penalty("p") > 0
    for ms in (10, 10, 10):
        ht.record_success("p", ms)
    assert ht.p50("p") == 10 and ht.penalty("p") == 0.0


def test_p50_is_the_median_of_the_rolling_window(clock):
    """The window is kept sorted incrementally; its p50 must match a fresh median at every step."""
    import random
    import statistics

    ht = HealthTracker(HealthSettings(latency_window=7), clock=clock)
    rng = random.Random(5)
    seen: list[float] = []
    for _ in range(200):
        ms = float(rng.choice([rng.uniform(1, 500), 42.0]))  # repeats too: removal must hit one copy
        ht.record_success("p", ms)
        seen.append(ms)
        assert ht.p50("p") == pytest.approx(statistics.median(seen[-7:]))


def test_recent_failures_penalise_then_age_out(ht, clock):
    ht.record_failure("p", "timeout")
    assert ht.penalty("p") == FAILURE_PENALTY
    clock.advance(61)
    assert ht.penalty("p") == 0.0


def test_assess_is_blocked_reason_and_penalty_in_one_read(ht, clock):
    def both(name):
        why = ht.blocked_reason(name)
        return why, (0.0 if why is not None else ht.penalty(name))

    assert ht.assess("unknown") == (None, 0.0) == both("unknown")
    ht.record_success("slow", 5000)
    ht.record_failure("flaky", "timeout")
    assert ht.assess("slow")[0] is None and ht.assess("slow")[1] > 0 and ht.assess("slow") == both("slow")
    assert ht.assess("flaky") == (None, FAILURE_PENALTY) == both("flaky")
    ht.record_failure("limited", "rate_limited", retry_after=30)
    assert ht.assess("limited")[0].startswith("rate limited") and ht.assess("limited") == both("limited")
    for _ in range(3):
        ht.record_failure("down", "unavailable")
    assert "circuit open" in ht.assess("down")[0] and ht.assess("down") == both("down")
    clock.advance(61)
    assert ht.assess("down") == (None, 0.0) == both("down")  # half-open: usable; failures aged out
    assert ht.allow("down")
    assert "probe" in ht.assess("down")[0] and ht.assess("down") == both("down")


def test_snapshot_is_json_able_and_complete(ht, clock):
    ht.record_success("a", 100)
    for _ in range(3):
        ht.record_failure("b", "unavailable")
    ht.record_failure("c", "rate_limited", retry_after=10)
    snap = ht.snapshot()
    assert snap["a"]["state"] == "closed" and snap["a"]["latency_p50_ms"] == 100.0
    assert snap["b"]["state"] == "open" and snap["b"]["consecutive_failures"] == 3
    assert snap["b"]["last_error"] == "unavailable"
    assert snap["c"]["retry_after_s"] == 10.0
    import json

    json.dumps(snap)
