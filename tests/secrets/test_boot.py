"""Secrets through a real boot: settings files -> Legion.start() -> providers built with values,
Vault read once, unresolved providers not enabled, settings still holding references."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from legion_core import hookimpl, log
from legion_core.lifecycle import Legion
from legion_core.plugins.manager import PluginManager
from legion_core.providers import Provider
from legion_core.settings.view import effective_view
from legion_core.types import ChatRequest, ChatResponse, DoneChunk, ModelInfo, StreamChunk

PLANTED = "sk-boot-planted-31415926"


class KeyedCloud(Provider):
    kind = "keyedcloud"
    default_tier = "cloud"
    needs_credentials = True
    credential_keys = ("api_key",)

    def static_models(self) -> list[ModelInfo]:
        return [ModelInfo(id="k-1", context_window=4096)]

    async def chat(self, request: ChatRequest, model: str) -> ChatResponse:  # pragma: no cover
        raise NotImplementedError

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[StreamChunk]:  # pragma: no cover
        yield DoneChunk()


class Plugin:
    @hookimpl
    def legion_register_providers(self, register):
        register(KeyedCloud)


async def test_boot_resolves_once_and_disables_what_does_not_resolve(home, write, vault, monkeypatch,
                                                                     capfd):
    vault.put("legion/cloud", {"api_key": PLANTED, "org": "org-7"})
    monkeypatch.delenv("BOOT_UNSET", raising=False)
    write("10-providers.json", {"llm": {"providers": {
        "a": {"type": "keyedcloud", "api_key": "vault://secret/legion/cloud#api_key"},
        "b": {"type": "keyedcloud", "api_key": ["env://BOOT_UNSET", "vault://secret/legion/cloud#api_key"],
              "organization": "vault://secret/legion/cloud#org"},
        "c": {"type": "keyedcloud", "api_key": "vault://secret/legion/absent#api_key"},
    }}})
    pm = PluginManager()
    pm.load(entry_points=False)
    pm.register(Plugin())
    # The boot configures logging from settings: ask for JSON on stderr through an override.
    monkeypatch.setenv("LEGION__LOGGING__FORMAT", "json")
    monkeypatch.setenv("LEGION__LOGGING__LEVEL", "debug")
    legion = Legion(home=home, plugins=pm)
    try:
        await legion.start()
        assert set(legion.registry.names()) == {"a", "b"}
        assert legion.registry.get("a").settings.api_key == PLANTED
        assert legion.registry.get("b").settings.api_key == PLANTED
        assert legion.registry.get("b").settings.extra_options()["organization"] == "org-7"
        assert vault.reads() == 2  # legion/cloud once (three references), legion/absent once
        assert "vault://secret/legion/absent#api_key" in legion.registry.skipped["c"]
        # The settings keep the references; only provider instances hold values.
        assert legion.settings.llm.providers["a"].api_key == "vault://secret/legion/cloud#api_key"
        view = json.dumps(effective_view(legion.loaded))
        assert "vault://secret/legion/cloud#api_key" in view and PLANTED not in view
    finally:
        await legion.shutdown()
        log.configure()
    logs = capfd.readouterr().err
    assert PLANTED not in logs and "org-7" not in logs
    events = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    warnings = [e for e in events if e.get("level") == "warning"]
    assert any(e.get("provider") == "c" and "vault://secret/legion/absent#api_key" in e.get("reference", "")
               for e in warnings)
