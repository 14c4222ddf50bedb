"""Layer order (kernel default < plugin default < files sorted < env < override) and provenance."""

from __future__ import annotations

from legion_core.hookspecs import hookimpl
from legion_core.plugins.manager import PluginManager
from legion_core.settings.loader import load_settings, parse_path, path_str
from legion_core.settings.models import LLMSettings, Settings, TimeoutSettings


class DefaultsPlugin:
    @hookimpl
    def legion_settings_defaults(self):
        return {"llm": {"routing": {"strategy": "round_robin", "health": {"failure_threshold": 5}},
                        "discovery": {"ttl_seconds": 5.0},
                        "timeouts": {"connect": 1.0}}}


def _pm(*plugins) -> PluginManager:
    pm = PluginManager()
    for i, p in enumerate(plugins):
        pm.register(p, name=f"legion-test-defaults-{i}")
    return pm


def test_nothing_configured_gives_kernel_defaults(home):
    loaded = load_settings(home)
    assert loaded.settings == Settings()
    assert loaded.files == []
    assert loaded.raw == {}
    assert set(loaded.provenance.values()) == {"default"}
    assert loaded.provenance["llm.routing.strategy"] == "default"


def test_each_layer_wins_over_the_one_below(home, write, monkeypatch):
    # Written out of order on purpose: the merge follows the sorted names, not creation time.
    f20 = write("20-b.json", {"llm": {"discovery": {"ttl_seconds": 20.0}, "timeouts": {"connect": 7.0}}})
    f10 = write("10-a.json", {"llm": {"routing": {"strategy": "latency_optimized"},
                                      "discovery": {"ttl_seconds": 10.0}}})
    monkeypatch.setenv("LEGION__LLM__TIMEOUTS__CONNECT", "8")
    monkeypatch.setenv("LEGION__LLM__TIMEOUTS__READ", "9")
    override = {"llm": {"timeouts": {"read": 10.0}}}

    loaded = load_settings(home, plugins=_pm(DefaultsPlugin()), override=override)
    s, src = loaded.settings.llm, loaded.provenance

    assert loaded.files == [f10, f20]
    assert (s.routing.health.failure_threshold, src["llm.routing.health.failure_threshold"]) == \
        (5, "default:legion-test-defaults-0")
    assert (s.routing.strategy, src["llm.routing.strategy"]) == ("latency_optimized", str(f10))
    assert (s.discovery.ttl_seconds, src["llm.discovery.ttl_seconds"]) == (20.0, str(f20))
    assert (s.timeouts.connect, src["llm.timeouts.connect"]) == (8.0, "env:LEGION__LLM__TIMEOUTS__CONNECT")
    assert (s.timeouts.read, src["llm.timeouts.read"]) == (10.0, "override")
    assert (s.routing.health.cooldown_seconds, src["llm.routing.health.cooldown_seconds"]) == \
        (60.0, "default")
    assert loaded.source("llm.timeouts.read") == "override"


def test_plugin_defaults_need_a_plugin_manager(home):
    assert load_settings(home).settings.llm.routing.strategy == "cost_optimized"
    assert load_settings(home, plugins=_pm(DefaultsPlugin())).settings.llm.routing.strategy == \
        "round_robin"


def test_objects_merge_key_by_key_and_arrays_replace(home, write):
    f10 = write("10.json", {"llm": {"routing": {
        "rules": [{"name": "a"}, {"name": "b"}],
        "escalation": {"enabled": True, "checks": ["empty", "too_short"]}}}})
    f20 = write("20.json", {"llm": {"routing": {
        "rules": [{"name": "c", "priority": 3}],
        "escalation": {"checks": ["invalid_json"]}}}})
    loaded = load_settings(home)
    r = loaded.settings.llm.routing
    assert [x.name for x in r.rules] == ["c"]
    assert r.escalation.enabled is True  # kept from 10.json: objects merge
    assert r.escalation.checks == ["invalid_json"]  # replaced by 20.json: arrays do not
    assert loaded.provenance["llm.routing.escalation.enabled"] == str(f10)
    assert loaded.provenance["llm.routing.escalation.checks"] == str(f20)
    assert loaded.provenance["llm.routing.rules[0].priority"] == str(f20)
    # A default filled into a rule that came from a file is credited to that file.
    assert loaded.provenance["llm.routing.rules[0].enabled"] == str(f20)
    assert "llm.routing.rules[1].name" not in loaded.provenance


def test_env_values_parse_as_json_else_string(home, monkeypatch):
    monkeypatch.setenv("LEGION__LLM__ROUTING__STRATEGY", "latency_optimized")
    monkeypatch.setenv("LEGION__LLM__TOOL_LOOP_LIMIT", "3")
    monkeypatch.setenv("LEGION__LLM__CACHE__ENABLED", "false")
    monkeypatch.setenv("LEGION__LLM__ROUTING__RULES", '[{"name": "from-env", "priority": 2}]')
    # Parses as the number 4, but `model` is a string: the raw text is used instead.
    monkeypatch.setenv("LEGION__LLM__MODEL", "4")
    s = load_settings(home).settings.llm
    assert s.routing.strategy == "latency_optimized"
    assert s.tool_loop_limit == 3
    assert s.cache.enabled is False
    assert [(r.name, r.priority) for r in s.routing.rules] == [("from-env", 2)]
    assert s.model == "4"


def test_env_overrides_reach_plugin_sections_and_provider_maps(home, write, monkeypatch):
    write("10.json", {"llm": {"providers": {"ollama": {"base_url": "http://127.0.0.1:11434"}}}})
    monkeypatch.setenv("LEGION__LLM__PROVIDERS__OLLAMA__TIER", "fleet")
    monkeypatch.setenv("LEGION__BUDGET__DAILY_USD", "12.5")
    loaded = load_settings(home)
    ollama = loaded.settings.llm.providers["ollama"]
    assert (ollama.tier, ollama.base_url) == ("fleet", "http://127.0.0.1:11434")
    assert loaded.settings.section("budget") == {"daily_usd": 12.5}
    assert loaded.provenance["budget.daily_usd"] == "env:LEGION__BUDGET__DAILY_USD"


def test_override_as_settings_object_only_overrides_what_it_sets(home, write):
    write("10.json", {"llm": {"tool_loop_limit": 5, "routing": {"strategy": "round_robin"}}})
    override = Settings(llm=LLMSettings(timeouts=TimeoutSettings(connect=0.5)))
    loaded = load_settings(home, override=override)
    assert loaded.settings.llm.tool_loop_limit == 5
    assert loaded.settings.llm.routing.strategy == "round_robin"
    assert loaded.settings.llm.timeouts.connect == 0.5
    assert loaded.provenance["llm.timeouts.connect"] == "override"


def test_only_visible_json_files_are_read(home, write):
    write("10.json", {"llm": {"tool_loop_limit": 4}})
    write(".20-editor-backup.json", "{ not json")
    write("30.json.bak", "{ not json")
    write("40-empty.json", "   \n")
    loaded = load_settings(home)
    assert [p.name for p in loaded.files] == ["10.json", "40-empty.json"]
    assert loaded.settings.llm.tool_loop_limit == 4


def test_missing_settings_directory_is_fine(tmp_path):
    assert load_settings(tmp_path / "nowhere").settings == Settings()


def test_key_paths_round_trip():
    for parts in [("llm", "routing", "rules", 0, "priority"), ("llm", "pricing", "gpt-4.1", "input"),
                  ("budget",), ("a", "we\"ird key", 3)]:
        assert parse_path(path_str(parts)) == parts
    assert path_str(("llm", "pricing", "gpt-4.1", "input")) == 'llm.pricing["gpt-4.1"].input'


def test_env_segments_find_keys_a_variable_name_cannot_spell(home, write, monkeypatch):
    write("10.json", {"llm": {"providers": {"gpu-box": {"type": "vllm", "tier": "fleet"}},
                              "pricing": {"gpt-4.1": {"input": 2.0}}}})
    monkeypatch.setenv("LEGION__LLM__PROVIDERS__GPU_BOX__TIER", "local")
    monkeypatch.setenv("LEGION__LLM__PRICING__GPT_4_1__OUTPUT", "8")
    loaded = load_settings(home)
    llm = loaded.settings.llm
    assert list(llm.providers) == ["gpu-box"]
    assert llm.providers["gpu-box"].tier == "local"
    assert (llm.pricing["gpt-4.1"].input, llm.pricing["gpt-4.1"].output) == (2.0, 8.0)
    assert loaded.provenance['llm.pricing["gpt-4.1"].output'] == "env:LEGION__LLM__PRICING__GPT_4_1__OUTPUT"


def test_duplicate_keys_warn_and_the_last_wins(home, write, capfd):
    import json as _json

    from legion_core import log

    write("10.json", '{"llm": {"tool_loop_limit": 2, "tool_loop_limit": 5}}')
    log.configure("warning", "json")
    try:
        assert load_settings(home).settings.llm.tool_loop_limit == 5
    finally:
        log.configure()
    events = [_json.loads(ln) for ln in capfd.readouterr().err.splitlines() if ln.startswith("{")]
    assert [(e["event"], e["key"]) for e in events] == \
        [("duplicate key in a settings file; the last one wins", "tool_loop_limit")]


def test_a_byte_order_mark_is_tolerated(home):
    (home / "settings" / "10.json").write_bytes(b'\xef\xbb\xbf{"llm": {"tool_loop_limit": 6}}')
    assert load_settings(home).settings.llm.tool_loop_limit == 6


def test_a_misspelt_provider_option_is_flagged(home, write, capfd):
    import json as _json

    from legion_core import log

    f = write("10.json", {"llm": {"providers": {"openai": {"defualt_model": "gpt-4o", "region": "eu"},
                                                "ollama": {"url": "http://127.0.0.1:11434"}}}})
    log.configure("warning", "json")
    try:
        loaded = load_settings(home)
    finally:
        log.configure()
    assert loaded.settings.llm.providers["openai"].extra_options() == {"defualt_model": "gpt-4o",
                                                                       "region": "eu"}
    events = [_json.loads(ln) for ln in capfd.readouterr().err.splitlines() if ln.startswith("{")]
    assert [(e["key"], e["did_you_mean"], e["file"]) for e in events] == \
        [("llm.providers.openai.defualt_model", "default_model", f"{f}:5"),
         ("llm.providers.ollama.url", "base_url", f"{f}:9")]


def test_a_readable_file_with_a_literal_secret_is_flagged(home, write, capfd):
    import json as _json
    import os

    from legion_core import log

    f = write("10.json", {"llm": {"providers": {"a": {"api_key": "sk-literal-0000"},
                                                "b": {"api_key": "env://B_KEY"}}}})
    g = write("20.json", {"llm": {"providers": {"c": {"api_key": "sk-literal-1111"}}}})
    os.chmod(f, 0o644)
    os.chmod(g, 0o600)
    log.configure("warning", "json")
    try:
        load_settings(home)
        load_settings(home)  # a boot loads twice: one warning is enough
    finally:
        log.configure()
    err = capfd.readouterr().err
    events = [_json.loads(ln) for ln in err.splitlines() if ln.startswith("{")]
    assert [(e["file"], e["key"], e["mode"]) for e in events] == \
        [(str(f), "llm.providers.a.api_key", "0o644")]
    assert "0000" not in err and "1111" not in err
