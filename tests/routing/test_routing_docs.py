"""docs/routing.md stays true: its JSON examples load and behave as described, and every rule
field is documented."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

from legion_core.settings.models import LLMSettings, RoutingSettings, Rule, RuleThen, RuleWhen, Schedule
from legion_core.types import Intent, ToolSpec, text_request
from tests.routing.routing_fakes import ALL_TIERS

DOC = Path(__file__).resolve().parents[2] / "docs" / "routing.md"


def json_blocks() -> list[object]:
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)```", DOC.read_text(), re.S)]


def rules_example() -> dict:
    return next(b for b in json_blocks() if isinstance(b, dict) and "rules" in b.get("llm", {}).get("routing", {}))


def test_every_json_block_parses():
    assert len(json_blocks()) >= 3


def test_every_rule_field_is_documented():
    text = DOC.read_text()
    for model, prefix in ((Rule, ""), (RuleWhen, "when."), (RuleThen, "then."), (Schedule, "schedule.")):
        for field in model.model_fields:
            if model is Rule and field in ("when", "then", "schedule"):
                continue
            assert f"`{prefix}{field}`" in text, f"{prefix}{field} is not documented in docs/routing.md"


def test_thresholds_block_matches_the_defaults():
    block = next(b for b in json_blocks() if isinstance(b, dict) and "frontier" in b and "local" in b)
    assert block == RoutingSettings().complexity_thresholds


def test_rules_example_validates_and_behaves_as_documented(make_router):
    doc = rules_example()
    llm = LLMSettings.model_validate(doc["llm"])
    assert [r.name for r in llm.routing.rules] == ["hr-stays-home", "office-hours-sonnet",
                                                  "long-prompts-compressed", "holiday-promo"]
    routing = doc["llm"]["routing"]
    monday_10_berlin = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
    b = make_router(ALL_TIERS, routing=routing, now=monday_10_berlin)
    hard = ("Analyze the trade-offs between microservices and a monolith for a 10-person fintech startup: "
            "compare operational cost, deployment risk and team velocity, then recommend a migration plan.")
    d = b.router.decide(text_request(hard, tools=[ToolSpec(name="metrics")]))
    assert (d.provider, d.rule) == ("anthropic", "office-hours-sonnet")
    # anthropic down: the rule's fallback (the frontier tier) comes next
    b.registry.set_reachable("anthropic", False, "down")
    d = b.router.decide(text_request(hard, tools=[ToolSpec(name="metrics")]))
    assert (d.tier, d.rule) == ("frontier", "office-hours-sonnet")
    # HR never leaves the building, whatever it asks
    hr = b.router.decide(text_request(hard, caller="hr", intent=Intent(capability="reasoning")))
    assert hr.tier in ("local", "fleet")
    # long prompts: compressed, to the cloud tier
    long = b.router.decide(text_request("word " * 20000, model=None))
    assert long.compress_level == 2 and long.rule == "long-prompts-compressed"
    # outside office hours the sonnet rule does not apply
    sunday = make_router(ALL_TIERS, routing=routing, now=dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC))
    assert sunday.router.decide(text_request(hard, tools=[ToolSpec(name="metrics")])).rule is None


def test_alias_example(make_router):
    block = next(b for b in json_blocks() if isinstance(b, dict) and "aliases" in b.get("llm", {}).get("routing", {}))
    r = make_router(ALL_TIERS, routing=block["llm"]["routing"]).router
    assert r.decide(text_request("hi", model="fast")).tier == "local"
    assert r.decide(text_request("hi", model="smart")).provider == "anthropic"
    assert r.decide(text_request("hi", model="best")).model == "opus"


def test_documented_examples_of_complexity_hold(make_router):
    r = make_router(ALL_TIERS).router
    assert r.decide(text_request("What day comes after Tuesday?")).tier == "local"


def test_lazy_signal_example_is_called_only_when_the_complexity_decides(make_router):
    block = next(b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S) if "MyClassifier" in b)
    calls: list[str] = []
    ns: dict[str, object] = {"classify": lambda text: calls.append(text) or 0.99}
    exec(block, ns)
    b = make_router(ALL_TIERS, plugins=(ns["MyClassifier"](),))
    d = b.router.decide(text_request("hi", model="mini"))
    assert (d.model, d.complexity, calls) == ("mini", None, [])  # named, one tier: not classified
    d = b.router.decide(text_request("hi"))
    assert (d.complexity, d.tier, calls) == (0.99, "frontier", ["hi"])
