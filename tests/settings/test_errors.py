"""Validation errors name the source (file, env var, plugin), the key path, the type and what was
expected; they never echo a secret."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

from legion_core.errors import SettingsError
from legion_core.hookspecs import hookimpl
from legion_core.plugins.manager import PluginManager
from legion_core.settings.loader import load_settings


def _error(home, **kw) -> SettingsError:
    with pytest.raises(SettingsError) as info:
        load_settings(home, **kw)
    return info.value


def test_wrong_type_deep_in_a_rule(home, write):
    write("10.json", {"llm": {"routing": {"rules": [{"name": "ok"}]}}})
    f = write("20-rules.json", {"llm": {"routing": {"rules": [
        {"name": "first", "priority": 1},
        {"name": "second", "priority": "high"},
    ]}}})
    e = _error(home)
    assert e.file == str(f)
    assert e.key == "llm.routing.rules[1].priority"
    assert e.got == 'string "high"'
    assert e.expected == "an integer"
    assert e.line == 11  # type: ignore[attr-defined]
    assert f.read_text().splitlines()[10].strip() == '"priority": "high"'
    assert str(e) == (f"{f}:11: key 'llm.routing.rules[1].priority': invalid value "
                      "(got string \"high\"; expected an integer)")


def test_bad_enum_from_an_env_override(home, write, monkeypatch):
    write("10.json", {"llm": {"routing": {"strategy": "round_robin"}}})
    monkeypatch.setenv("LEGION__LLM__ROUTING__STRATEGY", "fastest")
    e = _error(home)
    assert e.file == "env:LEGION__LLM__ROUTING__STRATEGY"
    assert e.key == "llm.routing.strategy"
    assert e.got == 'string "fastest"'
    assert e.expected == "one of 'cost_optimized', 'latency_optimized', 'round_robin'"


def test_bad_enum_in_a_rule_condition(home, write):
    f = write("10.json", {"llm": {"routing": {"rules": [{"name": "x", "when": {"privacy": "secret"}}]}}})
    e = _error(home)
    assert (e.file, e.key) == (str(f), "llm.routing.rules[0].when.privacy")
    assert "'normal', 'strict'" in (e.expected or "")


def test_malformed_json_names_file_line_and_column(home, write):
    f = write("10-llm.json", '{\n  "llm": {\n    "model": "x"\n    "provider": "openai"\n  }\n}\n')
    e = _error(home)
    assert e.file == str(f)
    assert "malformed JSON at line 4, column 5" in str(e)
    assert str(e).startswith(str(f))


def test_a_file_must_hold_an_object(home, write):
    f = write("10.json", '["llm"]')
    e = _error(home)
    assert (e.file, e.got) == (str(f), "array")
    assert "an object" in (e.expected or "")


def test_unknown_kernel_key_suggests_the_right_one(home, write):
    f = write("10.json", {"llm": {"routign": {"strategy": "round_robin"}}})
    e = _error(home)
    assert (e.file, e.key) == (str(f), "llm.routign")
    assert "unknown key 'routign'; did you mean 'routing'?" in str(e)


def test_unknown_key_deep_inside_a_rule(home, write):
    write("10.json", {"llm": {"routing": {"rules": [{"name": "x", "then": {"teir": "local"}}]}}})
    e = _error(home)
    assert e.key == "llm.routing.rules[0].then.teir"
    assert "did you mean 'tier'?" in str(e)


def test_misspelt_top_level_section(home, write):
    f = write("10.json", {"lmm": {"provider": "openai"}})
    e = _error(home)
    assert (e.file, e.key) == (str(f), "lmm")
    assert "did you mean 'llm'?" in str(e)


def test_unrelated_top_level_sections_belong_to_plugins(home, write):
    write("10.json", {"signal_gpu": {"poll_seconds": 5}, "logs": {"keep_days": 3}})
    s = load_settings(home).settings
    assert s.section("signal_gpu") == {"poll_seconds": 5}
    assert s.section("logs") == {"keep_days": 3}  # close to `logging`, but not a one-letter typo


def test_missing_required_key(home, write):
    f = write("10.json", {"llm": {"routing": {"rules": [{"priority": 5}]}}})
    e = _error(home)
    assert (e.file, e.key) == (str(f), "llm.routing.rules[0].name")
    assert "required key is missing" in str(e)
    assert "a string" in (e.expected or "")


def test_bad_timezone_explains_itself(home, write):
    write("10.json", {"llm": {"routing": {"rules": [
        {"name": "x", "schedule": {"timezone": "Mars/Olympus"}}]}}})
    e = _error(home)
    assert e.key == "llm.routing.rules[0].schedule.timezone"
    assert "unknown timezone 'Mars/Olympus'" in (e.expected or "")


def test_every_error_is_listed(home, write):
    write("10.json", {"llm": {"tool_loop_limit": "many", "cache": {"enabled": "maybe"}}})
    e = _error(home)
    keys = {x.key for x in e.errors}  # type: ignore[attr-defined]
    assert keys == {"llm.tool_loop_limit", "llm.cache.enabled"}
    assert str(e).count("also:") == 1


def test_secret_values_are_never_echoed(home, write):
    planted = "sk-planted-do-not-print-4242"
    write("10.json", {"llm": {"api_key": {"value": planted}, "providers": {
        "x": {"api_key": ["env://A", 12345678]}}}})
    e = _error(home)
    text = str(e) + repr(e.details)
    assert planted not in text and "12345678" not in text
    assert "llm.api_key" in text
    assert "object" in text  # the type is still reported


def test_union_errors_collapse_to_one_readable_error(home, write):
    f = write("10.json", {"llm": {"api_key": 42}})
    e = _error(home)
    assert (e.file, e.key, e.got) == (str(f), "llm.api_key", "integer")
    assert "a string" in (e.expected or "") and "array" in (e.expected or "")


# ------------------------------------------------------------------ plugin sections
class BudgetSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    daily_usd: float = 10.0
    on_exceed: str = "downgrade"


class BudgetPlugin:
    def __init__(self, defaults=None):
        self.defaults = defaults if defaults is not None else {"budget": {"daily_usd": 10.0}}

    @hookimpl
    def legion_settings_defaults(self):
        return self.defaults

    @hookimpl
    def legion_settings_schema(self, register):
        register("budget", BudgetSettings)


def _pm(plugin) -> PluginManager:
    pm = PluginManager()
    pm.register(plugin, name="legion-guard-budget")
    return pm


def test_plugin_section_is_validated_against_its_schema(home, write):
    write("10.json", {"budget": {"daily_usd": 3}})
    loaded = load_settings(home, plugins=_pm(BudgetPlugin()))
    assert isinstance(loaded.sections["budget"], BudgetSettings)
    assert loaded.sections["budget"].daily_usd == 3.0
    assert loaded.sections["budget"].on_exceed == "downgrade"


def test_plugin_section_error_names_file_and_key(home, write):
    f = write("30-budget.json", {"budget": {"daily_usd": "lots"}})
    e = _error(home, plugins=_pm(BudgetPlugin()))
    assert (e.file, e.key, e.got, e.expected) == (str(f), "budget.daily_usd", 'string "lots"', "a number")


def test_plugin_section_unknown_key(home, write):
    write("30-budget.json", {"budget": {"daily_usb": 1}})
    e = _error(home, plugins=_pm(BudgetPlugin()))
    assert e.key == "budget.daily_usb" and "did you mean 'daily_usd'?" in str(e)


def test_misspelt_plugin_section(home, write):
    write("30-budget.json", {"budgte": {"daily_usd": 1}})
    e = _error(home, plugins=_pm(BudgetPlugin()))
    assert e.key == "budgte" and "did you mean 'budget'?" in str(e)


def test_a_bad_plugin_default_is_blamed_on_the_plugin(home):
    e = _error(home, plugins=_pm(BudgetPlugin({"llm": {"tool_loop_limit": "x"}})))
    assert (e.file, e.key) == ("default:legion-guard-budget", "llm.tool_loop_limit")


class Broken:
    @hookimpl
    def legion_settings_defaults(self):
        raise RuntimeError("boom")

    @hookimpl
    def legion_settings_schema(self, register):
        raise RuntimeError("boom")


class NotADict:
    @hookimpl
    def legion_settings_defaults(self):
        return ["not", "an", "object"]


def test_a_broken_plugin_is_skipped_by_name(home, capfd):
    import json

    from legion_core import log

    pm = PluginManager()
    pm.register(Broken(), name="legion-broken")
    pm.register(NotADict(), name="legion-not-a-dict")
    pm.register(BudgetPlugin(), name="legion-guard-budget")
    log.configure("warning", "json")
    try:
        loaded = load_settings(home, plugins=pm)
    finally:
        log.configure()
    assert loaded.settings.section("budget") == {"daily_usd": 10.0}
    assert loaded.provenance["budget.daily_usd"] == "default:legion-guard-budget"
    assert "budget" in loaded.sections  # the healthy plugin's schema still applies
    events = [json.loads(ln) for ln in capfd.readouterr().err.splitlines() if ln.startswith("{")]
    assert sorted((e["plugin"], e.get("hook", "")) for e in events) == [
        ("legion-broken", "legion_settings_defaults"), ("legion-broken", "legion_settings_schema"),
        ("legion-not-a-dict", "")]


def test_strict_plugins_make_a_broken_plugin_fatal(home, monkeypatch):
    from legion_core.errors import PluginError

    monkeypatch.setenv("LEGION_STRICT_PLUGINS", "1")
    pm = PluginManager()
    pm.register(Broken(), name="legion-broken")
    with pytest.raises(PluginError, match="legion-broken.*legion_settings_defaults"):
        load_settings(home, plugins=pm)


def test_bad_env_override_name(home, monkeypatch):
    monkeypatch.setenv("LEGION__LLM____MODEL", "x")
    e = _error(home)
    assert e.file == "env:LEGION__LLM____MODEL"
    assert "empty key segment" in str(e)


def test_line_numbers_point_at_the_key_in_the_file(home, write):
    f = write("10.json", '{"llm": {\n  "cache": {"enabled": true},\n  "routign": 1,\n'
                         '  "routing": {"rules": [\n    {"name": "a"},\n    {"priority": 2}]}}}')
    e = _error(home)
    lines = {x.key: x.line for x in e.errors}  # type: ignore[attr-defined]
    # Unknown key: its own line. Missing key: the object that lacks it.
    assert lines == {"llm.routign": 3, "llm.routing.rules[1].name": 6}
    assert e.file == str(f)


def test_no_line_for_values_that_did_not_come_from_a_file(home, monkeypatch):
    monkeypatch.setenv("LEGION__LLM__TOOL_LOOP_LIMIT", '"many"')
    e = _error(home)
    assert e.line is None  # type: ignore[attr-defined]
    assert str(e).startswith("env:LEGION__LLM__TOOL_LOOP_LIMIT: key 'llm.tool_loop_limit'")


def test_key_lines_survive_strings_that_look_like_syntax():
    from legion_core.settings.loader import key_lines

    text = ('{\n  "a": "x, y: {z} [w] \\" still a string",\n  "b": [],\n  "c": {},\n'
            '  "d": [\n    [1, {"e": 2}],\n    {"f": null}\n  ],\n  "g": true\n}')
    assert key_lines(text) == {
        ("a",): 2, ("b",): 3, ("c",): 4, ("d",): 5, ("d", 0): 6, ("d", 0, 0): 6, ("d", 0, 1): 6,
        ("d", 0, 1, "e"): 6, ("d", 1): 7, ("d", 1, "f"): 7, ("g",): 9}
