"""`legion_quality_checks`: a plugin-registered check, named in settings, drives escalation."""

from __future__ import annotations

from legion_core import hookimpl
from legion_core.lifecycle import Legion
from legion_core.plugins.manager import PluginManager
from legion_core.types import ChatRequest, ChatResponse, TextBlock, text_request
from tests.kernel.test_lifecycle import EchoProvider


class Apologetic(EchoProvider):
    kind = "apologetic"
    default_tier = "local"

    async def chat(self, request: ChatRequest, model: str) -> ChatResponse:
        return ChatResponse(model=model, provider=self.name, tier=self.tier,
                            content=[TextBlock(text="Sorry, I cannot help with that.")])


class Plugin:
    @hookimpl
    def legion_register_providers(self, register):
        register(EchoProvider)
        register(Apologetic)

    @hookimpl
    def legion_quality_checks(self, register):
        register("no_apology", lambda req, resp: ["apology"] if "sorry" in resp.text.lower() else [])


async def test_plugin_quality_check_escalates_to_a_stronger_tier(tmp_path):
    pm = PluginManager()
    pm.load(entry_points=False)
    pm.register(Plugin())
    settings = {"llm": {
        "providers": {"small": {"type": "apologetic", "tier": "local"},
                      "big": {"type": "echo", "tier": "cloud"}},
        "routing": {"escalation": {"enabled": True, "checks": ["no_apology"]}},
    }}
    legion = Legion(home=tmp_path, settings=settings, plugins=pm)
    await legion.start()
    try:
        resp = await legion.pipeline.chat(text_request("What day comes after Tuesday?", cache=False))
        assert resp.provider == "big"
        assert resp.escalated
        first = resp.escalation_history[0]
        assert first.provider == "small" and first.outcome == "quality_failed"
        assert "apology" in first.failures
    finally:
        await legion.shutdown()
