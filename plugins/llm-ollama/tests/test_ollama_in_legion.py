"""The plugin inside a real kernel: boot, background discovery into the registry, routing with the
memory filter (`/proc/meminfo`), and a routed chat answered by the fake Ollama."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from legion_llm_ollama import OllamaProvider
from legion_llm_ollama import plugin as ollama_plugin

from legion_core.errors import NoProviderAvailable
from legion_core.lifecycle import Legion
from legion_core.plugins.manager import PluginManager
from legion_core.testing.fakes.ollama import FakeModel, FakeOllama
from legion_core.types import text_request

HUGE = 10**15  # one petabyte: fits in no machine's MemAvailable


@pytest.fixture
async def legion(tmp_path: Path, legion_fake_factory: Any) -> AsyncIterator[tuple[Legion, FakeOllama]]:
    fake = legion_fake_factory(FakeOllama)
    fake.models["giant:405b"] = FakeModel("giant:405b", HUGE, "llama", 131_072, ["completion"])
    pm = PluginManager()
    pm.load(entry_points=False)  # the kernel's built-ins only
    pm.register(ollama_plugin, name="llm-ollama")
    settings = {"llm": {"providers": {"ollama": {"type": "ollama", "base_url": fake.url}},
                        "discovery": {"ttl_seconds": 123, "refresh_interval_seconds": 3600},
                        "timeouts": {"read": 42.0}}}
    lg = Legion(home=tmp_path, settings=settings, plugins=pm, load_entry_points=False)
    await lg.start()
    try:
        yield lg, fake
    finally:
        await lg.shutdown()


async def test_discovery_fills_the_registry_and_routing_uses_it(legion: tuple[Legion, FakeOllama]) -> None:
    lg, fake = legion
    provider = lg.registry.get("ollama")
    assert isinstance(provider, OllamaProvider) and provider.discovery.ttl == 123  # legion_startup
    assert provider.client().timeout.read == 42.0  # llm.timeouts, applied at startup
    assert (await lg.discovery.refresh("ollama")) == {"ollama": True}
    models = {m.id: m for m in lg.registry.models("ollama")}
    assert set(fake.models) <= set(models)
    assert models["llama3.2:3b"].context_window == 131_072
    assert models["llama3.2:3b"].memory_bytes == fake.models["llama3.2:3b"].size
    assert models["giant:405b"].memory_bytes == HUGE and models["giant:405b"].tier == "local"

    # the giant model is dropped by the memory filter, with the reason
    with pytest.raises(NoProviderAvailable) as info:
        await lg.pipeline.route(text_request("hi", model="ollama/giant:405b"))
    giant = [c for c in info.value.decision.candidates if c.model == "giant:405b"]
    assert giant and giant[0].dropped and "memory" in giant[0].dropped

    resp = await lg.pipeline.chat(text_request("What day comes after Tuesday?", model="ollama/llama3.2:3b",
                                               cache=False))
    assert resp.text == fake.reply_text and resp.provider == "ollama" and resp.tier == "local"
    assert fake.calls["chat"] == 1


async def test_unreachable_ollama_is_marked_not_raised(tmp_path: Path, free_port: int) -> None:
    pm = PluginManager()
    pm.load(entry_points=False)
    pm.register(ollama_plugin, name="llm-ollama")
    url = f"http://127.0.0.1:{free_port}"
    settings = {"llm": {"providers": {"ollama": {"type": "ollama", "base_url": url}},
                        "discovery": {"refresh_interval_seconds": 3600}}}
    lg = Legion(home=tmp_path, settings=settings, plugins=pm, load_entry_points=False)
    await lg.start()
    try:
        assert (await lg.discovery.refresh("ollama")) == {"ollama": False}
        assert lg.registry.unreachable_detail["ollama"] == f"unreachable at {url}"
    finally:
        await lg.shutdown()
