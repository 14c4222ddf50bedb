"""Streaming through the same pipeline: route chunk first, deltas unbuffered, done with the
assembled response; failover before the first token, ErrorChunk after it."""

import asyncio

import pytest

from legion_core.errors import ContentPolicy, NoProviderAvailable, ProviderTimeout, ProviderUnavailable
from legion_core.types import DoneChunk, TextDelta, ToolCallDelta, text_request
from tests.pipeline.pipeline_fakes import BreakAfter, StreamFn

Q = "What day comes after Tuesday?"


async def collect(agen):
    return [c async for c in agen]


async def test_stream_shape(make_legion, script):
    lg = await make_legion()
    script.then("loc", "Wednesday comes after Tuesday.")
    chunks = await collect(lg.pipeline.stream(text_request(Q, stream=True)))
    assert chunks[0].type == "route" and chunks[0].provider == "loc" and not chunks[0].cache_hit
    assert chunks[-1].type == "done"
    text = "".join(c.text for c in chunks if c.type == "text_delta")
    assert text == "Wednesday comes after Tuesday."
    assert sum(1 for c in chunks if c.type == "done") == 1, "the provider's own done is not forwarded"
    resp = chunks[-1].response
    assert resp.text == text and resp.provider == "loc" and resp.routing.provider == "loc"
    assert resp.usage.input_tokens == 10 and resp.attempts[0].outcome == "ok"
    row = lg.pipeline.audit.recent(1)[0]
    assert row["stream"] == 1 and row["status"] == "ok"


async def test_deltas_are_not_buffered(make_legion, script):
    lg = await make_legion()
    release = asyncio.Event()

    async def slow(request, model):
        yield TextDelta(text="first ")
        await release.wait()  # the provider holds the rest until the consumer saw "first"
        yield TextDelta(text="second")
        yield DoneChunk()

    script.then("loc", StreamFn(slow))
    agen = lg.pipeline.stream(text_request(Q, stream=True))
    assert (await agen.__anext__()).type == "route"
    first = await asyncio.wait_for(agen.__anext__(), 5)
    assert first.type == "text_delta" and first.text == "first "
    release.set()
    rest = await collect(agen)
    assert rest[-1].response.text == "first second"


@pytest.mark.parametrize("exc", [ProviderUnavailable("refused", provider="loc"),
                                 ProviderTimeout("timeout", provider="loc")])
async def test_break_before_first_token_fails_over(make_legion, script, exc):
    lg = await make_legion()
    script.then("loc", exc).then("cld", "from the cloud")
    chunks = await collect(lg.pipeline.stream(text_request(Q, stream=True)))
    assert chunks[0].type == "route" and chunks[0].provider == "cld"
    assert chunks[-1].response.text == "from the cloud"
    assert [a.outcome for a in chunks[-1].response.attempts] == ["failed", "ok"]


async def test_break_after_first_token_ends_with_error_chunk(make_legion, script):
    lg = await make_legion()
    script.then("loc", BreakAfter(2, ProviderUnavailable("connection reset", provider="loc")))
    chunks = await collect(lg.pipeline.stream(text_request(Q, stream=True)))
    assert [c.type for c in chunks] == ["route", "text_delta", "text_delta", "error"]
    assert chunks[-1].kind == "stream_interrupted" and "broke" in chunks[-1].message
    assert not script.calls["cld"], "no silent restart on another provider after tokens were sent"
    row = lg.pipeline.audit.recent(1)[0]
    assert row["status"] == "error" and "stream_interrupted" in row["error"]
    # a broken stream is never cached
    chunks2 = await collect(lg.pipeline.stream(text_request(Q, stream=True)))
    assert not chunks2[0].cache_hit


async def test_non_failover_error_before_first_token_raises(make_legion, script):
    lg = await make_legion()
    script.then("loc", ContentPolicy("no", provider="loc"))
    with pytest.raises(ContentPolicy):
        await collect(lg.pipeline.stream(text_request(Q, stream=True)))


async def test_all_fail_raises_no_provider(make_legion, script):
    lg = await make_legion()
    for p in ("loc", "cld", "fro"):
        script.then(p, ProviderUnavailable("down", provider=p))
    with pytest.raises(NoProviderAvailable):
        await collect(lg.pipeline.stream(text_request(Q, stream=True)))


async def test_tool_call_deltas_are_assembled(make_legion, script):
    lg = await make_legion()

    async def tool(request, model):
        yield ToolCallDelta(index=0, id="call_1", name="get_weather", arguments_delta='{"city": ')
        yield ToolCallDelta(index=0, arguments_delta='"Paris"}')
        yield DoneChunk(stop_reason="tool_use")

    script.then("loc", StreamFn(tool))
    chunks = await collect(lg.pipeline.stream(text_request(Q, stream=True)))
    resp = chunks[-1].response
    assert resp.stop_reason == "tool_use"
    assert resp.tool_calls[0].name == "get_weather" and resp.tool_calls[0].arguments == {"city": "Paris"}
    assert resp.usage.estimated, "no usage from the provider: estimated"


async def test_a_streamed_answer_is_cached_for_later_requests(make_legion, script):
    lg = await make_legion()
    await collect(lg.pipeline.stream(text_request(Q, stream=True)))
    r = await lg.pipeline.chat(text_request(Q))
    assert r.cache_hit and script.total() == 1


async def test_consumer_that_stops_reading_is_audited_and_upstream_closed(make_legion, script):
    lg = await make_legion()
    closed = asyncio.Event()

    async def endless(request, model):
        try:
            while True:
                yield TextDelta(text="more ")
                await asyncio.sleep(0)
        finally:
            closed.set()

    script.then("loc", StreamFn(endless))
    agen = lg.pipeline.stream(text_request(Q, stream=True))
    got = [await agen.__anext__() for _ in range(3)]
    assert [c.type for c in got] == ["route", "text_delta", "text_delta"]
    await agen.aclose()
    assert closed.is_set(), "the provider's stream was closed"
    row = lg.pipeline.audit.recent(1)[0]
    assert row["status"] == "error" and row["error"].startswith("cancelled")
    assert lg.health.snapshot().get("loc", {}).get("total_failures", 0) == 0


async def test_streamed_thinking_keeps_its_signature(tmp_path):
    """Anthropic signs thinking blocks; the assembled response must carry the signature so a
    client can replay the block upstream."""
    from legion_core.hookspecs import hookimpl
    from legion_core.lifecycle import Legion
    from legion_core.plugins.manager import PluginManager
    from legion_core.providers import Provider
    from legion_core.types import DoneChunk, TextDelta, ThinkingBlock, ThinkingDelta, text_request

    class Thinker(Provider):
        kind = "thinker"
        default_tier = "local"

        async def chat(self, request, model):
            raise NotImplementedError

        async def stream(self, request, model):
            yield ThinkingDelta(thinking="Tuesday, then ")
            yield ThinkingDelta(thinking="Wednesday.")
            yield ThinkingDelta(thinking="", signature="sig-abc")
            yield TextDelta(text="Wednesday")
            yield DoneChunk()

    class P:
        @hookimpl
        def legion_register_providers(self, register):
            register(Thinker)

    pm = PluginManager()
    pm.load(entry_points=False)
    pm.register(P())
    legion = Legion(home=tmp_path, plugins=pm,
                    settings={"llm": {"providers": {"t": {"type": "thinker", "default_model": "m"}}}})
    await legion.start()
    try:
        chunks = [c async for c in legion.pipeline.stream(text_request("day after Tuesday?", stream=True))]
        done = chunks[-1]
        assert isinstance(done, DoneChunk)
        block = next(b for b in done.response.content if isinstance(b, ThinkingBlock))
        assert block.thinking == "Tuesday, then Wednesday."
        assert block.signature == "sig-abc"
    finally:
        await legion.shutdown()
