"""Boot order, readiness, shutdown in reverse, auto-detection, extensions, and the lifecycle hooks —
with in-test plugins registered through the real plugin manager and a real SQLite file."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import ClassVar

import pytest
from click.testing import CliRunner

from legion_core import hookimpl
from legion_core.hooktypes import Extension
from legion_core.lifecycle import SUBSYSTEMS, Legion
from legion_core.plugins.manager import PluginManager
from legion_core.providers import Provider
from legion_core.settings.models import ProviderSettings
from legion_core.types import (
    ChatRequest,
    ChatResponse,
    DoneChunk,
    ModelInfo,
    StreamChunk,
    TextBlock,
    TextDelta,
    text_request,
)


class EchoProvider(Provider):
    kind = "echo"
    default_tier = "local"
    closed: ClassVar[list[str]] = []

    def static_models(self) -> list[ModelInfo]:
        return [ModelInfo(id="echo-1", context_window=4096)]

    async def chat(self, request: ChatRequest, model: str) -> ChatResponse:
        return ChatResponse(model=model, provider=self.name, tier=self.tier,
                            content=[TextBlock(text="echo: " + request.last_user_text())])

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[StreamChunk]:
        yield TextDelta(text="echo: " + request.last_user_text())
        yield DoneChunk()

    async def aclose(self) -> None:
        EchoProvider.closed.append(self.name)


class KeyedProvider(EchoProvider):
    """Stands in for a cloud provider: needs a credential."""

    kind = "keyed"
    default_tier = "cloud"
    needs_credentials = True

    @classmethod
    def auto_settings(cls) -> ProviderSettings | None:
        return ProviderSettings(api_key="env://KEYED_API_KEY")


class LocalAuto(EchoProvider):
    kind = "llamacpp"

    @classmethod
    def auto_settings(cls) -> ProviderSettings | None:
        return ProviderSettings()


class Plugin:
    def __init__(self) -> None:
        self.events: list[str] = []

    @hookimpl
    def legion_register_providers(self, register):
        register(EchoProvider)
        register(KeyedProvider)
        register(LocalAuto)

    @hookimpl
    def legion_startup(self, legion):
        self.events.append("startup")

    @hookimpl
    async def legion_shutdown(self, legion):
        self.events.append("shutdown")


class Alerts(Extension):
    name = "alerts"
    llm_required = True
    started: ClassVar[list[str]] = []

    async def start(self, legion) -> None:
        Alerts.started.append("alerts")


class ExtPlugin:
    @hookimpl
    def legion_register_extensions(self, register):
        register(Alerts())


def make(tmp_path, settings, *plugins) -> Legion:
    pm = PluginManager()
    pm.load(entry_points=False)
    for p in plugins:
        pm.register(p)
    return Legion(home=tmp_path, settings=settings, plugins=pm)


async def test_boot_reports_every_subsystem_ready_and_shutdown_reverses(tmp_path):
    plugin = Plugin()
    legion = make(tmp_path, {"llm": {"providers": {"e": {"type": "echo"}}}}, plugin)
    assert not legion.started()
    await legion.start()
    assert legion.started()
    assert all(legion.readiness[s] == "ready" for s in SUBSYSTEMS)
    assert legion._boot_steps == ["settings", "plugins", "secrets", "providers", "discovery", "router",
                                  "pipeline", "extensions"]
    assert plugin.events == ["startup"]
    assert (tmp_path / "data" / "legion.db").exists()
    resp = await legion.pipeline.chat(text_request("hi"))
    assert resp.text == "echo: hi" and resp.provider == "e"
    EchoProvider.closed.clear()
    await legion.shutdown()
    assert plugin.events == ["startup", "shutdown"]
    assert EchoProvider.closed == ["e"]
    assert not legion.started()
    assert legion.readiness["providers"] == "stopped"


async def test_auto_detection_uses_the_embedded_default_without_keys(tmp_path):
    legion = make(tmp_path, None, Plugin())
    await legion.start()
    try:
        assert legion.registry.names() == ["llamacpp"]
        assert legion.registry.default_provider == "llamacpp"
    finally:
        await legion.shutdown()


async def test_auto_detection_prefers_a_keyed_provider_only_when_its_key_resolves(tmp_path, monkeypatch):
    # "keyed" is not in the priority list, so llamacpp stays default, but keyed is enabled.
    monkeypatch.setenv("KEYED_API_KEY", "sk-test-123456")
    legion = make(tmp_path, None, Plugin())
    await legion.start()
    try:
        assert set(legion.registry.names()) == {"llamacpp", "keyed"}
    finally:
        await legion.shutdown()


async def test_unresolved_credential_disables_provider_and_names_the_reference(tmp_path, capsys):
    settings = {"llm": {"providers": {"cloud": {"type": "keyed", "api_key": "env://MISSING_KEY_X"},
                                      "e": {"type": "echo"}}}}
    legion = make(tmp_path, settings, Plugin())
    await legion.start()
    try:
        assert "cloud" not in legion.registry.names()
        assert "env://MISSING_KEY_X" in legion.registry.skipped["cloud"]
        err = capsys.readouterr().err
        assert "cloud" in err and "env://MISSING_KEY_X" in err
    finally:
        await legion.shutdown()


async def test_llm_required_extension_is_skipped_with_one_log_line_when_no_provider(tmp_path, capsys):
    Alerts.started.clear()
    legion = make(tmp_path, {"llm": {"providers": {"cloud": {"type": "keyed", "api_key": "env://NOPE"}}}},
                  ExtPlugin(), Plugin())
    await legion.start()
    try:
        assert Alerts.started == []
        assert legion.skipped_extensions == {"alerts": "llm_required and no provider is ready"}
        lines = [ln for ln in capsys.readouterr().err.splitlines() if "extension skipped" in ln]
        assert len(lines) == 1 and "alerts" in lines[0]
    finally:
        await legion.shutdown()


async def test_llm_required_extension_starts_when_a_provider_is_ready(tmp_path):
    Alerts.started.clear()
    legion = make(tmp_path, {"llm": {"providers": {"e": {"type": "echo"}}}}, ExtPlugin(), Plugin())
    await legion.start()
    try:
        assert Alerts.started == ["alerts"]
        assert [e.name for e in legion.extensions] == ["alerts"]
    finally:
        await legion.shutdown()


async def test_container_overrides_a_part(tmp_path):
    from dependency_injector import providers

    from legion_core.container import build

    seen = []

    def my_router(*args, **kw):
        from legion_core.routing.router import Router

        seen.append("custom")
        return Router(*args, **kw)

    c = build(tmp_path, {"llm": {"providers": {"e": {"type": "echo"}}}})
    c.plugin_manager().load(entry_points=False)
    c.plugin_manager().register(Plugin())
    c.router.override(providers.Factory(my_router))
    legion = c.legion()
    await legion.start()
    try:
        assert seen == ["custom"]
    finally:
        await legion.shutdown()


class CommandPlugin:
    @hookimpl
    def legion_register_commands(self, cli):
        import click

        @cli.command("hello-test")
        def hello():
            """Say hello (test command)."""
            click.echo("hello from a plugin")


def test_plugins_add_cli_commands():
    from legion_core.cli.app import cli

    pm = PluginManager()
    pm.register(CommandPlugin())
    pm.hook.legion_register_commands(cli=cli)
    try:
        result = CliRunner().invoke(cli, ["hello-test"])
        assert result.exit_code == 0, result.output
        assert "hello from a plugin" in result.output
    finally:
        cli.commands.pop("hello-test", None)


def test_version_and_plugins_json_list_installed_plugins():
    from legion_core.cli.app import cli
    from legion_core.cli.context import cli_plugins

    cli_plugins.cache_clear()
    r = CliRunner().invoke(cli, ["version"])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0] == "legion-core 0.1.0"
    r = CliRunner().invoke(cli, ["plugins", "--json"])
    assert r.exit_code == 0
    data = json.loads(r.output)
    assert isinstance(data, list)
    for rec in data:
        assert {"name", "distribution", "version", "status", "hooks"} <= set(rec)


@pytest.mark.parametrize("cmd", [["chat", "--help"], ["serve", "--help"], ["models", "--help"],
                                 ["route", "--help"], ["logs", "--help"], ["stats", "--help"],
                                 ["config", "--help"], ["init", "--help"], ["plugins", "--help"],
                                 ["version", "--help"]])
def test_every_command_has_help_with_an_example(cmd):
    from legion_core.cli.app import cli

    r = CliRunner().invoke(cli, cmd)
    assert r.exit_code == 0
    assert "Example" in r.output
