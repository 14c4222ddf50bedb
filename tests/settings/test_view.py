"""The effective view (`legion config`): every key, its source, secrets redacted."""

from __future__ import annotations

import json

from pydantic import BaseModel

from legion_core.hookspecs import hookimpl
from legion_core.log import redact
from legion_core.plugins.manager import PluginManager
from legion_core.settings.loader import load_settings
from legion_core.settings.view import effective_dict, effective_view, redacted_settings


def test_rows_carry_key_value_source(home, write, monkeypatch):
    f = write("10.json", {"llm": {"routing": {"strategy": "round_robin"}}})
    monkeypatch.setenv("LEGION__LLM__TOOL_LOOP_LIMIT", "3")
    rows = {k: (v, s) for k, v, s in effective_view(load_settings(home))}
    assert rows["llm.routing.strategy"] == ("round_robin", str(f))
    assert rows["llm.tool_loop_limit"] == (3, "env:LEGION__LLM__TOOL_LOOP_LIMIT")
    assert rows["llm.routing.health.failure_threshold"] == (3, "default")
    assert rows["llm.routing.escalation.checks"][0] == ["empty", "too_short", "repetition", "invalid_json"]
    assert rows["llm.providers"] == ({}, "default")


def test_references_are_shown_and_literals_masked(home, write):
    write("10.json", {"llm": {
        "providers": {
            "a": {"api_key": "env://OPENAI_API_KEY"},
            "b": {"api_key": "sk-literal-in-a-file-1111"},
            "c": {"api_key": ["vault://secret/legion/c#key", "sk-literal-fallback-2222"],
                  "aws_secret_access_key": "literal-aws-secret-3333", "region": "eu-west-1"},
        },
        "api": {"auth": {"enabled": True, "api_keys": ["env://GW_KEY", "gw-literal-4444"]}},
    }})
    view = effective_dict(load_settings(home))
    assert view["llm.providers.a.api_key"]["value"] == "env://OPENAI_API_KEY"
    assert view["llm.providers.b.api_key"]["value"] == "***"
    assert view["llm.providers.c.api_key"]["value"] == ["vault://secret/legion/c#key", "***"]
    assert view["llm.providers.c.aws_secret_access_key"]["value"] == "***"
    assert view["llm.providers.c.region"]["value"] == "eu-west-1"
    assert view["llm.api.auth.api_keys"]["value"] == ["env://GW_KEY", "***"]
    text = json.dumps(view)
    for planted in ("1111", "2222", "3333", "4444"):
        assert planted not in text


def test_a_resolved_secret_is_masked_wherever_it_appears(home, write):
    # A secret value that also sits in an innocently named option is still masked.
    redact("resolved-secret-5555")
    write("10.json", {"llm": {"providers": {"x": {"organization": "resolved-secret-5555"}}}})
    view = effective_dict(load_settings(home))
    assert view["llm.providers.x.organization"]["value"] == "***"


def test_seed_shape_one_shows_the_reference_in_both_places(home, write):
    write("10.json", {"llm": {"provider": "openai", "api_key": "env://OPENAI_API_KEY"}})
    view = effective_dict(load_settings(home))
    assert view["llm.api_key"]["value"] == "env://OPENAI_API_KEY"
    assert view["llm.providers.openai.api_key"]["value"] == "env://OPENAI_API_KEY"


class Budget(BaseModel):
    daily_usd: float = 10.0
    webhook_token: str | None = None


class BudgetPlugin:
    @hookimpl
    def legion_settings_schema(self, register):
        register("budget", Budget)


def test_plugin_sections_show_with_their_defaults(home, write):
    f = write("10.json", {"budget": {"webhook_token": "hook-literal-6666"}})
    pm = PluginManager()
    pm.register(BudgetPlugin(), name="legion-guard-budget")
    loaded = load_settings(home, plugins=pm)
    view = effective_dict(loaded)
    assert view["budget.daily_usd"] == {"value": 10.0, "source": "default"}
    assert view["budget.webhook_token"] == {"value": "***", "source": str(f)}
    nested = redacted_settings(loaded)
    assert nested["budget"] == {"daily_usd": 10.0, "webhook_token": "***"}
    assert json.dumps(nested)  # JSON-ready


def test_url_credentials_are_masked(home, write):
    write("10.json", {"llm": {"providers": {"p": {"base_url": "https://bob:pw-in-url-1618@llm.internal/v1"}},
                              "state": {"backend": "redis", "url": "redis://:redis-pw-1414@cache:6379/0"}}})
    view = effective_dict(load_settings(home))
    assert view["llm.providers.p.base_url"]["value"] == "https://***@llm.internal/v1"
    assert view["llm.state.url"]["value"] == "redis://***@cache:6379/0"
