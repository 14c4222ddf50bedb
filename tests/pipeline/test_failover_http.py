"""Failover end to end over real HTTP: two OpenAI-protocol fakes on 127.0.0.1, a provider built on
the kernel's OpenAI wire code, and each fault kind injected in the upstream's own wire format."""

import pytest

from legion_core.errors import ContentPolicy, ProviderBadRequest
from legion_core.hookspecs import hookimpl
from legion_core.providers.openai_wire import OpenAIWireProvider
from legion_core.testing.fakes.openai import FakeOpenAI
from legion_core.testing.fault_kinds import RETRY_AFTER_SECONDS, SUITE_READ_TIMEOUT
from legion_core.types import ModelInfo, text_request

Q = "What day comes after Tuesday?"


class Wire(OpenAIWireProvider):
    kind = "wire-test"

    def static_models(self):
        return [ModelInfo(id="gpt-4o-mini", capabilities={"streaming", "tools"})]

    async def list_models(self):
        return self.static_models()


class WirePlugin:
    @hookimpl
    def legion_register_providers(self, register):
        register(Wire)


@pytest.fixture(scope="module")
def fakes():
    a, b = FakeOpenAI(reply_text="from A"), FakeOpenAI(reply_text="from B")
    a.start()
    b.start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
async def lg(make_legion, fakes):
    a, b = fakes
    for f in fakes:
        f.faults.clear()
        f.calls.clear()

    def p(tier, fake):
        return {"type": "wire-test", "tier": tier, "base_url": fake.url + "/v1", "api_key": "sk-test-fake",
                "default_model": "gpt-4o-mini", "timeout_read": SUITE_READ_TIMEOUT}

    return await make_legion({"a": p("local", a), "b": p("cloud", b)}, plugins=(WirePlugin(),))


@pytest.mark.parametrize("kind", ["server_error", "unavailable", "rate_limited", "auth",
                                  "context_overflow", "timeout"])
async def test_each_fault_kind_fails_over(lg, fakes, kind):
    a, b = fakes
    a.fail_with(kind)
    r = await lg.pipeline.chat(text_request(Q, cache=False))
    assert r.text == "from B" and r.provider == "b"
    assert [(x.provider, x.outcome) for x in r.attempts] == [("a", "failed"), ("b", "ok")]
    assert r.attempts[0].error_kind == {"server_error": "unavailable"}.get(kind, kind)
    assert "sk-test-fake" not in (r.attempts[0].error or "")


async def test_connection_refused_fails_over(make_legion, fakes):
    _, b = fakes
    from legion_core.testing.fakes.base import _free_port

    dead = f"http://127.0.0.1:{_free_port()}/v1"
    lg = await make_legion({
        "a": {"type": "wire-test", "tier": "local", "base_url": dead, "api_key": "k", "default_model": "gpt-4o-mini"},
        "b": {"type": "wire-test", "tier": "cloud", "base_url": b.url + "/v1", "api_key": "sk-test-fake",
              "default_model": "gpt-4o-mini"}}, plugins=(WirePlugin(),))
    r = await lg.pipeline.chat(text_request(Q))
    assert r.provider == "b" and r.attempts[0].error_kind == "unavailable"


async def test_retry_after_from_the_wire_is_honoured(lg, fakes):
    a, b = fakes
    a.fail_with("rate_limited")
    await lg.pipeline.chat(text_request(Q, cache=False))
    assert 0 < lg.health.retry_after_remaining("a") <= RETRY_AFTER_SECONDS
    r = await lg.pipeline.chat(text_request(Q, cache=False))
    assert r.provider == "b" and a.calls["chat"] == 1


@pytest.mark.parametrize("kind,exc", [("content_policy", ContentPolicy), ("bad_request", ProviderBadRequest)])
async def test_non_failover_kinds_surface(lg, fakes, kind, exc):
    a, b = fakes
    a.fail_with(kind)
    with pytest.raises(exc):
        await lg.pipeline.chat(text_request(Q, cache=False))
    assert b.total_calls == 0


async def test_stream_dropped_before_first_token_fails_over(lg, fakes):
    a, b = fakes
    a.fail_with("drop_before_first")
    chunks = [c async for c in lg.pipeline.stream(text_request(Q, stream=True, cache=False))]
    assert chunks[0].provider == "b" and chunks[-1].type == "done"
    assert chunks[-1].response.text == "from B"


async def test_stream_dropped_mid_way_ends_with_error_chunk(lg, fakes):
    a, b = fakes
    a.reply_text = "one two three four five six seven eight"
    a.fail_with("drop_mid_stream")
    try:
        chunks = [c async for c in lg.pipeline.stream(text_request(Q, stream=True, cache=False))]
    finally:
        a.reply_text = "from A"
    assert chunks[0].provider == "a" and chunks[-1].type == "error"
    assert any(c.type == "text_delta" for c in chunks)
    assert b.total_calls == 0
