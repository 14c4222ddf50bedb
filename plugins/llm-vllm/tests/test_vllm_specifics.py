"""What the vLLM provider adds: discovery, the thinking switch, /health fallback, /metrics, tiers."""

from __future__ import annotations

from typing import Any

import pytest
from importlib_metadata import entry_points
from legion_llm_vllm import VLLMProvider, plugin
from legion_llm_vllm.provider import parse_prometheus

from legion_core.providers.openai_wire import OpenAIWireProvider
from legion_core.settings.models import ProviderSettings
from legion_core.testing.fakes.openai import FakeOpenAI
from legion_core.types import ChatRequest, Message

MODELS = ["Qwen/Qwen3-8B", "BAAI/bge-small-en-v1.5"]


@pytest.fixture
def fake(legion_fake_factory: Any) -> FakeOpenAI:
    return legion_fake_factory(FakeOpenAI, api_key=None, flavor="vllm", models=MODELS, max_model_len=32768)


@pytest.fixture
async def make(fake: FakeOpenAI) -> Any:
    made: list[VLLMProvider] = []

    def build(url: str | None = None, **settings: Any) -> VLLMProvider:
        p = VLLMProvider("vllm", ProviderSettings(base_url=url or fake.url + "/v1", **settings))
        made.append(p)
        return p

    yield build
    for p in made:
        await p.aclose()


def req(**kw: Any) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content="hi")], **kw)


def test_entry_point_and_defaults() -> None:
    eps = {ep.name: ep.value for ep in entry_points(group="legion")}
    assert eps.get("llm-vllm") == "legion_llm_vllm.plugin"
    got: list[type] = []
    plugin.legion_register_providers(got.append)
    assert got == [VLLMProvider]
    p = VLLMProvider("vllm", ProviderSettings())
    assert p.base_url == "http://localhost:8000/v1" and p.tier == "fleet"
    assert not VLLMProvider.needs_credentials and VLLMProvider.auto_settings() is None
    assert VLLMProvider("lmstudio", ProviderSettings(tier="openai_compat")).tier == "openai_compat"


async def test_discovery_hook_reads_max_model_len(make: Any) -> None:
    p = make(reasoning=True)
    models = {m.id: m for m in await plugin.legion_discover_models(p)}
    qwen, bge = models["Qwen/Qwen3-8B"], models["BAAI/bge-small-en-v1.5"]
    assert qwen.context_window == 32768 and qwen.available and qwen.loaded and qwen.tier == "fleet"
    assert {"tools", "json", "streaming", "thinking"} <= qwen.capabilities and not qwen.embedding
    assert bge.embedding and bge.capabilities == {"embeddings"}


async def test_discovery_hook_ignores_other_providers_and_survives_outages(make: Any, free_port: int) -> None:
    other = OpenAIWireProvider("x", ProviderSettings(base_url="http://127.0.0.1:1/v1"))
    assert plugin.legion_discover_models(other) is None  # no coroutine left un-awaited
    assert await plugin.legion_discover_models(make(f"http://127.0.0.1:{free_port}/v1")) == []


async def test_capabilities_and_window_options(make: Any, fake: FakeOpenAI) -> None:
    fake.flavor = "openai"  # a gateway whose /v1/models has no max_model_len
    p = make(capabilities=["json"], context_window=4096, default_model="Qwen/Qwen3-8B")
    m = (await p.discover())[0]
    assert m.capabilities == {"json", "streaming"} and m.context_window == 4096
    assert [s.id for s in p.static_models()] == ["Qwen/Qwen3-8B"]


async def test_enable_thinking_switch(make: Any, fake: FakeOpenAI) -> None:
    p = make()
    r = await p.chat(req(thinking=True), MODELS[0])
    assert fake.last_chat()["chat_template_kwargs"] == {"enable_thinking": True}
    assert r.thinking == fake.thinking_text
    await p.chat(req(), MODELS[0])
    assert "chat_template_kwargs" not in fake.last_chat()
    off = make(enable_thinking=False)
    r = await off.chat(req(thinking=True), MODELS[0])
    assert "chat_template_kwargs" not in fake.last_chat() and r.thinking == ""


async def test_max_tokens_field_and_no_auth_header(make: Any, fake: FakeOpenAI) -> None:
    await make().chat(req(max_tokens=9), MODELS[0])
    assert fake.last_chat()["max_tokens"] == 9
    assert "authorization" not in {k.lower() for k in fake.requests[-1]["headers"]}


async def test_health_uses_root_health_then_reports_failure(make: Any, fake: FakeOpenAI) -> None:
    p = make()
    assert (await p.health()).ok and fake.calls["health"] == 1
    fake.healthy = False
    h = await p.health()
    assert not h.ok and "503" in h.detail


async def test_metrics_gauges(make: Any, fake: FakeOpenAI) -> None:
    fake.metrics.update(num_requests_running=3, num_requests_waiting=7, gpu_cache_usage_perc=0.5)
    m = await make().metrics()
    assert m["vllm:num_requests_running"] == 3 and m["vllm:num_requests_waiting"] == 7
    assert m["vllm:gpu_cache_usage_perc"] == 0.5


def test_parse_prometheus_sums_labels_and_skips_comments() -> None:
    text = ('# HELP vllm:num_requests_running x\n# TYPE vllm:num_requests_running gauge\n'
            'vllm:num_requests_running{model_name="a"} 1.0\nvllm:num_requests_running{model_name="b"} 2.0\n'
            'process_cpu_seconds_total 9\nvllm:kv_cache_usage_perc 0.25\n')
    assert parse_prometheus(text) == {"vllm:num_requests_running": 3.0, "vllm:kv_cache_usage_perc": 0.25}


async def test_embed_batch_size_splits_calls(make: Any, fake: FakeOpenAI) -> None:
    whole = await make().embed(["a", "b", "c"], MODELS[1])
    calls = fake.calls["embeddings"]
    split = await make(embed_batch_size=2).embed(["a", "b", "c"], MODELS[1])
    assert fake.calls["embeddings"] - calls == 2
    assert split.embeddings == whole.embeddings


def test_missing_base_url_is_a_clear_error() -> None:
    with pytest.raises(Exception, match="base_url"):
        OpenAIWireProvider("bare", ProviderSettings())


async def test_a_gateway_that_ignores_stream_true_is_replayed_as_chunks(legion_fake_factory: Any) -> None:
    from aiohttp import web

    from legion_core.testing.conformance import collect_stream

    class WholeAnswers(FakeOpenAI):  # answers JSON even when asked to stream
        async def _chat(self, request: web.Request) -> web.StreamResponse:
            body = await request.json()
            self.chat_bodies.append(body)
            return web.json_response(self._completion(body))

    fake = legion_fake_factory(WholeAnswers, api_key=None, models=MODELS)
    p = VLLMProvider("gw", ProviderSettings(base_url=fake.url + "/v1"))
    try:
        res = await collect_stream(p.stream(req(), MODELS[0]))
        assert res.error is None and res.text == fake.reply_text and res.usage.input_tokens == fake.usage[0]
        assert [c.type for c in res.chunks][-2:] == ["usage", "done"]
        tools = ChatRequest(messages=[Message(role="user", content="weather?")],
                            tools=[{"name": "get_weather"}])
        res = await collect_stream(p.stream(tools, MODELS[0]))
        assert res.tool_calls[0].arguments == fake.tool_arguments and res.done.stop_reason == "tool_use"
    finally:
        await p.aclose()
