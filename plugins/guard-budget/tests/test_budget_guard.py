"""The budget guard against a real SQLite store, with a stand-in route preview.

`preview()` plays the router's `route_preview`: paid "cloudy/big" normally, free "local/llama"
when the request carries the downgrade constraint. The end-to-end test through the real
router and pipeline lives in tests/test_budget_e2e.py.
"""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from legion_guard_budget.guard import BudgetGuard
from legion_guard_budget.metrics import GaugeRegistry
from legion_guard_budget.plugin import BudgetPlugin, load_settings
from structlog.testing import capture_logs

from legion_core.errors import NoProviderAvailable, RequestRefused, SettingsError
from legion_core.hooktypes import RequestContext
from legion_core.plugins.manager import PluginManager
from legion_core.store.db import Store
from legion_core.store.state import MemoryState, SQLiteState
from legion_core.types import ChatResponse, ModelInfo, RoutingDecision, text_request

# 1000 tokens in at $10/M + 1000 out at $30/M = $0.04 per request
CATALOG = {
    ("cloudy", "big"): ModelInfo(id="big", provider="cloudy", input_price=10.0, output_price=30.0),
    ("other", "mid"): ModelInfo(id="mid", provider="other", input_price=10.0, output_price=30.0),
    ("local", "llama"): ModelInfo(id="llama", provider="local", tier="local"),
}
EST = 0.04


def catalog(provider, model):
    return CATALOG.get((provider, model))


def preview(request):
    if request.constraints.get("free_only"):
        return RoutingDecision(provider="local", model="llama", tier="local", estimated_tokens=1000)
    prov = request.provider or "cloudy"
    model = "big" if prov == "cloudy" else "mid"
    return RoutingDecision(provider=prov, model=model, tier="cloud", estimated_tokens=1000)


def no_free_preview(request):
    if request.constraints.get("free_only"):
        raise NoProviderAvailable("no free provider")
    return preview(request)


class Clock:
    def __init__(self, when: dt.datetime) -> None:
        self.when = when

    def __call__(self) -> dt.datetime:
        return self.when


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "legion.db")
    yield s
    s.close()


@pytest.fixture
def state(store):
    return SQLiteState(store)


def make_guard(state, clock=None, metrics=None, **settings):
    return BudgetGuard(settings, state=state, catalog=catalog,
                       clock=clock or Clock(dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)),
                       metrics=metrics or GaugeRegistry())


def ctx(state, caller=None, api_key_id=None, route_preview=preview):
    return RequestContext(request_id="r", caller=caller, api_key_id=api_key_id,
                          route_preview=route_preview, state=state)


def req(**kw):
    return text_request("x" * 40, max_tokens=1000, **kw)


def run(guard, state, cost=EST, request=None, **ctx_kw):
    """One full request: before, then after with `cost` if it went to the paid provider."""
    request = request or req()
    c = ctx(state, **ctx_kw)
    out = guard.before_chat(request, c)
    routed = out or request
    d = preview(routed)
    paid = not routed.constraints.get("free_only")
    guard.after_chat(routed, ChatResponse(provider=d.provider, model=d.model,
                                          cost_usd=cost if paid else 0.0), c)
    return out


def spent(guard, state, name="total"):
    return float(state.get(f"budget:day:{guard.periods.day()}:{name}", 0.0))


# ------------------------------------------------------------------ pricing and recording
def test_estimate_uses_the_previewed_candidates_prices(state):
    g = make_guard(state, daily_usd=1.0)
    assert g.estimate(req(), preview(req())) == pytest.approx(EST)
    cheap = text_request("hi", max_tokens=100)
    assert g.estimate(cheap, preview(cheap)) == pytest.approx((1000 * 10 + 100 * 30) / 1e6)


def test_under_budget_passes_and_records_actual_cost(state):
    g = make_guard(state, daily_usd=1.0, providers={"cloudy": {"daily_usd": 1.0}})
    assert run(g, state, cost=0.031) is None
    assert spent(g, state) == pytest.approx(0.031)
    assert spent(g, state, "provider:cloudy") == pytest.approx(0.031)


# ------------------------------------------------------------------ downgrade and block
def test_downgrade_adds_free_constraint_and_reserves_nothing(state):
    g = make_guard(state, daily_usd=0.05, on_exceed="downgrade")
    assert run(g, state) is None  # 0.04 of 0.05
    out = g.before_chat(req(), ctx(state))
    assert out is not None and out.constraints == {"free_only": True}
    assert preview(out).provider == "local"
    assert spent(g, state) == pytest.approx(0.04)  # the refused reservation was taken back
    assert g.metrics.get("legion_budget_downgrades_total") == 1


def test_block_raises_429_naming_limit_and_reset(state):
    clock = Clock(dt.datetime(2026, 11, 25, 23, 0, tzinfo=dt.UTC))
    g = make_guard(state, clock=clock, daily_usd=0.05, on_exceed="block")
    run(g, state)
    with pytest.raises(RequestRefused) as ei:
        g.before_chat(req(), ctx(state))
    e = ei.value
    assert e.status == 429
    assert e.retry_after == pytest.approx(3600)
    assert "daily limit of $0.05" in e.message and "2026-11-26T00:00:00+00:00" in e.message
    assert e.details["limit"] == "daily"
    assert spent(g, state) == pytest.approx(0.04)


def test_downgrade_without_a_free_provider_blocks(state):
    g = make_guard(state, daily_usd=0.05)
    run(g, state)
    with pytest.raises(RequestRefused, match="no free provider"):
        g.before_chat(req(), ctx(state, route_preview=no_free_preview))


def test_free_requests_pass_even_when_spent(state):
    g = make_guard(state, daily_usd=0.01, on_exceed="block")
    state.incr(f"budget:day:{g.periods.day()}:total", 5.0)
    assert g.before_chat(req(constraints={"free_only": True}), ctx(state)) is None


# ------------------------------------------------------------------ other limits
def test_per_provider_daily_limit_only_affects_that_provider(state):
    g = make_guard(state, providers={"cloudy": {"daily_usd": 0.05}}, on_exceed="block")
    run(g, state)
    with pytest.raises(RequestRefused, match="daily limit of provider 'cloudy'"):
        g.before_chat(req(), ctx(state))
    assert g.before_chat(req(provider="other"), ctx(state)) is None


def test_per_request_limit(state):
    g = make_guard(state, providers={"cloudy": {"per_request_usd": 0.02}}, on_exceed="block")
    with pytest.raises(RequestRefused, match="per-request limit of provider 'cloudy'") as ei:
        g.before_chat(req(), ctx(state))
    assert ei.value.retry_after is None  # waiting does not help a per-request limit
    assert g.before_chat(text_request("hi", max_tokens=100), ctx(state)) is None  # $0.013
    g2 = make_guard(state, providers={"cloudy": {"per_request_usd": 0.02}})
    assert g2.before_chat(req(), ctx(state)).constraints["free_only"] is True


def test_per_caller_and_per_api_key_limits(state):
    g = make_guard(state, per_caller_daily_usd=0.05, per_api_key_daily_usd=0.09, on_exceed="block")
    run(g, state, caller="bob", api_key_id="k1")
    with pytest.raises(RequestRefused, match="caller 'bob'"):
        g.before_chat(req(), ctx(state, caller="bob", api_key_id="k1"))
    run(g, state, caller="alice", api_key_id="k1")  # k1 now at 0.08
    with pytest.raises(RequestRefused, match="API key"):
        g.before_chat(req(), ctx(state, caller="carol", api_key_id="k1"))
    assert g.before_chat(req(), ctx(state, caller="carol", api_key_id="k2")) is None


def test_session_limit(state):
    g = make_guard(state, session_usd=0.05, on_exceed="block")
    run(g, state, request=req(session_id="s1"))
    with pytest.raises(RequestRefused, match="session 's1'"):
        g.before_chat(req(session_id="s1"), ctx(state))
    assert g.before_chat(req(session_id="s2"), ctx(state)) is None


def test_unlimited_counters_are_not_written(state):
    g = make_guard(state, daily_usd=1.0)
    run(g, state, caller="bob")
    assert spent(g, state) == pytest.approx(EST)
    assert state.get(f"budget:day:{g.periods.day()}:provider:cloudy") is None
    assert state.get(f"budget:day:{g.periods.day()}:caller:bob") is None


def test_failover_to_another_provider_moves_the_spend(state):
    g = make_guard(state, daily_usd=1.0, providers={"cloudy": {"daily_usd": 1.0}, "other": {"daily_usd": 1.0}})
    c = ctx(state)
    r = req()
    g.before_chat(r, c)
    assert spent(g, state, "provider:cloudy") == pytest.approx(EST)  # reserved
    g.after_chat(r, ChatResponse(provider="other", model="mid", cost_usd=0.03), c)
    assert spent(g, state, "provider:cloudy") == pytest.approx(0.0)
    assert spent(g, state, "provider:other") == pytest.approx(0.03)
    assert spent(g, state) == pytest.approx(0.03)


def test_unreconciled_reservation_is_released_after_timeout(state):
    g = make_guard(state, daily_usd=1.0, reservation_timeout_seconds=0.001)
    g.before_chat(req(), ctx(state))  # the call then fails: after_chat never comes
    assert spent(g, state) == pytest.approx(EST)
    threading.Event().wait(0.01)
    g._last_sweep = 0.0  # (the sweep runs at most once a second)
    assert g.release_stale(state) == 1
    assert spent(g, state) == pytest.approx(0.0)


# ------------------------------------------------------------------ periods
def test_rollover_at_midnight_in_the_configured_timezone(state):
    # 22:30 UTC on the 25th is 23:30 in Paris: still the 25th there.
    clock = Clock(dt.datetime(2026, 11, 25, 22, 30, tzinfo=dt.UTC))
    g = make_guard(state, clock=clock, daily_usd=0.05, on_exceed="block", timezone="Europe/Paris")
    run(g, state)
    with pytest.raises(RequestRefused) as ei:
        g.before_chat(req(), ctx(state))
    assert ei.value.retry_after == pytest.approx(30 * 60)
    assert "2026-11-26T00:00:00+01:00" in ei.value.message
    clock.when = dt.datetime(2026, 11, 25, 23, 1, tzinfo=dt.UTC)  # 00:01 in Paris
    assert g.periods.day() == "2026-11-26"
    assert g.before_chat(req(), ctx(state)) is None


def test_utc_midnight_does_not_reset_a_new_york_budget(state):
    clock = Clock(dt.datetime(2026, 11, 25, 23, 0, tzinfo=dt.UTC))
    g = make_guard(state, clock=clock, daily_usd=0.05, on_exceed="block", timezone="America/New_York")
    run(g, state)
    clock.when = dt.datetime(2026, 11, 26, 1, 0, tzinfo=dt.UTC)  # 20:00 in New York
    with pytest.raises(RequestRefused):
        g.before_chat(req(), ctx(state))


# ------------------------------------------------------------------ persistence
def test_spend_survives_a_restart(tmp_path):
    path = tmp_path / "data" / "legion.db"
    s1 = Store(path)
    g1 = make_guard(SQLiteState(s1), daily_usd=0.05, on_exceed="block")
    run(g1, g1.state)
    s1.close()
    s2 = Store(path)  # a new process would do exactly this
    try:
        g2 = make_guard(SQLiteState(s2), daily_usd=0.05, on_exceed="block")
        assert spent(g2, g2.state) == pytest.approx(EST)
        with pytest.raises(RequestRefused):
            g2.before_chat(req(), ctx(g2.state))
    finally:
        s2.close()


# ------------------------------------------------------------------ concurrency
@pytest.mark.parametrize("backend", ["sqlite", "memory"])
def test_100_parallel_requests_overshoot_by_at_most_one_request(backend, store):
    state = SQLiteState(store) if backend == "sqlite" else MemoryState()
    limit = 1.0
    g = make_guard(state, daily_usd=limit, on_exceed="block")
    state.incr(f"budget:day:{g.periods.day()}:total", 0.5)  # nearly spent: room for 12 requests
    barrier = threading.Barrier(100)
    outcomes: list[str] = []
    lock = threading.Lock()

    def one(i):
        c = ctx(state)
        r = req()
        barrier.wait()
        try:
            g.before_chat(r, c)
        except RequestRefused:
            with lock:
                outcomes.append("refused")
            return
        g.after_chat(r, ChatResponse(provider="cloudy", model="big", cost_usd=EST), c)
        with lock:
            outcomes.append("ok")

    with ThreadPoolExecutor(max_workers=100) as pool:
        list(pool.map(one, range(100)))
    total = spent(g, state)
    assert total <= limit + EST
    assert outcomes.count("ok") == 12 and outcomes.count("refused") == 88
    assert total == pytest.approx(0.5 + 12 * EST)


# ------------------------------------------------------------------ warnings and gauges
def test_warning_logged_once_per_period_and_exposed_as_gauge(state):
    clock = Clock(dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC))
    g = make_guard(state, clock=clock, daily_usd=0.1, warning_threshold=0.5)
    with capture_logs() as logs:
        run(g, state)  # 0.04: under 50%
        assert g.metrics.get("legion_budget_warning", limit="daily") == 0.0
        run(g, state)  # 0.08: over
        run(g, state, cost=0.001)
    warnings = [e for e in logs if e["event"] == "budget warning threshold crossed"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"
    assert g.metrics.get("legion_budget_warning", limit="daily") == 1.0
    text = g.metrics.render_prometheus()
    assert 'legion_budget_warning{limit="daily"} 1' in text
    assert "# TYPE legion_budget_spend_usd gauge" in text
    clock.when += dt.timedelta(days=1)
    with capture_logs() as logs:
        run(g, state)
        run(g, state)
    assert sum(e["event"] == "budget warning threshold crossed" for e in logs) == 1


# ------------------------------------------------------------------ plugin wiring and settings
def test_hooks_are_wired_through_the_plugin_manager(state):
    pm = PluginManager()
    g = make_guard(state, daily_usd=0.05)
    pm.register(BudgetPlugin(guard=g), name="guard-budget")
    c = ctx(state)
    r = req()
    assert pm.hook.legion_before_chat(request=r, context=c) == []
    pm.hook.legion_after_chat(request=r, response=ChatResponse(provider="cloudy", cost_usd=EST), context=c)
    [out] = pm.hook.legion_before_chat(request=req(), context=c)
    assert out.constraints["free_only"] is True
    schemas = {}
    pm.hook.legion_settings_schema(register=schemas.__setitem__)
    assert schemas["budget"].__name__ == "BudgetSettings"
    assert pm.hook.legion_settings_defaults() == [
        {"budget": {"on_exceed": "downgrade", "warning_threshold": 0.8, "timezone": "UTC"}}]


@pytest.mark.parametrize("raw,key", [
    ({"on_exceed": "explode"}, "budget.on_exceed"),
    ({"timezone": "Mars/Olympus"}, "budget.timezone"),
    ({"providers": {"x": {"daily_usd": -1}}}, "budget.providers.x.daily_usd"),
    ({"dailyusd": 3}, "budget.dailyusd"),
])
def test_bad_settings_name_the_key(raw, key):
    with pytest.raises(SettingsError) as ei:
        load_settings(raw)
    assert key in str(ei.value)


def test_disabled_or_unlimited_guard_does_nothing(state):
    assert make_guard(state).before_chat(req(), ctx(state)) is None
    g = make_guard(state, daily_usd=0.0, enabled=False)
    assert g.before_chat(req(), ctx(state)) is None


def test_session_limits_warn_but_export_no_per_session_series(state):
    metrics = GaugeRegistry()
    g = make_guard(state, metrics=metrics, session_usd=0.05, warning_threshold=0.5)
    with capture_logs() as logs:
        run(g, state, request=req(session_id="s1"))
    assert [e["limit"] for e in logs if e["event"] == "budget warning threshold crossed"] == [
        "limit of session 's1'"]
    assert not any("session" in dict(s.labels).get("limit", "") for s in metrics.samples())
