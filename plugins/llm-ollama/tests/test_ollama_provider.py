"""Ollama-specific behaviour beyond the conformance suite: NDJSON framing (including lines split
across TCP writes), discovery and its TTL, memory figures, translation of tools/images/options,
error mapping, `OLLAMA_HOST`, and the plugin's hooks."""

from __future__ import annotations

import asyncio
import base64
import importlib.metadata as md
from collections.abc import AsyncIterator
from typing import Any

import pytest
from legion_llm_ollama import OllamaProvider
from legion_llm_ollama import plugin as ollama_plugin
from legion_llm_ollama import provider as provider_mod
from legion_llm_ollama.ndjson import NDJSONDecoder

from legion_core.errors import (
    BadRequest,
    ContextOverflow,
    ProviderBadRequest,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    StreamInterrupted,
)
from legion_core.plugins.manager import PluginManager
from legion_core.settings.models import ProviderSettings, TimeoutSettings
from legion_core.testing.conformance import WEATHER_TOOL, collect_stream
from legion_core.testing.fakes.ollama import FakeModel, FakeOllama
from legion_core.types import (
    ChatRequest,
    ImageBlock,
    Message,
    TextBlock,
    TextDelta,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    text_request,
)

MODEL = "llama3.2:3b"


@pytest.fixture
def fake(legion_fake_factory: Any) -> FakeOllama:
    return legion_fake_factory(FakeOllama)


@pytest.fixture
async def provider(fake: FakeOllama) -> AsyncIterator[OllamaProvider]:
    p = OllamaProvider("ollama", ProviderSettings(base_url=fake.url))
    yield p
    await p.aclose()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------ NDJSON framing
def test_ndjson_decoder_any_split() -> None:
    wire = ('{"message":{"content":"caf\u00e9 \u2615"},"done":false}\n'
            '\n{"done":true,"eval_count":3}\n').encode()
    for size in (1, 2, 5, len(wire)):
        dec = NDJSONDecoder()
        objs: list[Any] = []
        for i in range(0, len(wire), size):
            objs.extend(dec.feed(wire[i:i + size]))
        assert objs == [{"message": {"content": "café ☕"}, "done": False}, {"done": True, "eval_count": 3}]
        assert dec.flush() == []
    dec = NDJSONDecoder()
    assert dec.feed(b'{"done": true}') == [] and dec.flush() == [{"done": True}]


async def test_stream_reassembles_lines_split_across_tcp_writes(provider: OllamaProvider,
                                                                fake: FakeOllama) -> None:
    fake.split_writes = True
    fake.reply_text = "Mittwoch – café ☕ kommt danach."
    res = await collect_stream(provider.stream(text_request("hi"), MODEL))
    assert res.error is None
    assert res.text == fake.reply_text
    assert sum(isinstance(c, TextDelta) for c in res.chunks) == len(fake.reply_text.split(" "))


async def test_stream_tool_calls_and_thinking(provider: OllamaProvider, fake: FakeOllama) -> None:
    res = await collect_stream(provider.stream(text_request("weather?", tools=[WEATHER_TOOL], thinking=True),
                                               "qwen3:0.6b"))
    assert res.error is None
    assert res.thinking == fake.thinking_text
    assert [(c.name, c.arguments) for c in res.tool_calls] == [("get_weather", fake.tool_arguments)]
    assert res.done is not None and res.done.stop_reason == "tool_use"
    assert fake.last_chat()["think"] is True


async def test_error_line_mid_stream_interrupts(provider: OllamaProvider, fake: FakeOllama) -> None:
    fake.stream_error = (2, "llama runner process has terminated: signal: killed")
    res = await collect_stream(provider.stream(text_request("hi"), MODEL))
    assert len([c for c in res.chunks if isinstance(c, TextDelta)]) == 2
    assert isinstance(res.error, StreamInterrupted) and "runner" in str(res.error)


async def test_error_line_before_any_token_fails_over(provider: OllamaProvider, fake: FakeOllama) -> None:
    fake.stream_error = (0, "llama runner process has terminated: exit status 2")
    res = await collect_stream(provider.stream(text_request("hi"), MODEL))
    assert not res.chunks
    assert isinstance(res.error, ProviderUnavailable) and res.error.failover


# ------------------------------------------------------------------ translation
async def test_request_translation(provider: OllamaProvider, fake: FakeOllama) -> None:
    png = base64.b64encode(b"\x89PNG tiny").decode()
    req = ChatRequest(
        system="Be brief.",
        messages=[
            Message(role="user", content=[TextBlock(text="Look at "), TextBlock(text="this"),
                                          ImageBlock(data=png), ImageBlock(url=f"data:image/png;base64,{png}")]),
            Message(role="assistant", content=[ThinkingBlock(thinking="hmm"),
                                               ToolUseBlock(id="call_1", name="get_weather", input={"city": "Oslo"})]),
            Message(role="tool", content=[ToolResultBlock(tool_use_id="call_1", content="-3C")]),
        ],
        tools=[WEATHER_TOOL], temperature=0.1, top_p=0.5, max_tokens=20, stop=["\n\n"],
        response_format={"type": "json_schema", "schema": {"type": "object"}},
    )
    p = OllamaProvider("ollama", ProviderSettings(base_url=fake.url, keep_alive="10m",
                                                  options={"num_ctx": 8192}))
    try:
        resp = await p.chat(req, MODEL)
    finally:
        await p.aclose()
    assert resp.text == fake.reply_text
    body = fake.last_chat()
    msgs = body["messages"]
    assert msgs[0] == {"role": "system", "content": "Be brief."}
    assert msgs[1] == {"role": "user", "content": "Look at this", "images": [png, png]}
    assert msgs[2]["tool_calls"] == [{"id": "call_1", "function": {"name": "get_weather",
                                                                    "arguments": {"city": "Oslo"}}}]
    assert msgs[2]["thinking"] == "hmm"
    assert msgs[3] == {"role": "tool", "content": "-3C", "tool_call_id": "call_1", "tool_name": "get_weather"}
    assert body["options"] == {"num_ctx": 8192, "temperature": 0.1, "top_p": 0.5, "num_predict": 20,
                               "stop": ["\n\n"]}
    assert body["format"] == {"type": "object"} and body["keep_alive"] == "10m"
    assert body["tools"][0] == {"type": "function", "function": {
        "name": "get_weather", "description": WEATHER_TOOL.description, "parameters": WEATHER_TOOL.parameters}}
    assert body["stream"] is False


async def test_remote_image_url_is_refused_before_any_call(provider: OllamaProvider, fake: FakeOllama) -> None:
    req = ChatRequest(messages=[Message(role="user", content=[ImageBlock(url="https://example.com/a.png")])])
    with pytest.raises(BadRequest, match="base64"):
        await provider.chat(req, "llava:7b")
    assert fake.calls["chat"] == 0


async def test_length_stop_reason(provider: OllamaProvider, fake: FakeOllama) -> None:
    resp = await provider.chat(text_request("hi", max_tokens=2), MODEL)
    assert resp.stop_reason == "max_tokens" and resp.text == " ".join(fake.reply_text.split(" ")[:2])


# ------------------------------------------------------------------ errors
async def test_missing_model_may_fail_over(provider: OllamaProvider) -> None:
    with pytest.raises(ProviderError) as info:
        await provider.chat(text_request("hi"), "mistral:7b")
    err = info.value
    assert type(err) is ProviderError and err.failover and err.upstream_status == 404
    assert "try pulling it first" in str(err)


async def test_model_without_tools_is_a_bad_request(provider: OllamaProvider) -> None:
    with pytest.raises(ProviderBadRequest, match="does not support tools"):
        await provider.chat(text_request("hi", tools=[WEATHER_TOOL]), "llava:7b")


async def test_embed_overflow_and_wrong_model(provider: OllamaProvider, fake: FakeOllama) -> None:
    fake.fail_with("context_overflow")
    with pytest.raises(ContextOverflow):
        await provider.embed(["x"], "nomic-embed-text:latest")
    with pytest.raises(ProviderBadRequest, match="does not support embeddings"):
        await provider.embed(["x"], MODEL)


async def test_bearer_key_for_proxied_ollama(fake: FakeOllama) -> None:
    fake.api_key = "ollama-proxy-key"
    p = OllamaProvider("ollama", ProviderSettings(base_url=fake.url, api_key="ollama-proxy-key"))
    try:
        assert (await p.chat(text_request("hi"), MODEL)).text == fake.reply_text
    finally:
        await p.aclose()


# ------------------------------------------------------------------ discovery
async def test_discovery_reports_context_capabilities_and_memory(provider: OllamaProvider,
                                                                 fake: FakeOllama) -> None:
    fake.loaded = {"qwen3:0.6b"}
    models = {m.id: m for m in await provider.discover()}
    assert set(models) == set(fake.models)
    llama = models["llama3.2:3b"]
    assert llama.context_window == 131_072 and llama.memory_bytes == fake.models["llama3.2:3b"].size
    assert llama.capabilities == {"streaming", "json", "tools"} and llama.available and llama.loaded is False
    assert models["qwen3:0.6b"].loaded is True and "thinking" in models["qwen3:0.6b"].capabilities
    assert "vision" in models["llava:7b"].capabilities
    emb = models["nomic-embed-text:latest"]
    assert emb.embedding and emb.capabilities == {"embeddings"}
    assert all(m.tier == "local" and m.input_price == 0 for m in models.values())


async def test_discovery_ttl_and_show_cache(fake: FakeOllama) -> None:
    clock = Clock()
    p = OllamaProvider("ollama", ProviderSettings(base_url=fake.url, discovery_ttl_seconds=30))
    p.discovery.clock = clock
    try:
        await p.discover()
        assert (fake.calls["tags"], fake.calls["show"]) == (1, len(fake.models))
        clock.now += 29
        await p.discover()  # fresh: no HTTP at all
        assert (fake.calls["tags"], fake.calls["show"]) == (1, len(fake.models))
        fake.models["phi4:14b"] = FakeModel("phi4:14b", 9_100_000_000, "phi3", 16_384, ["completion"])
        clock.now += 2
        models = {m.id: m for m in await p.discover()}
        # stale: tags again, but /api/show only for the new digest
        assert (fake.calls["tags"], fake.calls["show"]) == (2, len(fake.models))
        assert models["phi4:14b"].context_window == 16_384
        del fake.models["llava:7b"]
        await p.discover(force=True)
        assert fake.calls["tags"] == 3 and "llava:7b" not in {m.id for m in p.discovery.cached or []}
    finally:
        await p.aclose()


async def test_concurrent_discovery_shares_one_refresh(provider: OllamaProvider, fake: FakeOllama) -> None:
    results = await asyncio.gather(*(provider.discover() for _ in range(8)))
    assert fake.calls["tags"] == 1 and all(r == results[0] for r in results)


async def test_discovery_unreachable_raises_typed(free_port: int) -> None:
    p = OllamaProvider("ollama", ProviderSettings(base_url=f"http://127.0.0.1:{free_port}"))
    try:
        with pytest.raises(ProviderUnavailable):
            await p.discover()
        h = await p.health()
        assert not h.ok and h.detail == f"unreachable at http://127.0.0.1:{free_port}"
    finally:
        await p.aclose()


async def test_discovery_hook_and_startup_ttl(provider: OllamaProvider, fake: FakeOllama) -> None:
    pm = PluginManager()
    pm.register(ollama_plugin, name="llm-ollama")
    results = pm.hook.legion_discover_models(provider=provider)
    assert len(results) == 1
    models = await results[0]
    assert {m.id for m in models} == set(fake.models)

    class Other:
        kind = "openai"

    assert pm.hook.legion_discover_models(provider=Other()) == []

    class Legion:  # the attributes the startup hook reads
        class settings:
            class llm:
                class discovery:
                    ttl_seconds = 7.0

                timeouts = TimeoutSettings(read=11.0)

        class registry:
            providers = {"ollama": provider}

    for r in pm.hook.legion_startup(legion=Legion):
        await r
    assert provider.discovery.ttl == 7.0 and provider.client().timeout.read == 11.0
    pinned = OllamaProvider("pinned", ProviderSettings(base_url=fake.url, discovery_ttl_seconds=99))
    pinned.set_discovery_ttl(7.0)
    assert pinned.discovery.ttl == 99.0, "a per-provider TTL wins over the kernel's"


# ------------------------------------------------------------------ settings and registration
@pytest.mark.parametrize(("raw", "url"), [
    ("127.0.0.1", "http://127.0.0.1:11434"),
    ("0.0.0.0:11500", "http://localhost:11500"),
    ("http://gpu-box:8080", "http://gpu-box:8080"),
    ("https://ollama.example.com", "https://ollama.example.com:443"),
    ("http://[::1]:11434/", "http://[::1]:11434"),
])
def test_normalize_ollama_host(raw: str, url: str) -> None:
    assert provider_mod.normalize_host(raw) == url


def test_auto_settings(monkeypatch: pytest.MonkeyPatch, fake: FakeOllama, free_port: int) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box:9999")
    s = OllamaProvider.auto_settings()
    assert s is not None and s.base_url == "http://gpu-box:9999"
    monkeypatch.delenv("OLLAMA_HOST")
    monkeypatch.setattr(provider_mod, "DEFAULT_URL", fake.url)
    s = OllamaProvider.auto_settings()
    assert s is not None and s.base_url is None, "a local Ollama is detected; base_url stays the default"
    monkeypatch.setattr(provider_mod, "DEFAULT_URL", f"http://127.0.0.1:{free_port}")
    assert OllamaProvider.auto_settings() is None, "nothing listening and no OLLAMA_HOST: not auto-enabled"


def test_defaults_and_entry_point() -> None:
    p = OllamaProvider("ollama", ProviderSettings())
    assert p.base_url == "http://localhost:11434" and p.tier == "local" and not p.needs_credentials
    eps = [ep for ep in md.entry_points(group="legion") if ep.name == "llm-ollama"]
    assert len(eps) == 1 and eps[0].value == "legion_llm_ollama.plugin"
    registered: list[type] = []
    eps[0].load().legion_register_providers(register=registered.append)
    assert registered == [OllamaProvider]


# ------------------------------------------------------------------ timeouts
async def test_total_timeout_bounds_a_chat(fake: FakeOllama) -> None:
    fake.fail_with("timeout")  # the answer comes only after SLOW_SECONDS
    p = OllamaProvider("ollama", ProviderSettings(base_url=fake.url, timeout_read=30, timeout_total=0.3))
    try:
        with pytest.raises(ProviderTimeout, match="timeout_total=0.3s") as info:
            await p.chat(text_request("hi"), MODEL)
        assert info.value.failover and info.value.provider == "ollama"
    finally:
        await p.aclose()


async def test_kernel_timeouts_apply_under_the_providers_own(fake: FakeOllama) -> None:
    own = OllamaProvider("own", ProviderSettings(base_url=fake.url, timeout_read=9))
    plain = OllamaProvider("plain", ProviderSettings(base_url=fake.url))
    try:
        for p in (own, plain):
            await p.startup()
            await p.apply_timeouts(TimeoutSettings(connect=1.5, read=4.0, total=30.0))
        assert (plain.client().timeout.read, plain.client().timeout.connect) == (4.0, 1.5)
        assert own.client().timeout.read == 9 and own.total_timeout() == 30.0
        assert (await plain.chat(text_request("hi"), MODEL)).text == fake.reply_text
    finally:
        await own.aclose()
        await plain.aclose()


async def test_fixed_reply_mode_for_benchmarks(legion_fake_factory: Any) -> None:
    fake = legion_fake_factory(FakeOllama, fixed_reply=True)
    p = OllamaProvider("ollama", ProviderSettings(base_url=fake.url))
    try:
        resp = await p.chat(text_request("hi"), MODEL)
        res = await collect_stream(p.stream(text_request("hi"), MODEL))
        assert resp.text == res.text == fake.reply_text and res.error is None
        assert res.usage is not None
        assert (resp.usage.input_tokens, resp.usage.output_tokens) == tuple(fake.usage) == \
            (res.usage.input_tokens, res.usage.output_tokens)
        assert fake.calls["chat"] == 2 and not fake.chat_bodies
    finally:
        await p.aclose()


@pytest.mark.parametrize(("key", "value"), [("discovery_ttl_seconds", "soon"), ("show_concurrency", 0),
                                            ("health_timeout", -1), ("options", "num_ctx=8192")])
def test_bad_settings_name_their_key(key: str, value: Any) -> None:
    from legion_core.errors import SettingsError

    with pytest.raises(SettingsError, match=rf"llm\.providers\.ollama\.{key}"):
        OllamaProvider("ollama", ProviderSettings(**{key: value}))


async def test_abandoned_stream_gives_its_connection_back(fake: FakeOllama) -> None:
    p = OllamaProvider("ollama", ProviderSettings(base_url=fake.url, max_connections=1))
    try:
        # aiohttp's finalizer would quietly free a leaked response; in debug mode it reports it.
        # The answer is long, so the body is still arriving when the consumer walks away.
        fake.reply_text = " ".join(f"w{i}" for i in range(40_000))
        import gc
        import warnings

        loop = asyncio.get_running_loop()
        reports: list[str] = []
        old_handler = loop.get_exception_handler()
        loop.set_debug(True)
        loop.set_exception_handler(lambda _loop, ctx: reports.append(str(ctx.get("message"))))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                for _ in range(3):
                    stream = p.stream(text_request("hi"), MODEL)
                    assert isinstance(await stream.__anext__(), TextDelta)
                    await stream.aclose()
                    del stream
                gc.collect()
        finally:
            loop.set_debug(False)
            loop.set_exception_handler(old_handler)
        assert "Unclosed response" not in reports
        fake.reply_text = "done"
        resp = await asyncio.wait_for(p.chat(text_request("hi"), MODEL), 5)
        assert resp.text == "done"
    finally:
        await p.aclose()


async def test_context_window_is_the_configured_num_ctx(fake: FakeOllama) -> None:
    fake.models["mistral:7b"] = FakeModel("mistral:7b", 4_100_000_000, "llama", 32_768, ["completion"],
                                          num_ctx=16_384)
    p = OllamaProvider("ollama", ProviderSettings(base_url=fake.url))
    q = OllamaProvider("ollama8k", ProviderSettings(base_url=fake.url, options={"num_ctx": 8192}))
    try:
        plain = {m.id: m.context_window for m in await p.discover()}
        assert plain["llama3.2:3b"] == 131_072, "no num_ctx known: the trained length"
        assert plain["mistral:7b"] == 16_384, "the Modelfile's num_ctx"
        capped = {m.id: m.context_window for m in await q.discover()}
        assert capped["llama3.2:3b"] == 8192 and capped["mistral:7b"] == 8192, "options.num_ctx wins"
        assert capped["nomic-embed-text:latest"] == 2048, "never above the trained length"
    finally:
        await p.aclose()
        await q.aclose()


async def test_stream_stalled_before_the_first_token_times_out(fake: FakeOllama) -> None:
    fake.fail_with("timeout")
    p = OllamaProvider("ollama", ProviderSettings(base_url=fake.url, timeout_read=0.3))
    try:
        res = await collect_stream(p.stream(text_request("hi"), MODEL))
        assert isinstance(res.error, ProviderTimeout) and res.error.failover and not res.chunks
    finally:
        await p.aclose()


async def test_hot_path_does_not_touch_httpx(provider: OllamaProvider, fake: FakeOllama,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """chat, stream and embed go through `Pool.post` (aiohttp): httpx costs as much CPU again."""
    from legion_core.providers.pool import Pool

    monkeypatch.setattr(Pool, "client", property(lambda self: pytest.fail("httpx client on the hot path")))
    assert (await provider.chat(text_request("hi"), MODEL)).text == fake.reply_text
    res = await collect_stream(provider.stream(text_request("hi"), MODEL))
    assert res.error is None and res.text == fake.reply_text
    emb = await provider.embed(["a", "b"], "nomic-embed-text:latest")
    assert len(emb.embeddings) == 2 and all(emb.embeddings)
