"""Failover on each fault kind, Retry-After, the circuit breaker, and non-failover errors."""

import pytest

from legion_core.errors import (
    ContentPolicy,
    ContextOverflow,
    NoProviderAvailable,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from legion_core.types import text_request

Q = "What day comes after Tuesday?"

FAULTS = {
    "connection_refused": ProviderUnavailable("connection refused", provider="loc"),
    "timeout": ProviderTimeout("read timed out", provider="loc"),
    "5xx": ProviderUnavailable("upstream 503", provider="loc", upstream_status=503),
    "429": RateLimited("slow down", provider="loc", upstream_status=429, retry_after=30),
    "auth": ProviderAuthError("key rejected", provider="loc", upstream_status=401),
    "context_overflow": ContextOverflow("prompt too long", provider="loc", upstream_status=400),
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_failover_moves_to_next_candidate_without_error(make_legion, script, fault):
    lg = await make_legion()
    script.then("loc", FAULTS[fault])
    r = await lg.pipeline.chat(text_request(Q))
    assert r.provider == "cld", "the next viable candidate answered"
    assert [(a.provider, a.outcome) for a in r.attempts] == [("loc", "failed"), ("cld", "ok")]
    assert r.attempts[0].error_kind == FAULTS[fault].kind
    assert len(script.calls["loc"]) == 1 and len(script.calls["cld"]) == 1
    snap = lg.health.snapshot()
    assert snap["cld"]["successes"] == 1
    if fault != "context_overflow":  # a request-shaped failure says nothing about health
        assert snap["loc"]["total_failures"] == 1


async def test_429_retry_after_skips_the_provider_until_then(make_legion, script):
    lg = await make_legion()
    script.then("loc", RateLimited("slow down", provider="loc", retry_after=60))
    await lg.pipeline.chat(text_request(Q))
    r2 = await lg.pipeline.chat(text_request("What day comes after Wednesday?"))
    assert r2.provider == "cld"
    assert len(script.calls["loc"]) == 1, "loc was not called again inside its Retry-After"
    dropped = {c.provider: c.dropped for c in r2.routing.candidates}
    assert "rate limited" in (dropped["loc"] or "")


async def test_circuit_opens_after_three_failures(make_legion, script):
    lg = await make_legion()
    for i in range(3):
        script.then("loc", ProviderUnavailable("down", provider="loc"))
        r = await lg.pipeline.chat(text_request(f"What day comes after day {i}?"))
        assert r.provider == "cld"
    assert lg.health.state("loc") == "open"
    r = await lg.pipeline.chat(text_request("What day comes after Friday?"))
    assert r.provider == "cld" and len(script.calls["loc"]) == 3


@pytest.mark.parametrize("exc", [ContentPolicy("refused on content", provider="loc"),
                                 ProviderBadRequest("bad schema", provider="loc", upstream_status=400)])
async def test_non_failover_errors_surface_as_they_are(make_legion, script, exc):
    lg = await make_legion()
    script.then("loc", exc)
    with pytest.raises(type(exc)):
        await lg.pipeline.chat(text_request(Q))
    assert not script.calls["cld"], "no other provider was tried"
    rows = lg.pipeline.audit.recent(5)
    assert rows[0]["status"] == "error" and exc.kind in rows[0]["error"]


async def test_all_candidates_fail_raises_no_provider_with_attempts(make_legion, script):
    lg = await make_legion()
    for p in ("loc", "cld", "fro"):
        script.then(p, ProviderUnavailable("down", provider=p))
    with pytest.raises(NoProviderAvailable) as ei:
        await lg.pipeline.chat(text_request(Q))
    assert [a.provider for a in ei.value.attempts] == ["loc", "cld", "fro"]
    assert all(a.outcome == "failed" for a in ei.value.attempts)
    row = lg.pipeline.audit.recent(1)[0]
    assert row["status"] == "error" and len(row["attempts"]) == 3 and row["failovers"] == 3


async def test_untyped_provider_exception_fails_over(make_legion, script):
    lg = await make_legion()
    script.then("loc", RuntimeError("plugin bug"))
    r = await lg.pipeline.chat(text_request(Q))
    assert r.provider == "cld" and r.attempts[0].error_kind == "internal"
