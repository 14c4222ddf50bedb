"""The plugin inside a real kernel: auto-detection from OPENAI_API_KEY (and not without it), a
configured instance with a secret reference answering a routed chat, kernel timeouts applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from legion_llm_openai import OpenAIProvider
from legion_llm_openai import plugin as openai_plugin

from legion_core.lifecycle import Legion
from legion_core.plugins.manager import PluginManager
from legion_core.testing.fakes.openai import FakeOpenAI
from legion_core.types import text_request


def manager() -> PluginManager:
    pm = PluginManager()
    pm.load(entry_points=False)
    pm.register(openai_plugin, name="llm-openai")
    return pm


async def boot(home: Path, settings: dict[str, Any]) -> Legion:
    lg = Legion(home=home, settings=settings, plugins=manager(), load_entry_points=False)
    await lg.start()
    return lg


async def test_auto_detected_only_when_the_key_resolves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    lg = await boot(tmp_path / "a", {"llm": {"discovery": {"enabled": False}}})
    try:
        assert "openai" not in lg.registry.providers
    finally:
        await lg.shutdown()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment-123")
    lg = await boot(tmp_path / "b", {"llm": {"discovery": {"enabled": False}}})
    try:
        p = lg.registry.get("openai")
        assert isinstance(p, OpenAIProvider) and p.tier == "frontier" and p.api_key == "sk-from-the-environment-123"
        assert lg.registry.default_provider == "openai"
        assert "sk-from-the-environment-123" not in repr(p.describe())
        assert {m.id for m in lg.registry.models("openai")} >= {"gpt-4o-mini", "gpt-5"}
    finally:
        await lg.shutdown()


async def test_configured_instance_answers_a_routed_chat(tmp_path: Path, legion_fake_factory: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    fake = legion_fake_factory(FakeOpenAI, api_key="sk-env-key-abcdef")
    monkeypatch.setenv("MY_OPENAI_KEY", "sk-env-key-abcdef")
    lg = await boot(tmp_path, {"llm": {"providers": {"oa": {"type": "openai", "base_url": fake.url + "/v1",
                                                            "api_key": "env://MY_OPENAI_KEY"}},
                                       "discovery": {"enabled": False}, "timeouts": {"read": 33.0}}})
    try:
        p = lg.registry.get("oa")
        assert p.client().timeout.read == 33.0
        resp = await lg.pipeline.chat(text_request("What day comes after Tuesday?", model="oa/gpt-4o-mini",
                                                   cache=False))
        assert resp.text == fake.reply_text and resp.provider == "oa" and resp.tier == "frontier"
        assert resp.usage.input_tokens == fake.usage[0] and resp.cost_usd >= 0
    finally:
        await lg.shutdown()
