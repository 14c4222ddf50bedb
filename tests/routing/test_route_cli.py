"""`legion route --explain` / `--json` (issue 3 item 14) on the real router, with the in-test
provider plugin loaded through the CLI's plugin manager and settings from LEGION_HOME."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from legion_core.builtin import complexity as builtin_complexity
from legion_core.cli import cli
from legion_core.cli import context as cli_context
from legion_core.plugins.manager import PluginManager
from tests.routing.routing_fakes import FakeProvidersPlugin


@pytest.fixture
def home(_isolated_home, monkeypatch):
    (_isolated_home / "settings" / "llm.json").write_text(json.dumps({"llm": {
        "providers": {"local": {"type": "ollama"}, "openai": {"type": "openai"},
                      "anthropic": {"type": "anthropic"}},
        "discovery": {"enabled": False},
        "routing": {"rules": [{"name": "hr", "when": {"caller": "hr"}, "constraint": "never_cloud"}]},
    }}))
    pm = PluginManager()
    pm.register(builtin_complexity, name="legion_core.builtin.complexity")
    pm.register(FakeProvidersPlugin(), name="test-providers")
    monkeypatch.setattr(cli_context, "cli_plugins", lambda: pm)
    return _isolated_home


def test_route_json_has_complexity_and_every_candidate(home):
    out = CliRunner().invoke(cli, ["route", "--json", "What day comes after Tuesday?"])
    assert out.exit_code == 0, out.output
    d = json.loads(out.output)
    assert d["provider"] == "local" and d["tier"] == "local"
    assert 0 <= d["complexity"] < 0.35
    assert {f"{c['provider']}/{c['model']}" for c in d["candidates"]} == {
        "local/tiny", "openai/mini", "openai/big", "anthropic/sonnet"}
    assert all(set(c) == {"provider", "model", "tier", "score", "rule", "dropped"} for c in d["candidates"])


def test_route_explain_prints_dropped_reasons_and_the_decision(home):
    out = CliRunner().invoke(cli, ["route", "--explain", "--intent", "privacy=strict",
                                   "Analyze and compare three designs, then recommend one and justify why."])
    assert out.exit_code == 0, out.output
    assert "complexity:" in out.output
    assert out.output.count("dropped: privacy strict: never cloud") == 3
    assert "decision: local/tiny (tier local)" in out.output


def test_route_explain_shows_what_the_complexity_score_is_made_of(home):
    """The built-in estimate is explained by its weighted features, largest contribution first."""
    out = CliRunner().invoke(cli, ["route", "--explain",
                                   "Analyze and compare three designs, then recommend one and justify why."])
    assert out.exit_code == 0, out.output
    line = next(ln for ln in out.output.splitlines() if ln.startswith("complexity from:"))
    parts = [p.split()[0] for p in line.removeprefix("complexity from:").split(",")]
    assert parts[0] in ("analysis", "length") and "analysis" in parts and "lookup" not in parts


def test_route_explain_leaves_out_features_of_a_score_a_plugin_gave(home):
    from legion_core.hookspecs import hookimpl

    class Fixed:
        @hookimpl(tryfirst=True)
        def legion_request_signals(self, request):
            return {"complexity": 0.99}

    cli_context.cli_plugins().register(Fixed(), name="fixed-complexity")
    out = CliRunner().invoke(cli, ["route", "--explain", "What day comes after Tuesday?"])
    assert out.exit_code == 0, out.output
    assert "complexity: 0.99" in out.output and "complexity from:" not in out.output
