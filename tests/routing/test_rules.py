"""Every rule field, and schedules across timezone (and DST) boundaries with an injected clock."""

from __future__ import annotations

import datetime as dt

import pydantic
import pytest

from legion_core.errors import NoProviderAvailable
from legion_core.settings.models import LLMSettings
from legion_core.types import Intent, ToolSpec, text_request
from tests.routing.routing_fakes import ALL_TIERS

SIMPLE = "What day comes after Tuesday?"
UTC = dt.UTC


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def route(make_router, rules, request=None, **kw):
    b = make_router(ALL_TIERS, routing={"rules": rules}, **kw)
    return b.router.decide(request or text_request(SIMPLE))


# ---------------------------------------------------------------- when
@pytest.mark.parametrize("when, matching, other", [
    ({"privacy": "strict"}, {"intent": Intent(privacy="strict")}, {}),
    ({"capability": "reasoning"}, {"intent": Intent(capability="reasoning")}, {"intent": Intent(capability="basic")}),
    ({"cost": "minimize"}, {"intent": Intent(cost="minimize")}, {}),
    ({"requires": ["tools"]}, {"tools": [ToolSpec(name="t")]}, {}),
    ({"caller": "billing"}, {"caller": "billing"}, {"caller": "hr"}),
    ({"tokens_gte": 50}, {"system": "s" * 400}, {}),
    ({"tokens_lt": 50}, {}, {"system": "s" * 400}),
])
def test_each_when_field(make_router, when, matching, other):
    rules = [{"name": "r", "when": when, "then": {"provider": "fleet"}}]
    d = route(make_router, rules, text_request(SIMPLE, **matching))
    assert (d.provider, d.rule) == ("fleet", "r")
    d2 = route(make_router, rules, text_request(SIMPLE, **other))
    assert d2.rule is None


def test_complexity_bounds(make_router):
    rules = [{"name": "hard", "when": {"complexity_gte": 0.5}, "then": {"tier": "frontier"}},
             {"name": "easy", "when": {"complexity_lt": 0.1}, "then": {"provider": "fleet"}}]
    assert route(make_router, rules).rule == "easy"
    hard = "Prove that the sum of two odd integers is even, then derive a general formula and explain why."
    d = route(make_router, rules, text_request(hard, intent=Intent()))
    assert d.complexity >= 0.5, d.complexity
    assert (d.rule, d.tier) == ("hard", "frontier")


def test_when_fields_are_anded(make_router):
    rules = [{"name": "r", "when": {"caller": "a", "cost": "minimize"}, "then": {"provider": "fleet"}}]
    assert route(make_router, rules, text_request(SIMPLE, caller="a")).rule is None
    assert route(make_router, rules, text_request(SIMPLE, caller="a", intent=Intent(cost="minimize"))).rule == "r"


# ---------------------------------------------------------------- then
def test_then_tier_provider_model(make_router):
    assert route(make_router, [{"name": "t", "then": {"tier": "cloud"}}]).model == "mini"
    assert route(make_router, [{"name": "p", "then": {"provider": "anthropic"}}]).model == "sonnet"
    d = route(make_router, [{"name": "m", "then": {"model": "big"}}])
    assert (d.provider, d.model, d.rule) == ("openai", "big", "m")
    d = route(make_router, [{"name": "pm", "then": {"model": "openai/big"}}])
    assert (d.provider, d.model) == ("openai", "big")


def test_then_compress_level(make_router):
    d = route(make_router, [{"name": "squeeze", "when": {"tokens_gte": 1}, "then": {"compress_level": 2}}])
    assert d.compress_level == 2
    # a rule with only compress_level does not redirect the request
    assert d.provider == "local"
    # the request's own level wins
    d = route(make_router, [{"name": "squeeze", "then": {"compress_level": 2}}],
              text_request(SIMPLE, compress_level=0))
    assert d.compress_level == 0


def test_priority_picks_the_winning_rule(make_router):
    rules = [{"name": "low", "priority": 1, "then": {"provider": "fleet"}},
             {"name": "high", "priority": 10, "then": {"provider": "anthropic"}}]
    d = route(make_router, rules)
    assert (d.provider, d.rule) == ("anthropic", "high")
    scores = {c.provider: c.score for c in d.candidates}
    assert scores["anthropic"] == 10 and scores["fleet"] == 1  # score = priority + ...


def test_disabled_rule_is_ignored(make_router):
    assert route(make_router, [{"name": "off", "enabled": False, "then": {"provider": "fleet"}}]).rule is None


def test_never_cloud_constraint(make_router):
    rules = [{"name": "hr-data", "when": {"caller": "hr"}, "constraint": "never_cloud"}]
    # the constraint beats even an explicit cloud tier
    with pytest.raises(NoProviderAvailable, match=r"never_cloud \(rule 'hr-data'\)"):
        route(make_router, rules, text_request(SIMPLE, caller="hr", tier="cloud"))
    b = make_router(ALL_TIERS, routing={"rules": rules})
    exp = b.router.explain(text_request(SIMPLE, caller="hr", intent=Intent(capability="reasoning")))
    assert exp.tier in ("local", "fleet")
    reasons = {c.provider: c.dropped for c in exp.candidates}
    assert reasons["anthropic"] == "never_cloud (rule 'hr-data')"
    assert b.router.decide(text_request(SIMPLE, caller="other", intent=Intent(capability="reasoning"))).tier == "cloud"


def test_fallback_comes_before_the_rest(make_router):
    rules = [{"name": "prefer-sonnet", "then": {"provider": "anthropic"}, "fallback": "frontier"}]
    b = make_router(ALL_TIERS, routing={"rules": rules})
    b.registry.set_reachable("anthropic", False, "down")
    d = b.router.decide(text_request(SIMPLE))
    assert (d.provider, d.rule) == ("frontier", "prefer-sonnet")
    assert "fallback" in d.reason
    assert [c.provider for c in d.viable()][:2] == ["frontier", "local"]
    # a tier as fallback
    rules = [{"name": "r", "then": {"provider": "anthropic"}, "fallback": "fleet"}]
    b = make_router(ALL_TIERS, routing={"rules": rules})
    b.registry.set_reachable("anthropic", False, "down")
    assert b.router.decide(text_request(SIMPLE)).provider == "fleet"


def test_cost_multiplier_adds_to_the_score(make_router):
    rules = [{"name": "discount", "then": {"provider": "anthropic"}, "cost_multiplier": 0.5},
             {"name": "plain", "then": {"provider": "openai"}}]
    b = make_router(ALL_TIERS, routing={"rules": rules})
    d = b.router.decide(text_request(SIMPLE))
    scores = {f"{c.provider}/{c.model}": c.score for c in d.candidates}
    assert scores["anthropic/sonnet"] == 5.0  # 0 + (1 - 0.5) * 10
    assert scores["openai/mini"] == 0.0
    # the discounted one is the winning rule's target
    assert d.provider == "anthropic"
    # a provider-level multiplier above 1 costs score
    b2 = make_router({"a": {"type": "anthropic", "cost_multiplier": 1.2}, "b": {"type": "anthropic"}})
    d2 = b2.router.decide(text_request(SIMPLE))
    assert d2.provider == "b" and {c.provider: c.score for c in d2.candidates}["a"] == -2.0


def test_rule_validation_names_the_problem():
    with pytest.raises(pydantic.ValidationError, match="unknown timezone 'Mars/Olympus'"):
        LLMSettings.model_validate({"routing": {"rules": [
            {"name": "x", "schedule": {"timezone": "Mars/Olympus"}}]}})
    with pytest.raises(pydantic.ValidationError, match="constraint"):
        LLMSettings.model_validate({"routing": {"rules": [{"name": "x", "constraint": "never_local"}]}})
    with pytest.raises(pydantic.ValidationError, match="wen"):
        LLMSettings.model_validate({"routing": {"rules": [{"name": "x", "wen": {}}]}})


# ---------------------------------------------------------------- schedule
OFFICE_TOKYO = {"name": "office", "then": {"provider": "anthropic"},
                "schedule": {"hours": [9, 17], "days": ["mon", "tue", "wed", "thu", "fri"],
                             "timezone": "Asia/Tokyo"}}


@pytest.mark.parametrize("now, active", [
    (at(2026, 11, 22, 23, 30), False),  # Sun 23:30 UTC = Mon 08:30 in Tokyo: before hours
    (at(2026, 11, 23, 0, 30), True),  # Mon 00:30 UTC = Mon 09:30 in Tokyo
    (at(2026, 11, 23, 7, 59), True),  # 16:59 Tokyo
    (at(2026, 11, 23, 8, 0), False),  # 17:00 Tokyo: end is exclusive
    (at(2026, 11, 21, 1, 0), False),  # Sat 10:00 Tokyo: weekend
    (at(2026, 11, 20, 23, 30), False),  # Fri 23:30 UTC = Sat 08:30 Tokyo, although Friday in UTC
    (at(2026, 11, 20, 1, 0), True),  # Fri 10:00 Tokyo
])
def test_schedule_hours_and_days_in_the_rules_timezone(make_router, now, active):
    d = route(make_router, [OFFICE_TOKYO], now=now)
    assert (d.rule == "office") is active, (now, d.reason)


@pytest.mark.parametrize("now, active", [
    (at(2026, 3, 7, 13, 30), False),  # 08:30 EST (UTC-5)
    (at(2026, 3, 9, 13, 30), True),  # 09:30 EDT (UTC-4) after the DST change on March 8
    (at(2026, 3, 9, 20, 59), True),  # 16:59 EDT
    (at(2026, 3, 9, 21, 0), False),  # 17:00 EDT
])
def test_schedule_follows_daylight_saving(make_router, now, active):
    rule = {**OFFICE_TOKYO, "schedule": {"hours": [9, 17], "timezone": "America/New_York"}}
    assert (route(make_router, [rule], now=now).rule == "office") is active


@pytest.mark.parametrize("hour, active", [(21, False), (22, True), (23, True), (0, True), (5, True), (6, False)])
def test_schedule_hours_wrap_midnight(make_router, hour, active):
    rule = {"name": "night", "then": {"provider": "fleet"}, "schedule": {"hours": [22, 6], "timezone": "UTC"}}
    assert (route(make_router, [rule], now=at(2026, 6, 1, hour, 15)).rule == "night") is active


def test_schedule_valid_from_until(make_router):
    rule = {"name": "promo", "then": {"provider": "anthropic"},
            "schedule": {"valid_from": "2026-12-01T00:00:00", "valid_until": "2026-12-31T00:00:00",
                         "timezone": "Europe/Paris"}}
    # naive bounds are read in the rule's timezone: midnight in Paris is 23:00 UTC the day before
    assert route(make_router, [rule], now=at(2026, 11, 30, 22, 59)).rule is None
    assert route(make_router, [rule], now=at(2026, 11, 30, 23, 0)).rule == "promo"
    assert route(make_router, [rule], now=at(2026, 12, 30, 22, 59)).rule == "promo"
    assert route(make_router, [rule], now=at(2026, 12, 30, 23, 0)).rule is None
    aware = {**rule, "schedule": {"valid_from": "2026-12-01T00:00:00+00:00"}}
    assert route(make_router, [aware], now=at(2026, 11, 30, 23, 30)).rule is None
    assert route(make_router, [aware], now=at(2026, 12, 1, 0, 0)).rule == "promo"


def test_targets_that_point_at_nothing_are_reported(make_router):
    b = make_router(ALL_TIERS, routing={
        "rules": [{"name": "typo", "then": {"tier": "clod"}},
                  {"name": "gone", "then": {"provider": "azure"}, "fallback": "nowhere"},
                  {"name": "fine", "then": {"provider": "fleet"}, "fallback": "cloud"},
                  {"name": "never", "then": {"provider": "fleet"}, "schedule": {"hours": [9, 9]}},
                  {"name": "bad-hours", "then": {"provider": "fleet"}, "schedule": {"hours": [9, 25]}}],
        "aliases": {"fast": {"tier": "locl"}}})
    problems = b.router.config_warnings()
    assert problems == [
        "llm.routing.rules.0 (typo): tier 'clod' is not one of local, fleet, openai_compat, cloud, frontier",
        "llm.routing.rules.1 (gone): provider 'azure' is not configured (configured: anthropic, fleet, "
        "frontier, local, openai)",
        "llm.routing.rules.1 (gone): fallback 'nowhere' is no configured provider, tier or model",
        "llm.routing.rules.3 (never): schedule.hours [9, 9] is empty: the rule never matches",
        "llm.routing.rules.4 (bad-hours): schedule.hours [9, 25] must be within 0..24",
        "llm.routing.aliases.fast: tier 'locl' is not one of local, fleet, openai_compat, cloud, frontier",
    ]


def test_an_alias_named_like_auto_is_reported_and_does_not_route(make_router):
    b = make_router(ALL_TIERS, routing={"aliases": {"Default": {"tier": "frontier"}, "best": {"tier": "frontier"}}})
    assert b.router.config_warnings() == [
        "llm.routing.aliases.Default: 'Default' already means \"route for me\" (like legion/auto), "
        "so this alias is never used; rename it"]
    assert b.router.decide(text_request("What day comes after Tuesday?", model="Default")).tier == "local"
