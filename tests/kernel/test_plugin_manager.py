"""The plugin manager: entry points, blocking before import, failures by name, strictness,
misspelt hooks and tracing — all through real installed distributions."""

from __future__ import annotations

import sys

import pytest

from legion_core import hookimpl
from legion_core.errors import PluginError
from legion_core.plugins.manager import PluginManager
from tests.kernel.fake_dists import activate, make_dist

GOOD = """
from legion_core import hookimpl

@hookimpl
def legion_settings_defaults():
    return {"good": {"x": 1}}
"""

BROKEN = """
raise RuntimeError("boom at import")
"""

SIDE_EFFECT = """
import os
os.environ["FAKEPLUG_IMPORTED"] = "yes"
from legion_core import hookimpl

@hookimpl
def legion_settings_defaults():
    return {}
"""


@pytest.fixture
def dists(tmp_path, monkeypatch):
    root = tmp_path / "site"
    make_dist(root, "legion-fake-good", "fakeplug_good", GOOD, ep_name="fake-good")
    make_dist(root, "legion-fake-broken", "fakeplug_broken", BROKEN, ep_name="fake-broken")
    make_dist(root, "legion-fake-side", "fakeplug_side", SIDE_EFFECT, ep_name="fake-side")
    activate(root, monkeypatch)
    monkeypatch.delenv("FAKEPLUG_IMPORTED", raising=False)
    return root


def records(pm):
    return {r.name: r for r in pm.plugins(include_builtin=True)}


def test_broken_plugin_is_reported_by_name_and_the_rest_load(dists):
    pm = PluginManager()
    pm.load()
    recs = records(pm)
    assert recs["fake-broken"].status == "failed"
    assert "boom at import" in recs["fake-broken"].reason
    assert recs["fake-good"].status == "active"
    assert recs["fake-good"].distribution == "legion-fake-good"
    assert recs["fake-good"].version == "1.0.0"
    assert "legion_settings_defaults" in recs["fake-good"].hooks
    assert {"good": {"x": 1}} in pm.hook.legion_settings_defaults()


def test_strict_mode_makes_a_broken_plugin_fatal(dists, monkeypatch):
    monkeypatch.setenv("LEGION_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="fake-broken"):
        PluginManager().load()


def test_disabled_plugin_is_never_imported(dists, monkeypatch):
    monkeypatch.setenv("LEGION_DISABLE_PLUGINS", "legion-fake-side")
    pm = PluginManager()
    pm.load()
    assert records(pm)["fake-side"].status == "blocked"
    assert "FAKEPLUG_IMPORTED" not in __import__("os").environ
    assert "fakeplug_side" not in sys.modules


def test_settings_disabled_list_blocks_by_entry_point_name(dists):
    pm = PluginManager()
    pm.load(disabled=["fake-side"])
    assert records(pm)["fake-side"].status == "blocked"
    assert "fakeplug_side" not in sys.modules


def test_allow_list_loads_only_named_distributions(dists, monkeypatch):
    monkeypatch.setenv("LEGION_PLUGINS", "legion-fake-good")
    pm = PluginManager()
    pm.load()
    recs = records(pm)
    assert recs["fake-good"].status == "active"
    assert recs["fake-broken"].status == "blocked"
    assert recs["fake-broken"].reason == "not in LEGION_PLUGINS"
    assert "fakeplug_broken" not in sys.modules


def test_empty_allow_list_means_no_plugins_but_builtins_stay(dists, monkeypatch):
    monkeypatch.setenv("LEGION_PLUGINS", "")
    pm = PluginManager()
    pm.load()
    recs = records(pm)
    assert all(r.status == "blocked" for r in recs.values() if not r.builtin)
    assert any(r.builtin and r.status == "active" for r in recs.values())


def test_check_pending_catches_a_misspelt_hook():
    class Typo:
        @hookimpl
        def legion_regster_providers(self, register):  # misspelt on purpose
            pass

    pm = PluginManager()
    with pytest.raises(PluginError, match="legion_regster_providers"):
        pm.register(Typo(), name="typo")


def test_tracing_prints_every_hook_call(monkeypatch, capsys):
    monkeypatch.setenv("LEGION_TRACE_PLUGINS", "1")
    pm = PluginManager()
    pm.load(entry_points=False)
    pm.hook.legion_settings_defaults()
    err = capsys.readouterr().err
    assert "[legion trace] legion_settings_defaults" in err


def test_in_test_plugin_registers_and_unregisters():
    class P:
        @hookimpl
        def legion_settings_defaults(self):
            return {"p": 1}

    pm = PluginManager()
    name = pm.register(P(), name="inline")
    assert {"p": 1} in pm.hook.legion_settings_defaults()
    pm.unregister(name)
    assert {"p": 1} not in pm.hook.legion_settings_defaults()


def test_cli_lists_a_broken_plugin_as_failed_and_version_still_exits_0(dists):
    from click.testing import CliRunner

    from legion_core.cli.app import cli
    from legion_core.cli.context import cli_plugins

    cli_plugins.cache_clear()
    try:
        r = CliRunner().invoke(cli, ["version"])
        assert r.exit_code == 0, r.output
        assert "legion-fake-broken 1.0.0 (failed)" in r.output
        assert "legion-fake-good 1.0.0" in r.output
        r = CliRunner().invoke(cli, ["plugins", "--json"])
        assert r.exit_code == 0
        import json

        recs = {d["name"]: d for d in json.loads(r.stdout)}
        assert recs["fake-broken"]["status"] == "failed"
        assert "boom at import" in recs["fake-broken"]["reason"]
    finally:
        cli_plugins.cache_clear()


def test_call_plain_matches_pluggy_call_order_and_results():
    """`call_plain` calls the implementations itself; what it returns must be exactly what
    pluggy's own call returns, including with `tryfirst`/`trylast` and None results, and it
    hands wrappers back to pluggy."""
    from legion_core.plugins.manager import call_order, call_plain

    def signals(tag, **opts):
        class P:
            @hookimpl(**opts)
            def legion_request_signals(self, request):
                return None if tag is None else {tag: 1.0}
        return P()

    pm = PluginManager()
    pm.load(entry_points=False, builtins=False)
    for i, (tag, opts) in enumerate([("a", {}), (None, {}), ("b", {"tryfirst": True}), ("c", {}),
                                      ("d", {"trylast": True})]):
        pm.register(signals(tag, **opts), name=f"p{i}")
    expected = pm.hook.legion_request_signals(request="r")
    assert call_plain(pm, "legion_request_signals", request="r") == expected
    assert [next(iter(r)) for r in expected] == ["b", "c", "a", "d"]

    class Wrapper:
        @hookimpl(wrapper=True)
        def legion_request_signals(self, request):
            out = yield
            return [*out, {"w": 1.0}]

    pm.register(Wrapper(), name="wrapper")
    assert call_order(pm, "legion_request_signals") is None  # pluggy makes the call
    assert call_plain(pm, "legion_request_signals", request="r") == [*expected, {"w": 1.0}]
