"""The provider conformance suite: one set of behavioural tests every provider plugin runs.

A plugin's test module subclasses `ProviderConformance` and overrides three fixtures::

    from legion_core.testing.conformance import ProviderConformance

    class TestMyProvider(ProviderConformance):
        @pytest.fixture
        def fake(self, legion_fake_openai):      # a started fake upstream (see below)
            return legion_fake_openai

        @pytest.fixture
        def provider_factory(self):              # url -> configured Provider
            def make(url, **settings):
                return MyProvider("mine", ProviderSettings(base_url=url + "/v1", **settings))
            return make

        @pytest.fixture
        def model(self):
            return "my-model"

`provider_factory(url, **settings)` gets the fake's root URL (or a closed port, for the
"connection refused" test) and extra `ProviderSettings` fields such as `timeout_read`.

The fake is any `FakeServer` that follows the *conformance fake protocol*:

- `fail_with(kind, times=1)` for each kind in `fault_kinds.ERROR_KINDS` and `STREAM_FAULTS`,
  expressed in the upstream's own wire format;
- `reply_text`, `usage` (prompt, completion) and `tool_arguments`: what it answers. When a request
  offers tools and does not end with a tool result, it calls the first tool with `tool_arguments`;
- `seen_system()` and `seen_tool_results()` (list of `(tool_call_id, text)`): what the last chat
  request carried, parsed from the upstream's wire format; optionally `seen_images()` and
  `thinking_text` (answered as reasoning when the request asks for thinking).

Against a real upstream (no fault injection), set `scripted = False` and override `upstream_url`:
only the behaviour that needs no scripting runs. Capability flags (`supports_embeddings`, ...)
skip what a provider does not do; `error_kinds` may drop kinds the upstream cannot produce.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
import pytest_asyncio

from legion_core.errors import (
    ContentPolicy,
    ContextOverflow,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    StreamInterrupted,
)
from legion_core.providers.base import Provider
from legion_core.testing.fault_kinds import (
    DEFAULT_TOOL_ARGUMENTS,
    RETRY_AFTER_SECONDS,
    SUITE_READ_TIMEOUT,
)
from legion_core.types import (
    ChatRequest,
    DoneChunk,
    ErrorChunk,
    Health,
    ImageBlock,
    Message,
    ModelInfo,
    RouteChunk,
    TextBlock,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
    ToolResultBlock,
    ToolSpec,
    Usage,
    UsageChunk,
)

#: Which typed error each fault kind must become.
EXPECTED_ERRORS: dict[str, type[ProviderError]] = {
    "auth": ProviderAuthError,
    "rate_limited": RateLimited,
    "context_overflow": ContextOverflow,
    "content_policy": ContentPolicy,
    "server_error": ProviderUnavailable,
    "unavailable": ProviderUnavailable,
    "bad_request": ProviderBadRequest,
}
ALL_ERROR_KINDS: tuple[str, ...] = tuple(EXPECTED_ERRORS)
#: Every fault a scripted fake can inject (`fail_with`): error kinds, the stall, broken streams.
FAULT_KINDS: tuple[str, ...] = (*ALL_ERROR_KINDS, "timeout", "drop_before_first", "drop_mid_stream")

WEATHER_TOOL = ToolSpec(
    name="get_weather",
    description="Current weather for a city.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city"],
    },
)
#: A 1x1 transparent PNG.
TINY_PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA"
            "60e6kgAAAABJRU5ErkJggg==")


# ----------------------------------------------------------------- helpers (public)
@dataclass
class StreamResult:
    """A consumed stream, with the pieces put back together."""

    chunks: list[Any] = field(default_factory=list)
    error: BaseException | None = None

    @property
    def text(self) -> str:
        return "".join(c.text for c in self.chunks if isinstance(c, TextDelta))

    @property
    def thinking(self) -> str:
        return "".join(c.thinking for c in self.chunks if isinstance(c, ThinkingDelta))

    @property
    def usage(self) -> Usage | None:
        found = [c.usage for c in self.chunks if isinstance(c, UsageChunk)]
        return found[-1] if found else None

    @property
    def done(self) -> DoneChunk | None:
        found = [c for c in self.chunks if isinstance(c, DoneChunk)]
        return found[-1] if found else None

    @property
    def tool_calls(self) -> list[ToolCall]:
        """Tool-call deltas assembled by index; arguments parsed as JSON."""
        parts: dict[int, dict[str, Any]] = {}
        for c in self.chunks:
            if isinstance(c, ToolCallDelta):
                p = parts.setdefault(c.index, {"id": None, "name": None, "args": ""})
                p["id"] = p["id"] or c.id
                p["name"] = p["name"] or c.name
                p["args"] += c.arguments_delta
        out = []
        for _, p in sorted(parts.items()):
            out.append(ToolCall(id=p["id"] or "", name=p["name"] or "",
                                arguments=json.loads(p["args"]) if p["args"].strip() else {}))
        return out


async def collect_stream(stream: AsyncIterator[Any]) -> StreamResult:
    """Consume a provider stream; a raised error is kept in `.error` with the chunks before it."""
    result = StreamResult()
    try:
        async for chunk in stream:
            result.chunks.append(chunk)
    except Exception as e:  # noqa: BLE001 - the caller asserts on it
        result.error = e
    return result


def user(text: str) -> Message:
    return Message(role="user", content=text)


# ----------------------------------------------------------------- the suite
class ProviderConformance:
    """Subclass in a `Test*` class and override `fake`, `provider_factory` and `model`."""

    #: The upstream is a fake following the conformance fake protocol (fault injection, scripts).
    scripted: ClassVar[bool] = True
    #: The provider talks HTTP to `upstream_url` (False for embedded models: no refused/timeout tests).
    network: ClassVar[bool] = True
    supports_embeddings: ClassVar[bool] = True
    supports_tools: ClassVar[bool] = True
    supports_system: ClassVar[bool] = True
    supports_vision: ClassVar[bool] = True
    supports_thinking: ClassVar[bool] = False
    #: `list_models()` must include the `model` fixture's id.
    lists_model: ClassVar[bool] = True
    #: Fault kinds the upstream can produce; drop the ones it cannot.
    error_kinds: ClassVar[tuple[str, ...]] = FAULT_KINDS
    #: Generation knobs for every suite request (keep answers short and deterministic).
    max_tokens: ClassVar[int] = 32

    # ------------------------------------------------------------- fixtures to override
    @pytest.fixture
    def fake(self) -> Any:
        raise NotImplementedError("override the `fake` fixture: a started fake upstream")

    @pytest.fixture
    def provider_factory(self) -> Callable[..., Provider]:
        raise NotImplementedError("override `provider_factory`: (url, **settings) -> Provider")

    @pytest.fixture
    def model(self) -> str:
        raise NotImplementedError("override `model`: the upstream model id the suite uses")

    @pytest.fixture
    def embedding_model(self, model: str) -> str:
        return model

    @pytest.fixture
    def upstream_url(self, fake: Any) -> str:
        return str(fake.url)

    @pytest_asyncio.fixture
    async def provider(self, provider_factory: Callable[..., Provider],
                       upstream_url: str) -> AsyncIterator[Provider]:
        p = provider_factory(upstream_url)
        await p.startup()
        try:
            yield p
        finally:
            await p.aclose()

    # ------------------------------------------------------------- helpers
    @asynccontextmanager
    async def other_provider(self, factory: Callable[..., Provider], url: str,
                             **settings: Any) -> AsyncIterator[Provider]:
        p = factory(url, **settings)
        await p.startup()
        try:
            yield p
        finally:
            await p.aclose()

    def request(self, prompt: str = "What day comes after Tuesday?", **kw: Any) -> ChatRequest:
        kw.setdefault("max_tokens", self.max_tokens)
        kw.setdefault("temperature", 0.0)
        return ChatRequest(messages=[user(prompt)], **kw)

    def need(self, flag: bool, why: str) -> None:
        if not flag:
            pytest.skip(why)

    def need_kind(self, kind: str) -> None:
        self.need(self.scripted, "needs a scripted fake upstream")
        self.need(kind in self.error_kinds, f"upstream cannot produce {kind!r}")

    # ============================================================= chat
    @pytest.mark.asyncio
    async def test_chat_plain(self, provider: Provider, model: str, fake: Any) -> None:
        resp = await provider.chat(self.request(), model)
        assert resp.text.strip(), "chat() returned no text"
        assert resp.stop_reason in ("end_turn", "max_tokens", "stop_sequence")
        assert not resp.tool_calls, "no tools were offered"
        if self.scripted:
            assert resp.text == fake.reply_text
            assert fake.total_calls >= 1

    @pytest.mark.asyncio
    async def test_chat_reports_usage(self, provider: Provider, model: str, fake: Any) -> None:
        resp = await provider.chat(self.request(), model)
        assert resp.usage.input_tokens > 0 and resp.usage.output_tokens > 0
        if self.scripted:
            assert (resp.usage.input_tokens, resp.usage.output_tokens) == tuple(fake.usage)
            assert resp.usage.estimated is False

    @pytest.mark.asyncio
    async def test_system_prompt_forwarded(self, provider: Provider, model: str, fake: Any) -> None:
        self.need(self.scripted and self.supports_system, "needs a scripted fake and system support")
        await provider.chat(self.request(system="You are terse. Answer in one word."), model)
        assert fake.seen_system() == "You are terse. Answer in one word."

    @pytest.mark.asyncio
    async def test_system_message_in_messages_forwarded(self, provider: Provider, model: str,
                                                        fake: Any) -> None:
        self.need(self.scripted and self.supports_system, "needs a scripted fake and system support")
        req = ChatRequest(messages=[Message(role="system", content="Be brief."), user("Hi")],
                          max_tokens=self.max_tokens)
        await provider.chat(req, model)
        assert fake.seen_system() == "Be brief."

    @pytest.mark.asyncio
    async def test_image_forwarded(self, provider: Provider, model: str, fake: Any) -> None:
        self.need(self.scripted and self.supports_vision, "needs a scripted fake and vision support")
        self.need(hasattr(fake, "seen_images"), "fake does not report images")
        req = ChatRequest(messages=[Message(role="user", content=[
            TextBlock(text="What is in this picture?"),
            ImageBlock(media_type="image/png", data=TINY_PNG),
        ])], max_tokens=self.max_tokens)
        resp = await provider.chat(req, model)
        assert resp.text == fake.reply_text
        assert fake.seen_images() == 1

    # ============================================================= streaming
    @pytest.mark.asyncio
    async def test_stream_chunk_order(self, provider: Provider, model: str) -> None:
        res = await collect_stream(provider.stream(self.request(), model))
        assert res.error is None, f"stream raised {res.error!r}"
        kinds = [type(c) for c in res.chunks]
        assert kinds, "stream yielded nothing"
        assert not any(k in (RouteChunk, ErrorChunk) for k in kinds), "providers yield no route/error chunks"
        assert kinds[-1] is DoneChunk and kinds.count(DoneChunk) == 1, f"must end with one DoneChunk: {kinds}"
        assert UsageChunk in kinds, "stream must report usage"
        first_usage = kinds.index(UsageChunk)
        deltas = [i for i, k in enumerate(kinds) if k in (TextDelta, ThinkingDelta, ToolCallDelta)]
        assert deltas and max(deltas) < first_usage, f"deltas, then usage, then done: {kinds}"
        assert res.text.strip()

    @pytest.mark.asyncio
    async def test_stream_text_equals_chat_text(self, provider: Provider, model: str, fake: Any) -> None:
        chat = await provider.chat(self.request(), model)
        res = await collect_stream(provider.stream(self.request(), model))
        assert res.error is None, f"stream raised {res.error!r}"
        assert res.text == chat.text
        assert sum(isinstance(c, TextDelta) for c in res.chunks) >= (2 if self.scripted else 1), \
            "a stream arrives in pieces"
        if self.scripted:
            assert res.text == fake.reply_text

    @pytest.mark.asyncio
    async def test_stream_reports_usage(self, provider: Provider, model: str, fake: Any) -> None:
        res = await collect_stream(provider.stream(self.request(), model))
        assert res.error is None and res.usage is not None
        assert res.usage.input_tokens > 0 and res.usage.output_tokens > 0
        if self.scripted:
            assert (res.usage.input_tokens, res.usage.output_tokens) == tuple(fake.usage)
            assert res.usage.estimated is False
        assert res.done is not None and res.done.stop_reason in ("end_turn", "max_tokens", "stop_sequence")

    @pytest.mark.asyncio
    async def test_stream_abandoned_early_leaves_provider_usable(self, provider: Provider, model: str) -> None:
        """A client that hangs up after the first token must not break the next call."""
        stream = provider.stream(self.request(), model)
        first = None
        async for chunk in stream:
            if isinstance(chunk, TextDelta):
                first = chunk
                break
        await stream.aclose()  # type: ignore[attr-defined]
        assert first is not None
        again = await collect_stream(provider.stream(self.request(), model))
        assert again.error is None and again.done is not None and again.text.strip()

    @pytest.mark.asyncio
    async def test_sequential_calls_reuse_one_connection(self, provider: Provider, model: str, fake: Any) -> None:
        """Answers and streams read to their last event give the connection back to the pool:
        against a TLS upstream, a new connection per call is a handshake per call."""
        seen = getattr(fake, "connections", None)
        if seen is None:
            pytest.skip("the upstream does not report its client connections")
        before = set(seen or ())  # (`or`: mypy without pytest installed does not narrow on skip)
        for _ in range(3):
            await provider.chat(self.request(), model)
            res = await collect_stream(provider.stream(self.request(), model))
            assert res.error is None and res.done is not None
        new = set(fake.connections) - before
        assert len(new) == 1, f"{len(new)} connections for 6 sequential calls (one expected)"

    # ============================================================= tools
    def tool_request(self, **kw: Any) -> ChatRequest:
        return self.request("What's the weather in Paris?", tools=[WEATHER_TOOL], **kw)

    def expected_tool_arguments(self, fake: Any) -> dict[str, Any]:
        return dict(getattr(fake, "tool_arguments", DEFAULT_TOOL_ARGUMENTS))

    @pytest.mark.asyncio
    async def test_tool_call(self, provider: Provider, model: str, fake: Any) -> None:
        self.need(self.scripted and self.supports_tools, "needs a scripted fake and tool support")
        resp = await provider.chat(self.tool_request(), model)
        assert resp.stop_reason == "tool_use"
        calls = resp.tool_calls
        assert len(calls) == 1 and calls[0].name == "get_weather" and calls[0].id
        assert calls[0].arguments == self.expected_tool_arguments(fake)

    @pytest.mark.asyncio
    @pytest.mark.parametrize("result_role", ["user", "tool"])
    async def test_tool_result_round_trip(self, provider: Provider, model: str, fake: Any,
                                          result_role: str) -> None:
        self.need(self.scripted and self.supports_tools, "needs a scripted fake and tool support")
        first = await provider.chat(self.tool_request(), model)
        call = first.tool_calls[0]
        follow = ChatRequest(
            messages=[
                user("What's the weather in Paris?"),
                Message(role="assistant", content=first.content),
                Message(role="user" if result_role == "user" else "tool",
                        content=[ToolResultBlock(tool_use_id=call.id, content="18C and sunny")]),
            ],
            tools=[WEATHER_TOOL], max_tokens=self.max_tokens,
        )
        second = await provider.chat(follow, model)
        assert second.stop_reason != "tool_use"
        assert second.text == fake.reply_text
        assert fake.seen_tool_results() == [(call.id, "18C and sunny")]

    @pytest.mark.asyncio
    async def test_stream_tool_call(self, provider: Provider, model: str, fake: Any) -> None:
        self.need(self.scripted and self.supports_tools, "needs a scripted fake and tool support")
        res = await collect_stream(provider.stream(self.tool_request(), model))
        assert res.error is None, f"stream raised {res.error!r}"
        assert any(isinstance(c, ToolCallDelta) for c in res.chunks)
        calls = res.tool_calls
        assert len(calls) == 1 and calls[0].name == "get_weather" and calls[0].id
        assert calls[0].arguments == self.expected_tool_arguments(fake)
        assert res.done is not None and res.done.stop_reason == "tool_use"

    # ============================================================= thinking
    @pytest.mark.asyncio
    async def test_thinking(self, provider: Provider, model: str, fake: Any) -> None:
        self.need(self.scripted and self.supports_thinking, "needs a scripted fake and thinking support")
        resp = await provider.chat(self.request(thinking=True), model)
        assert resp.thinking == fake.thinking_text
        assert resp.text == fake.reply_text
        res = await collect_stream(provider.stream(self.request(thinking=True), model))
        assert res.error is None and res.thinking == fake.thinking_text and res.text == fake.reply_text
        first_text = next(i for i, c in enumerate(res.chunks) if isinstance(c, TextDelta))
        last_thinking = max(i for i, c in enumerate(res.chunks) if isinstance(c, ThinkingDelta))
        assert last_thinking < first_text, "thinking comes before the answer"

    # ============================================================= errors
    @pytest.mark.asyncio
    @pytest.mark.parametrize("kind", ALL_ERROR_KINDS)
    async def test_error_kind_chat(self, provider: Provider, model: str, fake: Any, kind: str) -> None:
        self.need_kind(kind)
        fake.fail_with(kind)
        with pytest.raises(ProviderError) as info:
            await provider.chat(self.request(), model)
        self.check_error(info.value, kind, provider)

    @pytest.mark.asyncio
    @pytest.mark.parametrize("kind", ALL_ERROR_KINDS)
    async def test_error_kind_stream(self, provider: Provider, model: str, fake: Any, kind: str) -> None:
        self.need_kind(kind)
        fake.fail_with(kind)
        res = await collect_stream(provider.stream(self.request(), model))
        assert not any(isinstance(c, TextDelta) for c in res.chunks)
        assert isinstance(res.error, ProviderError), f"expected a ProviderError, got {res.error!r}"
        self.check_error(res.error, kind, provider)

    def check_error(self, err: ProviderError, kind: str, provider: Provider) -> None:
        expected = EXPECTED_ERRORS[kind]
        assert type(err) is expected, f"{kind}: expected {expected.__name__}, got {type(err).__name__}: {err}"
        assert err.failover is expected.failover
        assert err.provider == provider.name, "errors name the provider instance"
        if kind == "rate_limited":
            assert err.retry_after == pytest.approx(RETRY_AFTER_SECONDS)  # type: ignore[attr-defined]
        secret = provider.settings.api_key
        if isinstance(secret, str) and secret:
            assert secret not in str(err) and secret not in repr(err.details)

    @pytest.mark.asyncio
    async def test_error_then_recovery(self, provider: Provider, model: str, fake: Any) -> None:
        """A failed call must not poison the pooled client."""
        self.need_kind("unavailable")
        fake.fail_with("unavailable")
        with pytest.raises(ProviderUnavailable):
            await provider.chat(self.request(), model)
        resp = await provider.chat(self.request(), model)
        assert resp.text == fake.reply_text

    @pytest.mark.asyncio
    async def test_connection_refused(self, provider_factory: Callable[..., Provider], model: str,
                                      free_port: int) -> None:
        self.need(self.network, "provider does not use the network")
        async with self.other_provider(provider_factory, f"http://127.0.0.1:{free_port}") as p:
            with pytest.raises(ProviderUnavailable) as info:
                await p.chat(self.request(), model)
            assert info.value.failover and info.value.provider == p.name
            res = await collect_stream(p.stream(self.request(), model))
            assert isinstance(res.error, ProviderUnavailable) and not res.chunks

    @pytest.mark.asyncio
    async def test_slow_upstream_times_out(self, provider_factory: Callable[..., Provider], model: str,
                                           fake: Any, upstream_url: str) -> None:
        self.need(self.network, "provider does not use the network")
        self.need_kind("timeout")
        fake.fail_with("timeout")
        async with self.other_provider(provider_factory, upstream_url,
                                       timeout_read=SUITE_READ_TIMEOUT) as p:
            with pytest.raises(ProviderTimeout) as info:
                await p.chat(self.request(), model)
            assert info.value.failover

    # ============================================================= broken streams
    @pytest.mark.asyncio
    async def test_stream_dropped_before_first_token(self, provider: Provider, model: str,
                                                     fake: Any) -> None:
        self.need_kind("drop_before_first")
        fake.fail_with("drop_before_first")
        res = await collect_stream(provider.stream(self.request(), model))
        assert not any(isinstance(c, TextDelta) for c in res.chunks)
        assert isinstance(res.error, ProviderError), f"expected a ProviderError, got {res.error!r}"
        assert not isinstance(res.error, StreamInterrupted), "nothing was sent: the router may fail over"
        assert res.error.failover

    @pytest.mark.asyncio
    async def test_stream_dropped_mid_stream(self, provider: Provider, model: str, fake: Any) -> None:
        self.need_kind("drop_mid_stream")
        fake.fail_with("drop_mid_stream")
        res = await collect_stream(provider.stream(self.request(), model))
        assert any(isinstance(c, TextDelta) for c in res.chunks), "some text arrives before the drop"
        assert isinstance(res.error, StreamInterrupted), f"expected StreamInterrupted, got {res.error!r}"
        assert res.error.failover is False
        assert not any(isinstance(c, DoneChunk) for c in res.chunks)

    # ============================================================= models and health
    @pytest.mark.asyncio
    async def test_list_models(self, provider: Provider, model: str) -> None:
        models = await provider.list_models()
        assert models and all(isinstance(m, ModelInfo) for m in models)
        for m in models:
            assert m.context_window > 0, f"{m.id}: context window unknown"
            assert isinstance(m.capabilities, set)
        if self.lists_model:
            assert model in {m.id for m in models}
        chat_models = [m for m in models if not m.embedding]
        assert all("streaming" in m.capabilities for m in chat_models)
        assert all(m.input_price >= 0 and m.output_price >= 0 for m in models)

    @pytest.mark.asyncio
    async def test_health_ok(self, provider: Provider) -> None:
        h = await provider.health()
        assert isinstance(h, Health) and h.ok, h.detail

    @pytest.mark.asyncio
    async def test_health_unreachable(self, provider_factory: Callable[..., Provider],
                                      free_port: int) -> None:
        self.need(self.network, "provider does not use the network")
        async with self.other_provider(provider_factory, f"http://127.0.0.1:{free_port}") as p:
            h = await p.health()  # never raises: health is a report, not a call
        assert isinstance(h, Health) and not h.ok and h.detail

    # ============================================================= embeddings
    @pytest.mark.asyncio
    async def test_embeddings(self, provider: Provider, embedding_model: str) -> None:
        self.need(self.supports_embeddings, "provider does not do embeddings")
        resp = await provider.embed(["hello world", "a different text", "hello world"], embedding_model)
        vecs = resp.embeddings
        assert len(vecs) == 3 and len(vecs[0]) > 0
        assert {len(v) for v in vecs} == {len(vecs[0])}
        assert vecs[0] == pytest.approx(vecs[2]), "the same text embeds the same"
        assert vecs[0] != pytest.approx(vecs[1]), "different texts embed differently"

    @pytest.mark.asyncio
    async def test_embeddings_error_typed(self, provider: Provider, embedding_model: str,
                                          fake: Any) -> None:
        self.need(self.supports_embeddings, "provider does not do embeddings")
        self.need_kind("auth")
        fake.fail_with("auth")
        with pytest.raises(ProviderAuthError):
            await provider.embed(["hello"], embedding_model)
