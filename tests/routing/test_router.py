"""Router filters, ordering, overrides, strategies and explain output, on a real registry
built from `LLMSettings` with in-test provider plugins registered through the real manager."""

from __future__ import annotations

import pytest

from legion_core.errors import ContextOverflow, NoProviderAvailable
from legion_core.hookspecs import hookimpl
from legion_core.hooktypes import ProviderSignal
from legion_core.types import (
    AUTO_MODELS,
    TIERS,
    EmbedRequest,
    ImageBlock,
    Intent,
    Message,
    ModelInfo,
    TextBlock,
    ToolSpec,
    is_auto_model,
    text_request,
)
from tests.routing.routing_fakes import ALL_TIERS

SIMPLE = "What day comes after Tuesday?"
COMPLEX = ("Analyze the trade-offs between microservices and a monolith for a 10-person fintech startup: "
           "compare operational cost, deployment risk and team velocity, then recommend a migration plan "
           "with milestones, and explain why each risk matters.")


def dropped(decision) -> dict[str, str | None]:
    return {f"{c.provider}/{c.model}": c.dropped for c in decision.candidates}


def chain(decision) -> list[str]:
    return [f"{c.provider}/{c.model}" for c in decision.viable()]


# ---------------------------------------------------------------- complexity → tier
def test_simple_question_goes_local_and_analysis_goes_cloud(make_router):
    r = make_router(ALL_TIERS).router
    d = r.decide(text_request(SIMPLE))
    assert (d.provider, d.tier) == ("local", "local")
    assert d.complexity < 0.35 and "complexity" in d.signals
    d2 = r.decide(text_request(COMPLEX))
    assert d2.tier in ("cloud", "frontier"), d2.reason
    assert d2.complexity > d.complexity


def test_local_outage_lands_on_cheapest_cloud(make_router):
    b = make_router({k: v for k, v in ALL_TIERS.items() if k != "fleet"})
    b.registry.set_reachable("local", False, "connection refused")
    d = b.router.decide(text_request(SIMPLE))
    assert (d.provider, d.model) == ("openai", "mini")
    assert dropped(d)["local/tiny"] == "unreachable: connection refused"
    assert "nothing viable in local" in d.reason


def test_failover_chain_goes_up_cheaper_first_then_down(make_router):
    r = make_router(ALL_TIERS).router
    d = r.decide(text_request("x", intent=Intent(capability="moderate")))  # starts at fleet
    assert chain(d) == ["fleet/llama-70b", "openai/mini", "openai/big", "anthropic/sonnet",
                        "frontier/opus", "local/tiny"]


def test_complexity_thresholds_are_settings(make_router):
    r = make_router(ALL_TIERS, routing={"complexity_thresholds": {
        "local": 0.0, "fleet": 0.001, "cloud": 0.9, "frontier": 0.95}}).router
    assert r.decide(text_request(SIMPLE)).tier == "fleet"


@pytest.mark.parametrize("thresholds", [
    {"local": 0.0, "fleet": 0.35, "cloud": 0.55, "frontier": 0.85},
    {"local": 0.0, "fleet": 0.5, "cloud": 0.5, "frontier": 0.9},   # a tie: the lower tier
    {"fleet": 0.2, "cloud": 0.6},                                   # nothing below 0.2: local
    {"local": 0.3, "frontier": 0.3, "openai_compat": 0.1},
])
def test_the_preferred_tier_is_the_highest_threshold_reached(make_router, thresholds):
    r = make_router(ALL_TIERS, routing={"complexity_thresholds": thresholds}).router
    for c in (0.0, 0.05, 0.1, 0.2, 0.29, 0.3, 0.35, 0.5, 0.55, 0.6, 0.85, 0.9, 1.0):
        reached = [(thr, TIERS.index(t), t) for t, thr in thresholds.items() if c >= thr]
        expected = min(reached, key=lambda x: (-x[0], x[1]))[2] if reached else "local"
        assert r._preferred_tier(c) == expected, (c, thresholds)
    assert r._preferred_tier(float("nan")) == "local"


def test_intent_capability_sets_the_starting_tier(make_router):
    r = make_router(ALL_TIERS).router
    assert r.decide(text_request(COMPLEX, intent=Intent(capability="basic"))).tier == "local"
    assert r.decide(text_request(SIMPLE, intent=Intent(capability="reasoning"))).tier == "cloud"


# ---------------------------------------------------------------- filters
def test_privacy_strict_never_reaches_cloud_or_frontier(make_router):
    r = make_router(ALL_TIERS).router
    d = r.decide(text_request(COMPLEX, intent=Intent(privacy="strict")))
    assert d.tier in ("local", "fleet")
    for c in d.candidates:
        if c.tier in ("cloud", "frontier"):
            assert c.dropped == "privacy strict: never cloud"


def test_privacy_strict_beats_an_explicit_cloud_provider(make_router):
    r = make_router(ALL_TIERS).router
    with pytest.raises(NoProviderAvailable) as ei:
        r.decide(text_request("hi", provider="openai", intent=Intent(privacy="strict")))
    assert "privacy strict" in str(ei.value)
    assert ei.value.decision is not None and ei.value.decision.provider is None


def test_required_capabilities_filter(make_router):
    r = make_router(ALL_TIERS).router
    req = text_request("hi", tools=[ToolSpec(name="lookup")])
    d = r.decide(req)
    assert d.provider == "fleet"  # the cheapest with tools; local/tiny lacks them
    assert dropped(d)["local/tiny"] == "lacks capability: tools"
    vision = r.decide(text_request("hi").model_copy(update={"messages": [Message(role="user", content=[
        TextBlock(text="what is this?"), ImageBlock(data="AAAA")])]}))
    assert (vision.provider, vision.model) == ("openai", "mini")
    thinking = r.decide(text_request("hi", thinking=True))
    assert thinking.provider == "anthropic" and dropped(thinking)["openai/mini"] == "lacks capability: thinking"


def test_json_is_a_preference_not_a_filter(make_router):
    b = make_router({"anthropic": {"type": "anthropic"}})
    d = b.router.decide(text_request("hi", response_format={"type": "json_object"}))
    assert d.provider == "anthropic"  # no native JSON mode: the pipeline's prompt fallback serves it


def test_context_window_keeps_ten_percent_headroom(make_router):
    r = make_router({"local": {"type": "ollama"}, "openai": {"type": "openai"}}).router
    # local/tiny has 4096 tokens: 3600 is over 90% of it.
    basic = Intent(capability="basic")  # start at local whatever the estimator thinks of "aaaa"
    fits = text_request("a" * (3500 * 4), intent=basic)
    too_big = text_request("a" * (3700 * 4), intent=basic)
    assert r.decide(fits, ).provider == "local"
    d = r.decide(too_big)
    assert d.provider == "openai"
    assert "context window 4096 too small" in dropped(d)["local/tiny"]


def test_estimated_tokens_count_system_prompt_and_tools(make_router):
    r = make_router({"local": {"type": "ollama"}}).router
    base = r.explain(text_request("hello")).estimated_tokens
    with_sys = r.explain(text_request("hello", system="s" * 400)).estimated_tokens
    tool = ToolSpec(name="search", description="d" * 400, parameters={"type": "object", "properties": {
        "q": {"type": "string", "description": "x" * 400}}})
    with_tools = r.explain(text_request("hello", tools=[tool])).estimated_tokens
    assert with_sys >= base + 100
    assert with_tools >= base + 200


def test_max_tokens_counts_against_the_window(make_router):
    r = make_router({"local": {"type": "ollama"}, "openai": {"type": "openai"}}).router
    assert r.decide(text_request("hi", max_tokens=4000)).provider == "openai"


def test_a_request_no_window_can_hold_is_a_context_overflow_not_an_outage(make_router):
    r = make_router(ALL_TIERS).router
    with pytest.raises(ContextOverflow) as ei:
        r.decide(text_request("hi", max_tokens=500_000))
    e = ei.value
    assert (e.status, e.kind, e.failover) == (400, "context_overflow", False)
    assert "largest context window is 200000" in str(e) and "max_tokens" in str(e)
    assert e.decision is not None and e.decision.provider is None
    assert len(e.decision.candidates) == 6
    assert all(c.dropped.startswith("context window") for c in e.decision.candidates)
    # explain still answers, without raising
    assert r.explain(text_request("hi", max_tokens=500_000)).provider is None


@pytest.mark.parametrize("kw", [
    {"model": "tiny"},  # the model asked for is too small; the others were not asked for
    {"provider": "local"},
    {"intent": Intent(privacy="strict")},  # local and fleet too small, the cloud not allowed
    {"constraints": {"max_tier": "fleet"}},
    {"tools": [ToolSpec(name="t")], "intent": Intent(privacy="strict")},  # local lacks tools, fleet too small
])
def test_context_overflow_among_the_candidates_the_request_allows(make_router, kw):
    r = make_router(ALL_TIERS).router
    with pytest.raises(ContextOverflow):
        r.decide(text_request("hi", max_tokens=100_000, **kw))


def test_a_big_enough_model_that_is_down_is_an_outage_not_an_overflow(make_router):
    b = make_router(ALL_TIERS)
    b.registry.set_reachable("anthropic", False, "connection refused")
    b.health.record_failure("frontier", "unavailable", retry_after=600)
    with pytest.raises(NoProviderAvailable) as ei:  # 503: sonnet and opus fit, retrying may work
        b.router.decide(text_request("hi", max_tokens=150_000))
    assert "context window" in str(ei.value) and "unreachable" in str(ei.value)


def test_lacking_a_capability_everywhere_is_not_an_overflow(make_router):
    r = make_router({"local": {"type": "ollama"}}).router
    with pytest.raises(NoProviderAvailable):
        r.decide(text_request("hi", tools=[ToolSpec(name="t")], max_tokens=100_000))


def test_embedding_input_no_window_can_hold_is_a_context_overflow(make_router):
    r = make_router(ALL_TIERS).router
    with pytest.raises(ContextOverflow) as ei:
        r.decide_embed(EmbedRequest(input=["word " * 40_000]))
    assert ei.value.status == 400 and ei.value.decision is not None


def test_discovery_drops_models_the_provider_does_not_have(make_router):
    b = make_router({"local": {"type": "ollama", "models": {"other": {"context_window": 8192}}},
                     "openai": {"type": "openai"}})
    assert b.router.decide(text_request(SIMPLE)).provider == "local"  # before discovery: catalog trusted
    b.registry.set_discovered("local", [ModelInfo(id="other", available=True)])
    d = b.router.decide(text_request(SIMPLE))
    assert (d.provider, d.model) == ("local", "other")
    assert dropped(d)["local/tiny"] == "not present on the provider (discovery)"
    b.registry.set_discovered("local", [ModelInfo(id="other", available=False)])
    d = b.router.decide(text_request(SIMPLE))
    assert d.provider == "openai"
    assert dropped(d)["local/other"] == "not available on the provider (discovery)"


def test_memory_filter_keeps_the_floor(make_router):
    gib = 1024 ** 3
    providers = {"local": {"type": "ollama", "models": {"tiny": {"memory_bytes": 4 * gib}}},
                 "openai": {"type": "openai"}}
    fits = make_router(providers, memory=6 * gib).router  # 6 GiB free - 1 GiB floor >= 4 GiB
    assert fits.decide(text_request(SIMPLE)).provider == "local"
    tight = make_router(providers, memory=int(4.5 * gib)).router  # 3.5 GiB above the floor
    d = tight.decide(text_request(SIMPLE))
    assert d.provider == "openai"
    assert "does not fit in memory: needs 4096 MB" in dropped(d)["local/tiny"]
    assert "1024 MB floor" in dropped(d)["local/tiny"]


def test_loaded_models_skip_the_memory_check(make_router):
    gib = 1024 ** 3
    b = make_router({"local": {"type": "ollama", "models": {"tiny": {"memory_bytes": 4 * gib, "loaded": True}}}},
                    memory=gib)
    assert b.router.decide(text_request(SIMPLE)).provider == "local"


def test_open_circuit_drops_the_provider_and_half_open_brings_it_back(make_router, clock):
    b = make_router({"local": {"type": "ollama"}, "openai": {"type": "openai"}})
    for _ in range(3):
        b.health.record_failure("local", "unavailable")
    d = b.router.decide(text_request(SIMPLE))
    assert d.provider == "openai" and dropped(d)["local/tiny"].startswith("circuit open")
    clock.advance(60)
    assert b.router.decide(text_request(SIMPLE)).provider == "local"


def test_rate_limited_provider_is_skipped_until_retry_after(make_router, clock):
    b = make_router({"local": {"type": "ollama"}, "openai": {"type": "openai"}})
    b.health.record_failure("local", "rate_limited", retry_after=5)
    assert b.router.decide(text_request(SIMPLE)).provider == "openai"
    clock.advance(5)
    assert b.router.decide(text_request(SIMPLE)).provider == "local"


def test_request_constraints_from_guards(make_router):
    r = make_router(ALL_TIERS).router
    d = r.decide(text_request(COMPLEX, constraints={"max_tier": "fleet"}))
    assert d.tier in ("local", "fleet") and dropped(d)["frontier/opus"] == "above max_tier fleet (request constraint)"
    free = r.decide(text_request(COMPLEX, constraints={"free_only": True}))
    assert free.provider == "local" and dropped(free)["fleet/llama-70b"] == "not free (request constraint free_only)"
    nc = r.decide(text_request(COMPLEX, constraints={"never_cloud": True}))
    assert nc.tier not in ("cloud", "frontier")
    only = r.decide(text_request(SIMPLE, constraints={"providers": "anthropic"}))
    assert only.provider == "anthropic"
    assert dropped(only)["local/tiny"] == "provider not allowed (request constraint)"
    assert r.decide(text_request(SIMPLE, constraints={"providers": ["fleet", "openai"]})).provider == "fleet"


def test_disabled_tier_is_dropped(make_router):
    r = make_router(ALL_TIERS, routing={"tiers": {"local": {"enabled": False}}}).router
    d = r.decide(text_request(SIMPLE))
    assert d.provider == "fleet" and dropped(d)["local/tiny"] == "tier local disabled in settings"


def test_exclude_removes_tried_candidates(make_router):
    r = make_router(ALL_TIERS).router
    d = r.decide(text_request(SIMPLE), exclude=frozenset({"local", "fleet/llama-70b"}))
    assert d.provider == "openai"
    assert dropped(d)["local/tiny"] == dropped(d)["fleet/llama-70b"] == "excluded (already tried)"


# ---------------------------------------------------------------- explicit choices
def test_explicit_model_provider_tier_override_rules(make_router):
    rules = [{"name": "all-frontier", "priority": 100, "then": {"tier": "frontier"}}]
    r = make_router(ALL_TIERS, routing={"rules": rules}).router
    assert r.decide(text_request(SIMPLE)).provider == "frontier"
    assert (r.decide(text_request(SIMPLE, model="big")).provider, r.decide(text_request(SIMPLE, model="big")).model) \
        == ("openai", "big")
    d = r.decide(text_request(SIMPLE, model="anthropic/sonnet"))
    assert (d.provider, d.model, d.rule) == ("anthropic", "sonnet", None)
    assert "request asks for model 'sonnet'" in d.reason
    assert r.decide(text_request(SIMPLE, provider="fleet")).provider == "fleet"
    assert r.decide(text_request(COMPLEX, tier="local")).provider == "local"
    d = r.decide(text_request(SIMPLE, tier="cloud"))
    assert (d.provider, d.model) == ("openai", "mini")
    assert dropped(d)["local/tiny"] == "request asks for tier 'cloud'"


AUTO_NAMES = ["legion/auto", "auto", "legion", "legion-auto", "default", "", " Legion/Auto ", "DEFAULT"]


@pytest.mark.parametrize("name", AUTO_NAMES)
def test_auto_model_names_mean_route(make_router, name):
    r = make_router(ALL_TIERS).router
    d = r.decide(text_request(SIMPLE, model=name))
    assert d == r.decide(text_request(SIMPLE, model=None)).model_copy(update={"decision_us": d.decision_us})
    assert (d.provider, d.model) == ("local", "tiny")
    assert not any("request asks for" in (c.dropped or "") for c in d.candidates)


@pytest.mark.parametrize("name", [*AUTO_NAMES, None])
def test_is_auto_model_is_one_case_insensitive_set(name):
    assert is_auto_model(name)
    assert name is None or name.strip().lower() in AUTO_MODELS


@pytest.mark.parametrize("name", ["gpt-4o", "auto-1", "legion/autox", "tiny", "local/tiny", "defaults"])
def test_concrete_model_names_are_not_auto(name):
    assert not is_auto_model(name)


def test_unknown_model_is_a_clear_error(make_router):
    r = make_router(ALL_TIERS).router
    with pytest.raises(NoProviderAvailable) as ei:
        r.decide(text_request("hi", model="gpt-17"))
    assert "request asks for model 'gpt-17'" in str(ei.value)
    assert "Known models: local/tiny, fleet/llama-70b" in str(ei.value)


def test_uncatalogued_model_is_trusted_when_its_provider_is_named(make_router):
    r = make_router(ALL_TIERS).router
    d = r.decide(text_request("hi", model="openai/gpt-9-preview", tools=[ToolSpec(name="t")]))
    assert (d.provider, d.model, d.tier) == ("openai", "gpt-9-preview", "cloud")
    d = r.decide(text_request("hi", provider="anthropic", model="claude-next"))
    assert (d.provider, d.model) == ("anthropic", "claude-next")
    # privacy still applies to it
    with pytest.raises(NoProviderAvailable, match="privacy strict"):
        r.decide(text_request("hi", model="openai/gpt-9-preview", intent=Intent(privacy="strict")))


def test_uncatalogued_model_missing_after_discovery_is_dropped(make_router):
    b = make_router({"local": {"type": "ollama"}})
    b.registry.set_discovered("local", [ModelInfo(id="tiny", available=True)])
    with pytest.raises(NoProviderAvailable, match="not present on the provider"):
        b.router.decide(text_request("hi", model="local/llama-unpulled"))


def test_aliases(make_router):
    r = make_router(ALL_TIERS, routing={"aliases": {"fast": {"tier": "local"},
                                                   "smart": {"provider": "anthropic"},
                                                   "best": {"model": "frontier/opus"}}}).router
    assert r.decide(text_request(COMPLEX, model="fast")).provider == "local"
    assert r.decide(text_request(SIMPLE, model="smart")).model == "sonnet"
    d = r.decide(text_request(SIMPLE, model="best"))
    assert (d.provider, d.model) == ("frontier", "opus") and "alias 'best'" in d.reason


# ---------------------------------------------------------------- strategies
def _two_cloud(make_router, strategy, **kw):
    return make_router({"a": {"type": "anthropic"}, "b": {"type": "anthropic"}},
                       routing={"strategy": strategy}, **kw)


def test_cost_optimized_prefers_cheaper_price_within_a_tier(make_router):
    r = make_router({"anthropic": {"type": "anthropic"}, "openai": {"type": "openai"}}).router
    assert chain(r.decide(text_request(COMPLEX)))[:3] == ["openai/mini", "openai/big", "anthropic/sonnet"]


def test_latency_optimized_prefers_lower_p50(make_router):
    b = _two_cloud(make_router, "latency_optimized")
    b.health.record_success("a", 900)
    b.health.record_success("b", 300)
    assert b.router.decide(text_request(COMPLEX)).provider == "b"
    b.health.record_success("b", 1500)
    b.health.record_success("b", 1500)
    assert b.router.decide(text_request(COMPLEX)).provider == "a"


def test_round_robin_rotates_among_the_top(make_router):
    b = _two_cloud(make_router, "round_robin")
    picks = [b.router.decide(text_request(COMPLEX)).provider for _ in range(4)]
    assert picks == ["a", "b", "a", "b"]
    # explain does not advance the rotation
    assert b.router.explain(text_request(COMPLEX)).provider == b.router.explain(text_request(COMPLEX)).provider


def test_cost_minimize_intent_forces_cost_optimized(make_router):
    b = _two_cloud(make_router, "round_robin")
    d = b.router.decide(text_request(COMPLEX, intent=Intent(cost="minimize")))
    assert d.strategy == "cost_optimized"


# ---------------------------------------------------------------- health and signals in the score
def test_latency_penalty_shifts_routing_within_a_tier(make_router):
    b = _two_cloud(make_router, "cost_optimized")
    assert b.router.decide(text_request(COMPLEX)).provider == "a"  # configuration order breaks the tie
    for _ in range(5):
        b.health.record_success("a", 6000)
    d = b.router.decide(text_request(COMPLEX))
    assert d.provider == "b"
    scores = {c.provider: c.score for c in d.candidates}
    assert scores["a"] == pytest.approx(-4.0) and scores["b"] == 0.0


class GpuSignals:
    def __init__(self, penalties=None, unhealthy=()):
        self.penalties = penalties or {}
        self.unhealthy = set(unhealthy)

    @hookimpl
    def legion_provider_signals(self, provider):
        if provider.name in self.unhealthy:
            return ProviderSignal("gpu", healthy=False, detail="saturated")
        if provider.name in self.penalties:
            return [ProviderSignal("gpu", penalty=self.penalties[provider.name]), None]
        return None


def test_provider_signal_penalty_shifts_routing(make_router):
    b = make_router({"a": {"type": "anthropic"}, "b": {"type": "anthropic"}},
                    plugins=(GpuSignals(penalties={"a": 3.0}),))
    d = b.router.decide(text_request(COMPLEX))
    assert d.provider == "b"
    assert {c.provider: c.score for c in d.candidates}["a"] == -3.0


def test_unhealthy_provider_signal_drops_the_provider(make_router):
    b = make_router({"local": {"type": "ollama"}, "openai": {"type": "openai"}},
                    plugins=(GpuSignals(unhealthy={"local"}),))
    d = b.router.decide(text_request(SIMPLE))
    assert d.provider == "openai"
    assert dropped(d)["local/tiny"] == "signal gpu: unhealthy (saturated)"


class ComplexityOverride:
    @hookimpl(tryfirst=True)
    def legion_request_signals(self, request):
        return {"complexity": 0.99, "domain": 0.5}


def test_a_plugin_replaces_the_builtin_complexity_signal(make_router):
    b = make_router(ALL_TIERS, plugins=(ComplexityOverride(),))
    d = b.router.decide(text_request(SIMPLE))
    assert d.complexity == 0.99 and d.signals["domain"] == 0.5
    assert d.tier == "frontier"


class OddSignals:
    def __init__(self, value):
        self.value = value

    @hookimpl(tryfirst=True)
    def legion_request_signals(self, request):
        return {"complexity": self.value}


@pytest.mark.parametrize("value, expected", [(7.5, 1.0), (-2, 0.0), ("high", None), (float("nan"), None)])
def test_out_of_range_or_bad_complexity_signals(make_router, value, expected):
    b = make_router(ALL_TIERS, plugins=(OddSignals(value),))
    d = b.router.decide(text_request(SIMPLE))
    if expected is None:  # not a number: the built-in estimate is used instead
        assert d.complexity < 0.35 and d.tier == "local"
    else:
        assert d.complexity == expected


def test_without_the_builtin_plugin_the_router_estimates_itself(make_router):
    b = make_router(ALL_TIERS, builtin_signals=False)
    assert b.router.decide(text_request(SIMPLE)).complexity < 0.35


# ---------------------------------------------------------------- complexity only where it decides
class LazyComplexity:
    """A request signal given as a callable: the router calls it only when it needs the value."""

    def __init__(self, value: float = 0.9) -> None:
        self.value = value
        self.calls = 0

    @hookimpl(tryfirst=True)
    def legion_request_signals(self, request):
        def complexity() -> float:
            self.calls += 1
            return self.value

        return {"complexity": complexity, "domain": lambda: 0.25}


def test_a_named_model_on_one_tier_is_routed_without_estimating(make_router):
    lazy = LazyComplexity()
    b = make_router(ALL_TIERS, plugins=(lazy,))
    d = b.router.decide(text_request(SIMPLE, model="big"))
    assert (d.provider, d.model) == ("openai", "big")
    assert lazy.calls == 0 and d.complexity is None and "complexity" not in d.signals
    assert d.signals["domain"] == 0.25  # other lazy signals are recorded as values
    # the built-in estimator is lazy too
    b2 = make_router(ALL_TIERS)
    assert b2.router.decide(text_request(COMPLEX, model="big")).complexity is None
    assert b2.router.decide(text_request(COMPLEX, provider="openai")).complexity is None
    assert b2.router.decide(text_request(COMPLEX, tier="cloud")).complexity is None  # two providers, one tier
    assert b2.router.decide(text_request(COMPLEX)).complexity > 0.5


def test_auto_routing_evaluates_a_lazy_complexity_once(make_router):
    lazy = LazyComplexity()
    b = make_router(ALL_TIERS, plugins=(lazy,))
    d = b.router.decide(text_request(SIMPLE))
    assert lazy.calls == 1 and d.complexity == 0.9 and d.signals["complexity"] == 0.9
    assert d.tier == "frontier"


def test_a_named_model_on_two_tiers_is_estimated_to_pick_the_tier(make_router):
    lazy = LazyComplexity(0.0)
    providers = {"openai": {"type": "openai"}, "proxy": {"type": "openai", "tier": "fleet"}}
    b = make_router(providers, plugins=(lazy,))
    d = b.router.decide(text_request(SIMPLE, model="mini"))
    assert lazy.calls == 1 and d.complexity == 0.0
    assert chain(d) == ["proxy/mini", "openai/mini"]  # the easy ask starts at the lower tier
    lazy.value = 0.99
    assert chain(b.router.decide(text_request(SIMPLE, model="mini")))[0] == "openai/mini"


class BrokenLazySignals:
    @hookimpl(tryfirst=True)
    def legion_request_signals(self, request):
        def boom() -> float:
            raise RuntimeError("classifier down")

        return {"complexity": boom, "domain": boom}


def test_a_lazy_signal_that_raises_is_logged_and_left_out(make_router):
    b = make_router(ALL_TIERS, plugins=(BrokenLazySignals(),))
    d = b.router.decide(text_request(SIMPLE))
    assert d.tier == "local" and d.complexity < 0.35  # the built-in estimate stands in
    assert "domain" not in d.signals


def test_a_rule_on_complexity_makes_a_named_model_estimated(make_router):
    lazy = LazyComplexity(0.9)
    rules = [{"name": "hard", "when": {"complexity_gte": 0.5}, "constraint": "never_cloud"}]
    b = make_router(ALL_TIERS, plugins=(lazy,), routing={"rules": rules})
    d = b.router.explain(text_request(SIMPLE, model="big"))
    assert lazy.calls == 1 and d.complexity == 0.9
    assert d.provider is None and dropped(d)["openai/big"] == "never_cloud (rule 'hard')"


# ---------------------------------------------------------------- explain, errors, defaults
def test_explain_lists_every_candidate_with_reasons_and_never_raises(make_router):
    b = make_router(ALL_TIERS)
    b.registry.set_reachable("fleet", False, "timeout")
    d = b.router.explain(text_request("hi", tools=[ToolSpec(name="t")], intent=Intent(privacy="strict")))
    assert d.provider is None  # nothing viable: explain still answers
    assert dropped(d) == {
        "local/tiny": "lacks capability: tools",
        "fleet/llama-70b": "unreachable: timeout",
        "openai/mini": "privacy strict: never cloud",
        "openai/big": "privacy strict: never cloud",
        "anthropic/sonnet": "privacy strict: never cloud",
        "frontier/opus": "privacy strict: never cloud",
    }
    assert d.decision_us > 0 and d.estimated_tokens > 0 and d.complexity is not None
    assert "no viable candidate" in d.reason


def test_decision_lists_viable_first_in_chain_order(make_router):
    b = make_router(ALL_TIERS)
    d = b.router.decide(text_request(SIMPLE, tools=[ToolSpec(name="t")]))
    flags = [c.dropped is None for c in d.candidates]
    assert flags == sorted(flags, reverse=True)
    assert d.candidates[0].provider == d.provider


def test_no_provider_configured(make_router):
    r = make_router({}).router
    with pytest.raises(NoProviderAvailable, match="no provider is configured"):
        r.decide(text_request("hi"))
    assert r.explain(text_request("hi")).candidates == []


def test_auto_default_provider_order_breaks_ties(make_router):
    # Two equally priced cloud models: the auto-detected default (bedrock before anthropic in the
    # priority list bedrock, anthropic, openai, ...) wins the tie whatever the configuration order.
    b = make_router({"zz-anthropic": {"type": "anthropic"},
                     "bedrock": {"type": "bedrock", "tier": "cloud",
                                 "models": {"opus": {"input_price": 3.0, "output_price": 15.0}}}})
    assert b.registry.default_provider == "bedrock"
    d = b.router.decide(text_request(COMPLEX))
    assert chain(d) == ["bedrock/opus", "zz-anthropic/sonnet"]


def test_configured_default_provider_wins_ties(make_router):
    b = make_router({"a": {"type": "anthropic"}, "b": {"type": "anthropic"}}, llm={"default_provider": "b"})
    assert b.router.decide(text_request(COMPLEX)).provider == "b"


def test_routing_disabled_uses_the_default_provider(make_router):
    b = make_router(ALL_TIERS, routing={"enabled": False}, llm={"default_provider": "anthropic"})
    d = b.router.decide(text_request(SIMPLE))
    assert d.provider == "anthropic" and "routing disabled" in d.reason


def test_escalation_candidates_are_strictly_more_capable_cheapest_first(make_router):
    r = make_router(ALL_TIERS).router
    req = text_request(SIMPLE)
    d = r.decide(req)
    ups = r.escalation_candidates(req, d)
    assert [f"{c.provider}/{c.model}" for c in ups] == ["fleet/llama-70b", "openai/mini", "openai/big",
                                                       "anthropic/sonnet", "frontier/opus"]
    top = r.decide(text_request(SIMPLE, tier="frontier"))
    assert r.escalation_candidates(req, top) == []


def test_escalation_respects_privacy(make_router):
    r = make_router(ALL_TIERS).router
    req = text_request(SIMPLE, intent=Intent(privacy="strict"))
    ups = r.escalation_candidates(req, r.decide(req))
    assert [c.provider for c in ups] == ["fleet"]


def test_decide_embed_prefers_local_then_cheapest(make_router):
    b = make_router(ALL_TIERS)
    d = b.router.decide_embed(EmbedRequest(input=["hello"]))
    assert (d.provider, d.model) == ("local", "nomic-embed")
    assert chain(d) == ["local/nomic-embed", "openai/embed-small"]
    b.registry.set_reachable("local", False, "down")
    assert b.router.decide_embed(EmbedRequest(input=["hello"])).provider == "openai"
    strict = EmbedRequest(input=["x"], intent=Intent(privacy="strict"))
    with pytest.raises(NoProviderAvailable, match="embedding"):
        b.router.decide_embed(strict)
    explicit = b.router.decide_embed(EmbedRequest(input=["x"], model="openai/embed-small"))
    assert explicit.provider == "openai"
    b.registry.set_reachable("local", True)
    many_short = b.router.decide_embed(EmbedRequest(input=["a" * 4000] * 10))  # each fits in 2048 tokens
    assert many_short.provider == "local"
    one_long = b.router.decide_embed(EmbedRequest(input=["a" * 8000]))
    assert one_long.provider == "openai"
    assert "exceeds its context window 2048" in dropped(one_long)["local/nomic-embed"]


def test_embedding_models_are_not_chat_candidates(make_router):
    d = make_router(ALL_TIERS).router.decide(text_request(SIMPLE))
    assert not any(c.model in ("nomic-embed", "embed-small") for c in d.candidates)


def test_catalog_changes_are_seen(make_router):
    b = make_router({"local": {"type": "ollama"}, "openai": {"type": "openai"}})
    assert b.router.decide(text_request(SIMPLE)).model == "tiny"
    b.registry.set_discovered("local", [ModelInfo(id="qwen", available=True)])
    assert b.router.decide(text_request(SIMPLE)).model == "qwen"
    openai = b.registry.providers["openai"]
    b.registry.remove("local")  # providers removed and added between decisions count too
    assert b.router.decide(text_request(SIMPLE)).provider == "openai"
    b.registry.remove("openai")
    with pytest.raises(NoProviderAvailable):
        b.router.decide(text_request(SIMPLE))
    b.registry.add(openai)
    assert b.router.decide(text_request(SIMPLE)).provider == "openai"


# ---------------------------------------------------------------- values and safety
def test_candidates_are_frozen_values_equal_to_plain_ones(make_router):
    from legion_core.types import CandidateScore

    r = make_router(ALL_TIERS).router
    c = r.decide(text_request(SIMPLE)).candidates[0]
    assert c == CandidateScore(provider="local", model="tiny", tier="local")
    assert CandidateScore(provider="local", model="tiny", tier="local") == c
    with pytest.raises(Exception, match="frozen"):
        c.dropped = "x"
    assert c.model_copy(update={"dropped": "x"}).dropped == "x"
    assert r.decide(text_request(SIMPLE)).model_dump()["candidates"][0]["provider"] == "local"


def test_rule_values_cannot_inject_code(make_router):
    evil = "x') or __import__('os').system('false') or ('"
    rules = [{"name": "evil", "when": {"caller": evil}, "then": {"provider": "fleet"}}]
    r = make_router(ALL_TIERS, routing={"rules": rules}).router
    assert r.decide(text_request(SIMPLE, caller="someone")).rule is None
    assert r.decide(text_request(SIMPLE, caller=evil)).rule == "evil"


def test_unknown_tier_counts_as_cloud_for_privacy(make_router):
    b = make_router({"odd": {"type": "ollama", "tier": "edge"}})
    d = b.router.explain(text_request(SIMPLE, intent=Intent(privacy="strict")))
    assert d.provider is None and d.candidates[0].dropped == "privacy strict: never cloud"


def test_token_estimate_counts_every_block_kind():
    from legion_core.routing.tokens import PER_IMAGE, estimate_tokens
    from legion_core.types import ThinkingBlock, ToolResultBlock, ToolUseBlock

    base = estimate_tokens(text_request("x"))
    msgs = [Message(role="user", content="x"),
            Message(role="assistant", content=[ThinkingBlock(thinking="t" * 400),
                                               ToolUseBlock(id="1", name="f", input={"q": "q" * 400})]),
            Message(role="user", content=[ToolResultBlock(tool_use_id="1", content="r" * 400),
                                          ImageBlock(data="AAAA")])]
    full = estimate_tokens(text_request("x").model_copy(update={"messages": msgs}))
    assert full >= base + 300 + PER_IMAGE
