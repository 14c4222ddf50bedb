"""The plugin inside a real kernel: boot, background discovery into the registry (max_model_len),
kernel timeouts applied, routed chat and stream answered by the fake, unreachable servers marked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from legion_llm_vllm import VLLMProvider
from legion_llm_vllm import plugin as vllm_plugin

from legion_core.lifecycle import Legion
from legion_core.plugins.manager import PluginManager
from legion_core.testing.conformance import collect_stream
from legion_core.testing.fakes.openai import FakeOpenAI
from legion_core.types import text_request


def manager() -> PluginManager:
    pm = PluginManager()
    pm.load(entry_points=False)  # the kernel's built-ins only
    pm.register(vllm_plugin, name="llm-vllm")
    return pm


@pytest.fixture
async def legion(tmp_path: Path, legion_fake_factory: Any) -> AsyncIterator[tuple[Legion, FakeOpenAI]]:
    fake = legion_fake_factory(FakeOpenAI, api_key=None, flavor="vllm", models=["Qwen/Qwen3-8B"],
                               max_model_len=40960)
    settings = {"llm": {"providers": {"gpu": {"type": "vllm", "base_url": fake.url + "/v1"}},
                        "discovery": {"refresh_interval_seconds": 3600},
                        "timeouts": {"read": 42.0, "total": 99.0}}}
    lg = Legion(home=tmp_path, settings=settings, plugins=manager(), load_entry_points=False)
    await lg.start()
    try:
        yield lg, fake
    finally:
        await lg.shutdown()


async def test_discovery_routing_chat_and_stream(legion: tuple[Legion, FakeOpenAI]) -> None:
    lg, fake = legion
    provider = lg.registry.get("gpu")
    assert isinstance(provider, VLLMProvider) and provider.tier == "fleet"
    assert provider.client().timeout.read == 42.0 and provider.total_timeout() == 99.0  # llm.timeouts
    assert (await lg.discovery.refresh("gpu")) == {"gpu": True}
    models = {m.id: m for m in lg.registry.models("gpu")}
    assert models["Qwen/Qwen3-8B"].context_window == 40960 and models["Qwen/Qwen3-8B"].available

    resp = await lg.pipeline.chat(text_request("What day comes after Tuesday?", model="gpu/Qwen/Qwen3-8B",
                                               cache=False))
    assert resp.text == fake.reply_text and resp.provider == "gpu" and resp.tier == "fleet"
    res = await collect_stream(lg.pipeline.stream(text_request("What day comes after Tuesday?",
                                                               model="gpu/Qwen/Qwen3-8B", cache=False)))
    assert res.error is None and res.text == fake.reply_text
    assert fake.calls["chat"] == 2


async def test_unreachable_server_is_marked_not_raised(tmp_path: Path, free_port: int) -> None:
    settings = {"llm": {"providers": {"gpu": {"type": "vllm", "base_url": f"http://127.0.0.1:{free_port}/v1"}},
                        "discovery": {"refresh_interval_seconds": 3600}}}
    lg = Legion(home=tmp_path, settings=settings, plugins=manager(), load_entry_points=False)
    await lg.start()
    try:
        assert (await lg.discovery.refresh("gpu")) == {"gpu": False}
        assert "unreachable" in lg.registry.unreachable_detail["gpu"]
        assert [m for m in lg.registry.models("gpu") if m.available] == []
    finally:
        await lg.shutdown()
