"""Both seed shapes load: one provider + api_key, and the providers map; routing and discovery."""

from __future__ import annotations

import datetime as dt

from legion_core.settings.loader import load_settings


def test_single_provider_shape_becomes_a_one_entry_providers_map(home, write):
    f = write("10-llm.json", {"llm": {"provider": "openai", "api_key": "env://OPENAI_API_KEY",
                                      "model": "gpt-4o-mini"}})
    loaded = load_settings(home)
    llm = loaded.settings.llm
    assert list(llm.providers) == ["openai"]
    p = llm.providers["openai"]
    assert (p.type, p.enabled, p.api_key, p.default_model) == \
        ("openai", True, "env://OPENAI_API_KEY", "gpt-4o-mini")
    assert llm.default_provider == "openai"
    # The derived entry is credited to the keys that produced it.
    assert loaded.provenance["llm.providers.openai.api_key"] == str(f)
    assert loaded.provenance["llm.providers.openai.default_model"] == str(f)
    assert loaded.provenance["llm.providers.openai.max_connections"] == "default"


def test_single_provider_api_key_may_be_a_fallback_chain(home, write):
    write("10.json", {"llm": {"provider": "anthropic",
                              "api_key": ["env://ANTHROPIC_API_KEY", "vault://secret/legion/anthropic#key"]}})
    p = load_settings(home).settings.llm.providers["anthropic"]
    assert p.api_key == ["env://ANTHROPIC_API_KEY", "vault://secret/legion/anthropic#key"]


def test_providers_map_shape(home, write):
    write("10-providers.json", {"llm": {
        "default_provider": "ollama",
        "providers": {
            "ollama": {"enabled": True, "tier": "local", "base_url": "http://127.0.0.1:11434",
                       "default_model": "llama3.2:3b"},
            "gpu-box": {"type": "vllm", "enabled": True, "tier": "fleet",
                        "base_url": "http://10.0.0.5:8000/v1", "default_model": "qwen2.5-32b"},
            "bedrock": {"enabled": False, "tier": "cloud", "region": "us-east-1",
                        "default_model": "anthropic.claude-3-5-sonnet"},
            "openai": {"tier": "frontier", "api_key": "env://OPENAI_API_KEY", "cost_multiplier": 0.8},
        }}})
    llm = load_settings(home).settings.llm
    assert list(llm.providers) == ["ollama", "gpu-box", "bedrock", "openai"]
    o = llm.providers["ollama"]
    assert (o.enabled, o.tier, o.base_url, o.default_model) == \
        (True, "local", "http://127.0.0.1:11434", "llama3.2:3b")
    assert llm.providers["gpu-box"].type == "vllm"
    assert llm.providers["bedrock"].enabled is False
    assert llm.providers["bedrock"].extra_options() == {"region": "us-east-1"}
    assert llm.providers["openai"].enabled is None  # auto: enabled when its key resolves
    assert llm.providers["openai"].cost_multiplier == 0.8
    assert llm.default_provider == "ollama"


def test_routing_block_with_strategy_rules_health_escalation_tiers(home, write):
    write("20-routing.json", {"llm": {"routing": {
        "strategy": "cost_optimized",
        "rules": [
            {"name": "private-stays-local", "when": {"privacy": "strict"}, "then": {"tier": "local"},
             "priority": 100, "constraint": "never_cloud"},
            {"name": "hard-questions", "when": {"capability": "reasoning", "requires": ["tools"]},
             "then": {"tier": "cloud", "model": "gpt-4o", "compress_level": 1}, "priority": 50,
             "fallback": "fleet", "cost_multiplier": 0.5,
             "schedule": {"valid_from": "2026-01-01T00:00:00Z", "hours": [9, 17],
                          "days": ["mon", "tue", "wed", "thu", "fri"], "timezone": "Europe/Paris"}},
        ],
        "health": {"failure_threshold": 3, "cooldown_seconds": 60},
        "escalation": {"enabled": True, "max_escalations": 2},
        "tiers": {"fleet": {"enabled": False}},
    }, "discovery": {"enabled": True, "ttl_seconds": 30, "memory_floor_mb": 2048}}})
    llm = load_settings(home).settings.llm
    r = llm.routing
    assert r.strategy == "cost_optimized"
    assert [x.name for x in r.rules] == ["private-stays-local", "hard-questions"]
    assert r.rules[0].constraint == "never_cloud" and r.rules[0].when.privacy == "strict"
    hard = r.rules[1]
    assert (hard.then.tier, hard.then.model, hard.then.compress_level) == ("cloud", "gpt-4o", 1)
    assert (hard.fallback, hard.cost_multiplier, hard.priority) == ("fleet", 0.5, 50)
    assert hard.when.requires == ["tools"]
    assert hard.schedule is not None
    assert hard.schedule.valid_from == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert hard.schedule.hours == (9, 17) and hard.schedule.timezone == "Europe/Paris"
    assert r.health.failure_threshold == 3 and r.escalation.enabled is True
    assert r.tiers["fleet"].enabled is False
    assert (llm.discovery.ttl_seconds, llm.discovery.memory_floor_mb) == (30.0, 2048)


def test_routing_string_shorthand(home, write):
    f = write("10.json", {"llm": {"routing": "latency_optimized"}})
    loaded = load_settings(home)
    assert loaded.settings.llm.routing.strategy == "latency_optimized"
    assert loaded.settings.llm.routing.rules == []
    assert loaded.provenance["llm.routing.strategy"] == str(f)


def test_routing_shorthand_merges_like_the_long_form(home, write):
    # A later file's shorthand changes the strategy without dropping an earlier file's rules.
    write("10.json", {"llm": {"routing": {"strategy": "cost_optimized", "rules": [{"name": "keep"}]}}})
    write("20.json", {"llm": {"routing": "round_robin"}})
    r = load_settings(home).settings.llm.routing
    assert r.strategy == "round_robin"
    assert [x.name for x in r.rules] == ["keep"]
