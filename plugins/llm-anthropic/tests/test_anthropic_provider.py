"""Anthropic-specific behaviour beyond the conformance suite: typed SSE events, thinking blocks,
tool_use `input_json_delta` assembly, request translation, error mapping, and the real `anthropic`
SDK against the fake (which keeps the fake honest)."""

from __future__ import annotations

import base64
import importlib.metadata as md
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest
from legion_llm_anthropic import AnthropicProvider
from legion_llm_anthropic.provider import _StreamState
from legion_llm_anthropic.sse import SSEDecoder

from legion_core.errors import (
    BadRequest,
    ContentPolicy,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    SettingsError,
    StreamInterrupted,
)
from legion_core.settings.models import ProviderSettings
from legion_core.testing.conformance import WEATHER_TOOL, collect_stream
from legion_core.testing.fakes.anthropic import FakeAnthropic
from legion_core.types import (
    ChatRequest,
    DoneChunk,
    ImageBlock,
    Message,
    TextBlock,
    TextDelta,
    ThinkingBlock,
    ThinkingDelta,
    ToolCallDelta,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    UsageChunk,
    text_request,
)

KEY = "sk-ant-provider-test-key-123"
MODEL = "claude-sonnet-4-6"


@pytest.fixture
def fake(legion_fake_factory: Any) -> FakeAnthropic:
    return legion_fake_factory(FakeAnthropic, api_key=KEY)


@pytest.fixture
async def provider(fake: FakeAnthropic) -> AsyncIterator[AnthropicProvider]:
    p = AnthropicProvider("claude", ProviderSettings(base_url=fake.url, api_key=KEY))
    yield p
    await p.aclose()


# ------------------------------------------------------------------ SSE framing
def test_sse_decoder_survives_any_split() -> None:
    wire = ('event: message_start\ndata: {"type":"message_start"}\n\n'
            ": a comment line\r\n"
            'event: content_block_delta\r\ndata: {"type":"content_block_delta",\r\n'
            'data: "delta":{"type":"text_delta","text":"café ☕"}}\r\n\r\n').encode()
    for size in (1, 2, 3, 7, len(wire)):
        dec = SSEDecoder()
        events = []
        for i in range(0, len(wire), size):
            events.extend(dec.feed(wire[i:i + size]))
        assert [e.event for e in events] == ["message_start", "content_block_delta"], size
        assert events[1].data.endswith('"text":"café ☕"}}')
        assert "\n" in events[1].data  # multi-line data joined with a newline, per the SSE rules
        assert not dec.pending


def _events(*pairs: tuple[str, str]) -> list[Any]:
    state = _StreamState()
    out: list[Any] = []
    for ev, data in pairs:
        out.extend(state.on_event(ev, data, provider="claude"))
    return out


def test_two_tool_uses_assemble_from_input_json_delta_pieces() -> None:
    chunks = _events(
        ("message_start", '{"type":"message_start","message":{"usage":{"input_tokens":30,"output_tokens":1}}}'),
        ("content_block_start", '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}'),
        ("content_block_delta", '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking."}}'),
        ("content_block_start", '{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_A","name":"get_weather","input":{}}}'),
        ("content_block_delta", '{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}'),
        ("content_block_delta", '{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\\"city\\": \\"Pa"}}'),
        ("content_block_delta", '{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ris\\"}"}}'),
        ("content_block_stop", '{"type":"content_block_stop","index":1}'),
        ("content_block_start", '{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_B","name":"get_time","input":{}}}'),
        ("content_block_delta", '{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\\"tz\\":\\"UTC\\"}"}}'),
        ("ping", '{"type":"ping"}'),
        ("message_delta", '{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":42}}'),
        ("message_stop", '{"type":"message_stop"}'),
    )
    from legion_core.testing.conformance import StreamResult

    res = StreamResult(chunks=chunks)
    assert [(c.id, c.name, c.arguments) for c in res.tool_calls] == [
        ("toolu_A", "get_weather", {"city": "Paris"}), ("toolu_B", "get_time", {"tz": "UTC"})]
    # the empty partial_json piece is not forwarded; each call has its own kernel index
    deltas = [c for c in chunks if isinstance(c, ToolCallDelta)]
    assert [d.index for d in deltas] == [0, 0, 0, 1, 1]
    assert res.text == "Checking."
    assert res.usage is not None and (res.usage.input_tokens, res.usage.output_tokens) == (30, 42)
    assert res.done is not None and res.done.stop_reason == "tool_use"


def test_error_event_becomes_typed_error() -> None:
    state = _StreamState()
    with pytest.raises(ProviderUnavailable):
        state.on_event("error", '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
                       provider="claude")


# ------------------------------------------------------------------ thinking
async def test_thinking_request_and_blocks(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    resp = await provider.chat(text_request("Which day follows Tuesday?", thinking=True, max_tokens=64,
                                            temperature=0.2), MODEL)
    body = fake.last_chat()
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert body["max_tokens"] > 4096, "max_tokens must exceed the thinking budget"
    assert "temperature" not in body, "the API rejects a temperature with thinking enabled"
    thinking = [b for b in resp.content if isinstance(b, ThinkingBlock)]
    assert len(thinking) == 1 and thinking[0].thinking == fake.thinking_text and thinking[0].signature
    assert resp.text == fake.reply_text


async def test_thinking_stream_then_signed_replay_with_tools(provider: AnthropicProvider,
                                                             fake: FakeAnthropic) -> None:
    req = text_request("Weather in Paris?", thinking=True, tools=[WEATHER_TOOL])
    res = await collect_stream(provider.stream(req, MODEL))
    assert res.error is None
    assert res.thinking == fake.thinking_text
    kinds = [type(c) for c in res.chunks]
    assert kinds.index(ThinkingDelta) < kinds.index(ToolCallDelta)
    signed = [c for c in res.chunks if isinstance(c, ThinkingDelta) and c.signature]
    assert len(signed) == 1 and signed[0].thinking == "" and signed[0].signature.startswith("EqQB")
    assert max(i for i, c in enumerate(res.chunks) if isinstance(c, ThinkingDelta)) < kinds.index(TextDelta)
    assert res.tool_calls[0].arguments == fake.tool_arguments
    # chat() keeps the signature, so the assistant turn can be replayed (the fake insists on it)
    first = await provider.chat(req, MODEL)
    follow = ChatRequest(thinking=True, tools=[WEATHER_TOOL], messages=[
        Message(role="user", content="Weather in Paris?"),
        Message(role="assistant", content=first.content),
        Message(role="tool", content=[ToolResultBlock(tool_use_id=first.tool_calls[0].id, content="18C")]),
    ])
    second = await provider.chat(follow, MODEL)
    assert second.text == fake.reply_text
    replayed = fake.last_chat()["messages"][1]["content"]
    assert replayed[0]["type"] == "thinking" and replayed[0]["signature"]


@pytest.mark.parametrize(("model", "mode", "expected"), [
    ("claude-opus-4-6", "auto", {"type": "adaptive"}),
    ("claude-opus-4-6-20260205", "auto", {"type": "adaptive"}),
    ("claude-haiku-4-5", "auto", {"type": "enabled", "budget_tokens": 2048}),
    ("claude-opus-4-6", "enabled", {"type": "enabled", "budget_tokens": 2048}),
    ("claude-haiku-4-5", "adaptive", {"type": "adaptive"}),
])
async def test_thinking_mode_per_model(fake: FakeAnthropic, model: str, mode: str, expected: dict) -> None:
    p = AnthropicProvider("claude", ProviderSettings(base_url=fake.url, api_key=KEY, thinking_mode=mode,
                                                     thinking_budget_tokens=2048))
    try:
        resp = await p.chat(text_request("hi", thinking=True), model)
        assert fake.last_chat()["thinking"] == expected
        assert resp.thinking == fake.thinking_text
    finally:
        await p.aclose()


def test_bad_thinking_mode_names_the_setting() -> None:
    from legion_core.errors import SettingsError

    with pytest.raises(SettingsError, match=r"llm.providers.claude.thinking_mode.*'always'"):
        AnthropicProvider("claude", ProviderSettings(api_key=KEY, thinking_mode="always"))


async def test_unsigned_thinking_from_elsewhere_is_dropped(provider: AnthropicProvider,
                                                           fake: FakeAnthropic) -> None:
    req = ChatRequest(messages=[
        Message(role="user", content="hi"),
        Message(role="assistant", content=[ThinkingBlock(thinking="local musing"), TextBlock(text="Hello")]),
        Message(role="user", content="and?"),
    ])
    resp = await provider.chat(req, MODEL)
    assert resp.text == fake.reply_text
    assert fake.last_chat()["messages"][1]["content"] == [{"type": "text", "text": "Hello"}]


# ------------------------------------------------------------------ request translation
async def test_request_translation(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    png = base64.b64encode(b"\x89PNG fake").decode()
    req = ChatRequest(
        system="Top system.",
        messages=[
            Message(role="system", content="Second system."),
            Message(role="user", content=[TextBlock(text="Look:"), ImageBlock(media_type="image/png", data=png),
                                          ImageBlock(url="https://example.com/cat.jpg"),
                                          ImageBlock(url=f"data:image/jpeg;base64,{png}")]),
            Message(role="assistant", content=[ToolUseBlock(id="toolu_1", name="lookup", input={"q": "cat"})]),
            Message(role="tool", content=[ToolResultBlock(tool_use_id="toolu_1", content="a cat", is_error=False)]),
            Message(role="user", content="So?"),
        ],
        tools=[ToolSpec(name="lookup", description="Search", parameters={"type": "object", "properties": {
            "q": {"type": "string"}}})],
        tool_choice="lookup", stop=["END"], top_p=0.9, temperature=0.5, max_tokens=50,
    )
    await provider.chat(req, MODEL)
    body = fake.last_chat()
    assert body["system"] == "Top system.\n\nSecond system."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    imgs = [b for b in body["messages"][0]["content"] if b["type"] == "image"]
    assert imgs[0]["source"] == {"type": "base64", "media_type": "image/png", "data": png}
    assert imgs[1]["source"] == {"type": "url", "url": "https://example.com/cat.jpg"}
    assert imgs[2]["source"]["media_type"] == "image/jpeg" and imgs[2]["source"]["data"] == png
    # the tool result and the next user text merge into one user turn, as the API requires
    assert [b["type"] for b in body["messages"][2]["content"]] == ["tool_result", "text"]
    assert body["tools"] == [{"name": "lookup", "description": "Search",
                              "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}]
    assert body["tool_choice"] == {"type": "tool", "name": "lookup"}
    assert (body["stop_sequences"], body["top_p"], body["temperature"], body["max_tokens"]) == (["END"], 0.9, 0.5, 50)
    headers = {k.lower(): v for k, v in fake.requests[-1]["headers"].items()}
    assert headers["x-api-key"] == KEY and headers["anthropic-version"] == "2023-06-01"


async def test_tool_choice_variants(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    await provider.chat(text_request("x", tools=[WEATHER_TOOL], tool_choice="required"), MODEL)
    assert fake.last_chat()["tool_choice"] == {"type": "any"}
    resp = await provider.chat(text_request("x", tools=[WEATHER_TOOL], tool_choice="none"), MODEL)
    assert fake.last_chat()["tool_choice"] == {"type": "none"} and fake.last_chat()["tools"]
    assert not resp.tool_calls and resp.text == fake.reply_text
    # a history with tool blocks but no tools offered is refused upstream: a clear, typed error
    history = ChatRequest(messages=[
        Message(role="user", content="Weather?"),
        Message(role="assistant", content=[ToolUseBlock(id="toolu_1", name="get_weather", input={})]),
        Message(role="tool", content=[ToolResultBlock(tool_use_id="toolu_1", content="sunny")]),
    ])
    with pytest.raises(ProviderBadRequest, match="must define tools"):
        await provider.chat(history, MODEL)


async def test_json_response_format_is_instructed(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    await provider.chat(text_request("x", response_format={"type": "json_schema", "schema": {"type": "object"}}),
                        MODEL)
    assert "valid JSON" in fake.seen_system() and '{"type": "object"}' in fake.seen_system()


async def test_tool_message_without_tool_result_is_a_clear_error(provider: AnthropicProvider,
                                                                 fake: FakeAnthropic) -> None:
    req = ChatRequest(messages=[Message(role="user", content="hi"), Message(role="tool", content="42")])
    with pytest.raises(BadRequest, match="tool_result"):
        await provider.chat(req, MODEL)
    assert fake.calls["messages"] == 0


async def test_pass_through_token_replaces_the_key(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.api_key = "sk-ant-callers-own"
    req = text_request("hi")
    req.pass_through_token = "sk-ant-callers-own"
    assert (await provider.chat(req, MODEL)).text == fake.reply_text
    with pytest.raises(ProviderAuthError):
        await provider.chat(text_request("hi"), MODEL)


# ------------------------------------------------------------------ errors
async def test_stream_error_event_after_first_token_interrupts(provider: AnthropicProvider,
                                                               fake: FakeAnthropic) -> None:
    fake.send_stream_error_next("overloaded_error", "Overloaded")
    res = await collect_stream(provider.stream(text_request("hi"), MODEL))
    assert [type(c) for c in res.chunks] == [TextDelta]
    assert isinstance(res.error, StreamInterrupted) and not res.error.failover


@pytest.mark.parametrize(("kind", "expected"), [
    ("not_found", ProviderError), ("unavailable", ProviderUnavailable), ("bad_request", ProviderBadRequest),
    ("content_policy", ContentPolicy),
])
async def test_error_mapping_extra(provider: AnthropicProvider, fake: FakeAnthropic, kind: str,
                                   expected: type) -> None:
    fake.fail_with(kind)
    with pytest.raises(ProviderError) as info:
        await provider.chat(text_request("hi"), MODEL)
    assert type(info.value) is expected
    if kind == "not_found":
        assert info.value.failover, "a model missing here may exist on another provider"
    if kind == "unavailable":
        assert info.value.upstream_status == 529


async def test_real_prompt_too_long_is_context_overflow(fake: FakeAnthropic) -> None:
    fake.context_window = 50
    p = AnthropicProvider("claude", ProviderSettings(base_url=fake.url, api_key=KEY))
    try:
        from legion_core.errors import ContextOverflow

        with pytest.raises(ContextOverflow, match="prompt is too long"):
            await p.chat(text_request("word " * 200), MODEL)
    finally:
        await p.aclose()


async def test_bad_key_is_auth_error_without_the_key(fake: FakeAnthropic) -> None:
    secret = "sk-ant-WRONG-secret-value"
    p = AnthropicProvider("claude", ProviderSettings(base_url=fake.url, api_key=secret))
    try:
        with pytest.raises(ProviderAuthError) as info:
            await p.chat(text_request("hi"), MODEL)
        assert secret not in str(info.value)
        h = await p.health()
        assert not h.ok and "credential" in h.detail and secret not in h.detail
    finally:
        await p.aclose()


async def test_rate_limit_retry_after(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.fail_with("rate_limited", retry_after=42)
    with pytest.raises(RateLimited) as info:
        await provider.chat(text_request("hi"), MODEL)
    assert info.value.retry_after == 42


# ------------------------------------------------------------------ extras
async def test_count_tokens(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    n = await provider.count_tokens(text_request("x" * 400), MODEL)
    assert n == fake._input_tokens(fake.requests[-1]["body"]) and n >= 100
    assert "max_tokens" not in fake.requests[-1]["body"]


def test_catalog_and_defaults() -> None:
    p = AnthropicProvider("anthropic", ProviderSettings())
    assert p.tier == "frontier" and p.base_url == "https://api.anthropic.com"
    assert AnthropicProvider.needs_credentials
    auto = AnthropicProvider.auto_settings()
    assert auto is not None and auto.api_key == "env://ANTHROPIC_API_KEY"
    models = {m.id: m for m in p.static_models()}
    assert auto.default_model in models
    sonnet = models["claude-sonnet-4-6"]
    assert sonnet.context_window == 1_000_000 and {"tools", "vision", "thinking", "streaming"} <= sonnet.capabilities
    assert (sonnet.input_price, sonnet.output_price) == (3.0, 15.0)
    assert models["claude-haiku-4-5"].context_window == 200_000
    assert AnthropicProvider("a", ProviderSettings(tier="cloud")).tier == "cloud"


def test_entry_point_registers_the_provider() -> None:
    eps = [ep for ep in md.entry_points(group="legion") if ep.name == "llm-anthropic"]
    assert len(eps) == 1 and eps[0].value == "legion_llm_anthropic.plugin"
    registered: list[type] = []
    eps[0].load().legion_register_providers(register=registered.append)
    assert registered == [AnthropicProvider]


# ------------------------------------------------------------------ the real SDK keeps the fake honest
async def test_real_sdk_against_the_fake(fake: FakeAnthropic) -> None:
    client = anthropic.AsyncAnthropic(api_key=KEY, base_url=fake.url, max_retries=0)
    try:
        tools = [{"name": "get_weather", "input_schema": WEATHER_TOOL.parameters}]
        async with client.messages.stream(model=MODEL, max_tokens=2048, tools=tools,
                                          thinking={"type": "enabled", "budget_tokens": 1024},
                                          messages=[{"role": "user", "content": "Weather?"}]) as s:
            final = await s.get_final_message()
        assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
        assert final.content[2].input == fake.tool_arguments and final.stop_reason == "tool_use"
        assert final.content[0].signature
        fake.fail_with("rate_limited")
        with pytest.raises(anthropic.RateLimitError) as info:
            await client.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}])
        assert info.value.response.headers["retry-after"] == "7"
        fake.fail_with("unavailable")
        with pytest.raises(anthropic.APIStatusError) as info2:
            await client.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}])
        assert info2.value.status_code == 529
    finally:
        await client.close()


async def test_stream_usage_and_done_come_last(provider: AnthropicProvider) -> None:
    res = await collect_stream(provider.stream(text_request("hi"), MODEL))
    assert isinstance(res.chunks[-1], DoneChunk) and isinstance(res.chunks[-2], UsageChunk)


async def test_fixed_reply_mode_for_benchmarks(legion_fake_factory: Any) -> None:
    fake = legion_fake_factory(FakeAnthropic, api_key=KEY, fixed_reply=True)
    p = AnthropicProvider("claude", ProviderSettings(base_url=fake.url, api_key=KEY))
    try:
        resp = await p.chat(text_request("hi"), MODEL)
        res = await collect_stream(p.stream(text_request("hi"), MODEL))
        assert resp.text == res.text == fake.reply_text and res.error is None
        assert (resp.usage.input_tokens, resp.usage.output_tokens) == tuple(fake.usage) == \
            (res.usage.input_tokens, res.usage.output_tokens)
        assert fake.calls["messages"] == 2 and not fake.chat_bodies  # no bookkeeping in this mode
    finally:
        await p.aclose()


def test_redacted_thinking_round_trips_untouched() -> None:
    from legion_llm_anthropic.wire import block_from_wire, block_to_wire

    wire = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT"}
    block = block_from_wire(wire)
    assert isinstance(block, ThinkingBlock) and block.thinking == ""
    assert block_to_wire(block) == wire
    # a signed thinking block with its text omitted (adaptive `display: omitted`) stays `thinking`
    omitted = {"type": "thinking", "thinking": "", "signature": "EqQBsig"}
    assert block_to_wire(block_from_wire(omitted)) == omitted
    chunks = _events(("content_block_start", '{"type":"content_block_start","index":0,"content_block":'
                                             '{"type":"redacted_thinking","data":"EmwKAhgB"}}'))
    assert [(c.thinking, c.signature) for c in chunks] == [("", "redacted_thinking:EmwKAhgB")]


# ------------------------------------------------------------------ discovery (the Models API)
async def test_discovery_reports_live_models_and_their_aliases(provider: AnthropicProvider,
                                                               fake: FakeAnthropic) -> None:
    from legion_core.testing.fakes.anthropic import model_entry

    fake.models.append(model_entry("claude-opus-6", "Claude Opus 6", "2026-11-01T00:00:00Z",
                                   max_input_tokens=2_000_000, max_tokens=256_000, thinking=(False, True),
                                   vision=False, line="opus"))
    fake.models.append(model_entry("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z",
                                   max_input_tokens=200_000, max_tokens=64_000, lifecycle="retired"))
    models = {m.id: m for m in await provider.discover()}
    assert set(models) == {"claude-opus-4-6", "claude-sonnet-4-6", "claude-haiku-4-5-20251001", "claude-haiku-4-5",
                           "claude-opus-6", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"}
    haiku = models["claude-haiku-4-5"]  # the catalog alias of a dated live id
    assert haiku.available and haiku.context_window == 200_000 and haiku.max_output_tokens == 64_000
    assert {"vision", "thinking", "tools", "streaming"} <= haiku.capabilities
    assert "input_price" not in haiku.model_dump(exclude_unset=True), "known models keep catalog prices"
    new = models["claude-opus-6"]
    assert new.context_window == 2_000_000 and "vision" not in new.capabilities
    assert (new.input_price, new.output_price) == (5.0, 25.0), "unknown: priced as the dearest opus"
    assert models["claude-sonnet-4-5"].available is False, "retired"
    # what discovery learnt decides the thinking form
    assert provider._thinking_mode("claude-opus-6") == "adaptive"
    assert provider._thinking_mode("claude-haiku-4-5") == "enabled"
    assert provider._thinking_mode("claude-opus-4-6") == "adaptive"  # both accepted: the catalog's choice


async def test_discovery_follows_pages(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    from legion_core.testing.fakes.anthropic import model_entry

    fake.models[:] = [model_entry(f"claude-test-{i:03d}", f"T{i}", "2026-01-01T00:00:00Z",
                                  max_input_tokens=100_000 + i, max_tokens=8_000) for i in range(230)]
    models = await provider.discover()
    assert len(models) == 230 and fake.calls["models"] == 3
    assert models[-1].context_window == 100_229


async def test_discovery_hook_and_routing_keep_live_aliases(tmp_path: Any, legion_fake_factory: Any) -> None:
    from legion_llm_anthropic import plugin as anthropic_plugin

    from legion_core.errors import NoProviderAvailable
    from legion_core.lifecycle import Legion
    from legion_core.plugins.manager import PluginManager

    fake = legion_fake_factory(FakeAnthropic, api_key=KEY)
    pm = PluginManager()
    pm.load(entry_points=False)
    pm.register(anthropic_plugin, name="llm-anthropic")
    settings = {"llm": {"providers": {"claude": {"type": "anthropic", "base_url": fake.url, "api_key": KEY}},
                        "discovery": {"refresh_interval_seconds": 3600}}}
    lg = Legion(home=tmp_path, settings=settings, plugins=pm, load_entry_points=False)
    await lg.start()
    try:
        assert await lg.discovery.refresh("claude") == {"claude": True}
        resp = await lg.pipeline.chat(text_request("hi", model="claude/claude-haiku-4-5", cache=False))
        assert resp.text == fake.reply_text
        with pytest.raises(NoProviderAvailable, match="not present on the provider"):
            await lg.pipeline.route(text_request("hi", model="claude/claude-opus-4-5"))
    finally:
        await lg.shutdown()


@pytest.mark.parametrize(("key", "value"), [("thinking_budget_tokens", 512), ("max_tokens_default", "lots"),
                                            ("health_timeout", 0)])
def test_bad_numeric_settings_name_their_key(key: str, value: Any) -> None:
    from legion_core.errors import SettingsError

    with pytest.raises(SettingsError, match=rf"llm\.providers\.claude\.{key}"):
        AnthropicProvider("claude", ProviderSettings(api_key=KEY, **{key: value}))


async def test_abandoned_stream_gives_its_connection_back(fake: FakeAnthropic) -> None:
    import asyncio

    p = AnthropicProvider("claude", ProviderSettings(base_url=fake.url, api_key=KEY, max_connections=1))
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
        assert "Unclosed response" not in reports, reports
        fake.reply_text = "done"
        resp = await asyncio.wait_for(p.chat(text_request("hi"), MODEL), 5)
        assert resp.text == "done"
    finally:
        await p.aclose()


async def test_stream_reassembles_frames_split_across_tcp_writes(provider: AnthropicProvider,
                                                                 fake: FakeAnthropic) -> None:
    fake.split_writes = True
    fake.reply_text = "Mittwoch – café ☕ kommt danach."
    res = await collect_stream(provider.stream(text_request("hi", thinking=True, tools=[WEATHER_TOOL]), MODEL))
    assert res.error is None
    assert res.thinking == fake.thinking_text
    assert [(c.name, c.arguments) for c in res.tool_calls] == [("get_weather", fake.tool_arguments)]
    res = await collect_stream(provider.stream(text_request("hi"), MODEL))
    assert res.error is None and res.text == fake.reply_text


async def test_prompt_caching_marks_tools_and_system(fake: FakeAnthropic) -> None:
    p = AnthropicProvider("claude", ProviderSettings(base_url=fake.url, api_key=KEY, prompt_caching=True))
    try:
        resp = await p.chat(text_request("hi", system="A long, stable system prompt.", tools=[WEATHER_TOOL]), MODEL)
        body = fake.last_chat()
        assert body["system"] == [{"type": "text", "text": "A long, stable system prompt.",
                                   "cache_control": {"type": "ephemeral"}}]
        assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
        assert fake.seen_system() == "A long, stable system prompt." and resp.tool_calls
    finally:
        await p.aclose()
    with pytest.raises(SettingsError, match="prompt_caching"):
        AnthropicProvider("claude", ProviderSettings(api_key=KEY, prompt_caching="yes"))


async def test_stream_stalled_before_the_first_token_times_out(fake: FakeAnthropic) -> None:
    fake.fail_with("timeout")
    p = AnthropicProvider("claude", ProviderSettings(base_url=fake.url, api_key=KEY, timeout_read=0.3))
    try:
        res = await collect_stream(p.stream(text_request("hi"), MODEL))
        assert isinstance(res.error, ProviderTimeout) and res.error.failover and not res.chunks
    finally:
        await p.aclose()


async def test_hot_path_does_not_touch_httpx(provider: AnthropicProvider, fake: FakeAnthropic,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """chat and stream go through `Pool.post` (aiohttp): httpx costs as much CPU again."""
    from legion_core.providers.pool import Pool

    monkeypatch.setattr(Pool, "client", property(lambda self: pytest.fail("httpx client on the hot path")))
    assert (await provider.chat(text_request("hi"), MODEL)).text == fake.reply_text
    res = await collect_stream(provider.stream(text_request("hi"), MODEL))
    assert res.error is None and res.text == fake.reply_text
