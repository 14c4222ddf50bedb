"""The plugin inside a real kernel: auto-detection from ANTHROPIC_API_KEY, and a routed chat and
stream through the pipeline against the fake, with the key given as a secret reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from legion_llm_anthropic import AnthropicProvider
from legion_llm_anthropic import plugin as anthropic_plugin

from legion_core.lifecycle import Legion
from legion_core.plugins.manager import PluginManager
from legion_core.testing.fakes.anthropic import FakeAnthropic
from legion_core.types import DoneChunk, TextDelta, text_request

KEY = "sk-ant-in-legion-secret-9876"


def _plugins() -> PluginManager:
    pm = PluginManager()
    pm.load(entry_points=False)
    pm.register(anthropic_plugin, name="llm-anthropic")
    return pm


@pytest.mark.parametrize("key_set", [True, False])
async def test_auto_detected_only_with_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             key_set: bool) -> None:
    if key_set:
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    else:
        monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    lg = Legion(home=tmp_path, settings={"llm": {"discovery": {"enabled": False}}}, plugins=_plugins(),
                load_entry_points=False)
    await lg.start()
    try:
        if key_set:
            p = lg.registry.get("anthropic")
            assert isinstance(p, AnthropicProvider) and p.tier == "frontier"
            assert p.base_url == "https://api.anthropic.com" and p.settings.api_key == KEY
            assert KEY not in str(p.describe())
        else:
            assert "anthropic" not in lg.registry
    finally:
        await lg.shutdown()


async def test_routed_chat_and_stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      legion_fake_factory: Any) -> None:
    fake = legion_fake_factory(FakeAnthropic, api_key=KEY)
    monkeypatch.setenv("LEGION_TEST_CLAUDE_KEY", KEY)
    settings = {"llm": {"providers": {"claude": {"type": "anthropic", "base_url": fake.url,
                                                 "api_key": "env://LEGION_TEST_CLAUDE_KEY"}},
                        "discovery": {"enabled": False}, "timeouts": {"read": 33.0, "total": 50.0}}}
    lg = Legion(home=tmp_path, settings=settings, plugins=_plugins(), load_entry_points=False)
    await lg.start()
    try:
        p = lg.registry.get("claude")
        assert isinstance(p, AnthropicProvider)
        assert p.client().timeout.read == 33.0 and p.total_timeout() == 50.0  # llm.timeouts
        resp = await lg.pipeline.chat(text_request("What day comes after Tuesday?", provider="claude",
                                                   model="claude-haiku-4-5", cache=False))
        assert resp.text == fake.reply_text and resp.provider == "claude" and resp.tier == "frontier"
        assert resp.cost_usd == pytest.approx((12 * 1.0 + 7 * 5.0) / 1e6)  # catalog prices x fake usage
        chunks = [c async for c in lg.pipeline.stream(text_request("Again?", provider="claude",
                                                                   model="claude-haiku-4-5", cache=False))]
        assert "".join(c.text for c in chunks if isinstance(c, TextDelta)) == fake.reply_text
        assert isinstance(chunks[-1], DoneChunk)
        assert fake.calls["messages"] == 2
    finally:
        await lg.shutdown()
