"""Bedrock-specific behaviour: signatures the fake re-verifies, bearer keys, eventstream
exceptions, translation to Converse JSON, the catalog and the settings."""

from __future__ import annotations

import json

import httpx
import pytest
from legion_llm_bedrock.auth import AwsAuth
from legion_llm_bedrock.eventstream import EventStreamDecoder
from legion_llm_bedrock.provider import BedrockProvider, _StreamState

from legion_core.errors import (
    ContentPolicy,
    ContextOverflow,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    StreamInterrupted,
)
from legion_core.secrets import resolve_credentials
from legion_core.settings.models import ProviderSettings
from legion_core.testing.conformance import WEATHER_TOOL, collect_stream
from legion_core.testing.fakes.bedrock import (
    TEST_ACCESS_KEY,
    TEST_BEARER_TOKEN,
    TEST_SECRET_KEY,
    FakeBedrock,
    event_frame,
    exception_frame,
)
from legion_core.types import (
    ChatRequest,
    ImageBlock,
    Message,
    TextBlock,
    TextDelta,
    ThinkingBlock,
    ThinkingDelta,
    ToolCallDelta,
    ToolResultBlock,
    ToolUseBlock,
    text_request,
)

MODEL = "us.anthropic.claude-sonnet-4-6-v1"


@pytest.fixture
def fake(legion_fake_factory):
    return legion_fake_factory(FakeBedrock)


def make(fake, **kw):
    kw.setdefault("api_key", TEST_ACCESS_KEY)
    kw.setdefault("secret_key", TEST_SECRET_KEY)
    return BedrockProvider("bedrock", ProviderSettings(base_url=fake.url, **kw))


@pytest.fixture
async def provider(fake):
    p = make(fake)
    yield p
    await p.aclose()


# ---------------------------------------------------------------- authentication
async def test_sigv4_request_is_signed_for_bedrock_in_the_region(provider, fake):
    r = await provider.chat(text_request("hi"), MODEL)
    assert r.text == fake.reply_text
    auth = fake.requests[-1]["headers"]["Authorization"]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={TEST_ACCESS_KEY}/")
    assert "/us-east-2/bedrock/aws4_request" in auth and fake.auth_failures == []


async def test_wrong_secret_is_rejected_by_the_recomputed_signature(fake):
    p = make(fake, secret_key="not-the-right-secret-key")
    try:
        with pytest.raises(ProviderAuthError) as info:
            await p.chat(text_request("hi"), MODEL)
        res = await collect_stream(p.stream(text_request("hi"), MODEL))
    finally:
        await p.aclose()
    assert "InvalidSignatureException" in str(info.value) and info.value.upstream_status == 403
    assert "not-the-right-secret-key" not in str(info.value)
    assert isinstance(res.error, ProviderAuthError) and not res.chunks
    assert fake.auth_failures == ["signature", "signature"]


async def test_unknown_access_key_and_wrong_region_are_rejected(fake):
    for kw, why in (({"api_key": "AKIDSOMEONEELSE"}, "access_key"), ({"region": "eu-west-1"}, "scope")):
        p = make(fake, **kw)
        try:
            with pytest.raises(ProviderAuthError):
                await p.chat(text_request("hi"), MODEL)
        finally:
            await p.aclose()
        assert fake.auth_failures[-1] == why


async def test_signature_covers_the_body(fake):
    """Signing one body and sending another must fail: the fake hashes what it received."""
    auth = AwsAuth(region="us-east-2", access_key=TEST_ACCESS_KEY, secret_key=TEST_SECRET_KEY)
    url = f"{fake.url}/model/{MODEL}/converse"
    signed_for = json.dumps({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}).encode()
    sent = signed_for.replace(b"hi", b"yo")
    headers = auth.headers("POST", url, signed_for, {"Content-Type": "application/json"})
    async with httpx.AsyncClient() as c:
        bad = await c.post(url, content=sent, headers=headers)
        good = await c.post(url, content=signed_for, headers=headers)
    assert bad.status_code == 403 and bad.headers["x-amzn-ErrorType"].startswith("InvalidSignatureException")
    assert good.status_code == 200


async def test_session_token_is_signed_and_checked(legion_fake_factory):
    fake = legion_fake_factory(FakeBedrock, session_token="FwoGZXIvYXdzEXAMPLETOKEN")
    ok = make(fake, session_token="FwoGZXIvYXdzEXAMPLETOKEN")
    missing = make(fake)
    try:
        assert (await ok.chat(text_request("hi"), MODEL)).text == fake.reply_text
        sent = {k.lower(): v for k, v in fake.requests[-1]["headers"].items()}
        assert sent["x-amz-security-token"] == "FwoGZXIvYXdzEXAMPLETOKEN"
        assert "x-amz-security-token" in sent["authorization"].split("SignedHeaders=")[1]
        with pytest.raises(ProviderAuthError):
            await missing.chat(text_request("hi"), MODEL)
    finally:
        await ok.aclose()
        await missing.aclose()


async def test_bearer_token_mode(fake):
    good = BedrockProvider("bedrock", ProviderSettings(base_url=fake.url, bearer_token=TEST_BEARER_TOKEN))
    bad = BedrockProvider("bedrock", ProviderSettings(base_url=fake.url, bearer_token="ABSK-wrong"))
    try:
        assert good.describe()["auth"] == "bearer"
        assert (await good.chat(text_request("hi"), MODEL)).text == fake.reply_text
        assert fake.requests[-1]["headers"]["Authorization"] == f"Bearer {TEST_BEARER_TOKEN}"
        with pytest.raises(ProviderAuthError, match="UnrecognizedClientException"):
            await bad.chat(text_request("hi"), MODEL)
    finally:
        await good.aclose()
        await bad.aclose()


async def test_credentials_from_secret_references_and_fallback_arrays(fake, monkeypatch):
    monkeypatch.setenv("LEGION_TEST_AKID", TEST_ACCESS_KEY)
    monkeypatch.setenv("LEGION_TEST_SECRET", TEST_SECRET_KEY)
    monkeypatch.delenv("LEGION_TEST_UNSET", raising=False)
    ps = ProviderSettings(base_url=fake.url, api_key=["env://LEGION_TEST_UNSET", "env://LEGION_TEST_AKID"],
                          secret_key="env://LEGION_TEST_SECRET")
    resolved, unresolved = resolve_credentials({"bedrock": ps}, {"bedrock": BedrockProvider}, None)
    assert unresolved == {}
    p = BedrockProvider("bedrock", resolved["bedrock"])
    try:
        assert (await p.chat(text_request("hi"), MODEL)).text == fake.reply_text
    finally:
        await p.aclose()
    # an unresolvable secret_key is reported by reference (so the kernel will not enable it)
    _, unresolved = resolve_credentials({"bedrock": ProviderSettings(api_key="x", secret_key="env://LEGION_TEST_UNSET")},
                                        {"bedrock": BedrockProvider}, None)
    assert unresolved == {"bedrock": ["env://LEGION_TEST_UNSET"]}


def test_secrets_never_in_describe_or_repr(fake):
    p = make(fake, session_token="SESSION-SECRET-VALUE")
    shown = repr(p.auth) + json.dumps(p.describe())
    for secret in (TEST_SECRET_KEY, "SESSION-SECRET-VALUE"):
        assert secret not in shown


# ---------------------------------------------------------------- settings and catalog
def test_settings_defaults_and_errors():
    p = BedrockProvider("bedrock", ProviderSettings(api_key="AKID", secret_key="s"))
    assert p.region == "us-east-2" and p.base_url == "https://bedrock-runtime.us-east-2.amazonaws.com"
    assert p.tier == "cloud" and BedrockProvider.needs_credentials
    assert set(BedrockProvider.credential_keys) == {"api_key", "secret_key", "session_token", "bearer_token"}
    eu = BedrockProvider("bedrock", ProviderSettings(api_key="AKID", secret_key="s", region="eu-west-1"))
    assert eu.base_url == "https://bedrock-runtime.eu-west-1.amazonaws.com"
    assert "eu.anthropic.claude-sonnet-4-6-v1" in {m.id for m in eu.static_models()}
    with pytest.raises(ValueError, match="bearer_token.*api_key.*secret_key"):
        BedrockProvider("bedrock", ProviderSettings(api_key="AKID"))
    with pytest.raises(ValueError, match=r"providers\.bedrock\.max_tokens must be an integer"):
        BedrockProvider("bedrock", ProviderSettings(bearer_token="t", max_tokens="many"))
    with pytest.raises(ValueError, match=r"providers\.bedrock\.region: 'us east' is not an AWS region"):
        BedrockProvider("bedrock", ProviderSettings(bearer_token="t", region="us east"))
    assert BedrockProvider("b", ProviderSettings(bearer_token="t", region="us-gov-west-1")).region == "us-gov-west-1"
    with pytest.raises(ValueError, match="embedding_dimensions must be 256, 512 or 1024"):
        BedrockProvider("bedrock", ProviderSettings(bearer_token="t", embedding_dimensions=300))


def test_auto_settings_follow_the_aws_environment(monkeypatch):
    for v in ("AWS_BEARER_TOKEN_BEDROCK", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
              "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(v, raising=False)
    s = BedrockProvider.auto_settings()
    assert s.api_key == "env://AWS_ACCESS_KEY_ID" and s.extra_options()["secret_key"] == "env://AWS_SECRET_ACCESS_KEY"
    assert "session_token" not in s.extra_options() and s.extra_options()["region"] == "us-east-2"
    _, unresolved = resolve_credentials({"bedrock": s}, {"bedrock": BedrockProvider}, None, quiet=True)
    assert unresolved["bedrock"]  # nothing set: not auto-enabled
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "tok")
    s = BedrockProvider.auto_settings()
    _, unresolved = resolve_credentials({"bedrock": s}, {"bedrock": BedrockProvider}, None, quiet=True)
    assert unresolved == {} and s.extra_options()["session_token"] == "env://AWS_SESSION_TOKEN"
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "ABSK")
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    s = BedrockProvider.auto_settings()
    assert s.extra_options() == {"bearer_token": "env://AWS_BEARER_TOKEN_BEDROCK", "region": "us-west-2"}


def test_catalog_models_are_cloud_tier_with_prices():
    p = BedrockProvider("aws", ProviderSettings(api_key="AKID", secret_key="s"))
    models = {m.id: m for m in p.static_models()}
    m = models[MODEL]
    assert m.tier == "cloud" and m.provider == "aws" and m.context_window == 200_000
    assert {"tools", "vision", "thinking", "streaming"} <= m.capabilities
    assert m.input_price == 3.0 and m.output_price == 15.0
    emb = models["amazon.titan-embed-text-v2:0"]
    assert emb.embedding and "embeddings" in emb.capabilities
    assert all(mm.tier == "cloud" for mm in models.values())


# ---------------------------------------------------------------- streaming
async def test_stream_with_frames_split_across_many_reads(provider, fake):
    fake.split_frames = 9
    res = await collect_stream(provider.stream(text_request("hi"), MODEL))
    assert res.error is None and res.text == fake.reply_text
    assert sum(isinstance(c, TextDelta) for c in res.chunks) == len(fake.reply_text.split(" "))
    assert (res.usage.input_tokens, res.usage.output_tokens) == fake.usage


@pytest.mark.parametrize("kind,error", [
    ("rate_limited", RateLimited), ("context_overflow", ContextOverflow), ("bad_request", ProviderBadRequest),
    ("model_stream_error", ProviderUnavailable), ("server_error", ProviderUnavailable),
    ("unavailable", ProviderUnavailable),
])
async def test_exception_frame_before_first_token_is_typed(provider, fake, kind, error):
    fake.stream_exception_next(kind, after_deltas=0)
    res = await collect_stream(provider.stream(text_request("hi"), MODEL))
    assert type(res.error) is error and res.error.provider == "bedrock"
    assert not any(isinstance(c, TextDelta) for c in res.chunks)


async def test_exception_frame_after_first_token_interrupts(provider, fake):
    fake.stream_exception_next("rate_limited", after_deltas=2)
    res = await collect_stream(provider.stream(text_request("hi"), MODEL))
    assert res.text == "Wednesday comes"
    assert isinstance(res.error, StreamInterrupted) and res.error.failover is False
    assert "throttlingException" in str(res.error)


async def test_corrupt_frame_in_the_stream(provider):
    state = _StreamState("bedrock")
    dec = EventStreamDecoder()
    good = event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}})
    chunks = [c for m in dec.feed(good) for c in state.on_message(m)]
    assert chunks == [TextDelta(text="Hi")]
    bad = bytearray(good)
    bad[-1] ^= 0xFF
    with pytest.raises(Exception, match="CRC"):
        list(dec.feed(bytes(bad)))


def test_stream_state_maps_tool_blocks_to_indices():
    state = _StreamState("bedrock")
    frames = [
        event_frame("messageStart", {"role": "assistant"}),
        event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Checking."}}),
        event_frame("contentBlockStart", {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t1", "name": "a"}}}),
        event_frame("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"x\":"}}}),
        event_frame("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "1}"}}}),
        event_frame("contentBlockStart", {"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "t2", "name": "b"}}}),
        event_frame("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{}"}}}),
        event_frame("contentBlockDelta", {"contentBlockIndex": 3, "delta": {"reasoningContent": {"signature": "s"}}}),
        event_frame("messageStop", {"stopReason": "tool_use"}),
    ]
    dec = EventStreamDecoder()
    chunks = [c for f in frames for m in dec.feed(f) for c in state.on_message(m)]
    tools = [c for c in chunks if isinstance(c, ToolCallDelta)]
    assert [(c.index, c.id, c.name, c.arguments_delta) for c in tools] == [
        (0, "t1", "a", ""), (0, None, None, '{"x":'), (0, None, None, "1}"), (1, "t2", "b", ""), (1, None, None, "{}")]
    assert state.stopped and state.stop_reason == "tool_use"
    with pytest.raises(RateLimited):
        state.on_message(next(iter(dec.feed(exception_frame("throttlingException", "slow")))))


async def test_guardrail_refusal_is_content_policy(provider, fake):
    fake.guardrail_intervenes = True
    with pytest.raises(ContentPolicy) as info:
        await provider.chat(text_request("something forbidden"), MODEL)
    assert info.value.failover is False
    res = await collect_stream(provider.stream(text_request("something forbidden"), MODEL))
    assert isinstance(res.error, ContentPolicy | StreamInterrupted)


# ---------------------------------------------------------------- error mapping
@pytest.mark.parametrize("kind,error", [("model_timeout", ProviderTimeout), ("not_found", ProviderBadRequest),
                                        ("context_overflow", ContextOverflow), ("auth", ProviderAuthError)])
async def test_http_error_types(provider, fake, kind, error):
    fake.fail_with(kind)
    with pytest.raises(error):
        await provider.chat(text_request("hi"), MODEL)


async def test_status_only_fault_uses_the_error_type_header(provider, fake):
    fake.fail_next(408)
    with pytest.raises(ProviderTimeout):
        await provider.chat(text_request("hi"), MODEL)
    fake.fail_next(429)
    with pytest.raises(RateLimited) as info:
        await provider.chat(text_request("hi"), MODEL)
    assert info.value.retry_after is None  # Bedrock sends no Retry-After unless told


# ---------------------------------------------------------------- translation
async def test_conversation_translation(provider, fake):
    req = ChatRequest(system="Be terse.", messages=[
        Message(role="system", content="Answer in English."),
        Message(role="user", content="Weather?"),
        Message(role="user", content=[TextBlock(text="In Paris."),
                                      ImageBlock(media_type="image/jpeg", data="aGVsbG8=")]),
        Message(role="assistant", content=[TextBlock(text="Checking."),
                                           ThinkingBlock(thinking="hmm", signature="sig"),
                                           ToolUseBlock(id="t1", name="get_weather", input={"city": "Paris"})]),
        Message(role="tool", content=[ToolResultBlock(tool_use_id="t1", content="18C", is_error=False)]),
    ], tools=[WEATHER_TOOL], tool_choice="required", temperature=0.2, max_tokens=50, stop=["\n\n"])
    await provider.chat(req, MODEL)
    body = fake.last_body("converse")
    assert body["system"] == [{"text": "Be terse."}, {"text": "Answer in English."}]
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "user"]  # consecutive user turns merged
    assert body["messages"][0]["content"][2] == {"image": {"format": "jpeg", "source": {"bytes": "aGVsbG8="}}}
    assert list(body["messages"][1]["content"][0]) == ["reasoningContent"]  # reasoning first
    assert body["messages"][2]["content"] == [{"toolResult": {"toolUseId": "t1", "content": [{"text": "18C"}],
                                                              "status": "success"}}]
    assert body["toolConfig"]["toolChoice"] == {"any": {}}
    assert body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {"json": WEATHER_TOOL.parameters}
    assert body["inferenceConfig"] == {"maxTokens": 50, "temperature": 0.2, "stopSequences": ["\n\n"]}


async def test_thinking_request_and_answer(provider, fake):
    r = await provider.chat(text_request("hi", thinking=True, temperature=0.3, max_tokens=100), MODEL)
    body = fake.last_body("converse")
    assert body["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    assert body["inferenceConfig"] == {"maxTokens": 1124}  # above the budget; no temperature with thinking
    assert r.thinking == fake.thinking_text and r.text == fake.reply_text
    assert r.content[0].signature.startswith("sig-")
    res = await collect_stream(provider.stream(text_request("hi", thinking=True), MODEL))
    sigs = [c.signature for c in res.chunks if isinstance(c, ThinkingDelta) and c.signature]
    assert len(sigs) == 1 and sigs[0].startswith("sig-") and res.thinking == fake.thinking_text


@pytest.mark.parametrize("bad,match", [
    (ChatRequest(messages=[Message(role="user", content=[ImageBlock(url="https://x/y.png")])]), "URL"),
    (ChatRequest(messages=[Message(role="user", content=[ImageBlock(media_type="image/tiff", data="aGk=")])]), "tiff"),
    (ChatRequest(messages=[Message(role="assistant", content="hello")]), "start with a user"),
    (ChatRequest(messages=[Message(role="user", content="q"), Message(role="assistant", content=[
        ToolUseBlock(id="t", name="f")]), Message(role="user", content=[ToolResultBlock(tool_use_id="t")])]),
     "tool definitions"),
])
async def test_untranslatable_requests_are_bad_requests(provider, fake, bad, match):
    with pytest.raises(ProviderBadRequest, match=match):
        await provider.chat(bad, MODEL)
    assert fake.total_calls == 0  # refused before anything was sent


async def test_model_ids_with_colons_and_arns_are_signed_correctly(provider, fake):
    for mid in ("us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                "arn:aws:bedrock:us-east-2:123456789012:inference-profile/us.anthropic.claude-sonnet-4-6-v1"):
        assert (await provider.chat(text_request("hi"), mid)).text == fake.reply_text
    assert fake.requests[-1]["path"].endswith("/converse") and fake.auth_failures == []


async def test_health_reports_reachability(provider, free_port):
    assert (await provider.health()).ok
    p = BedrockProvider("b", ProviderSettings(base_url=f"http://127.0.0.1:{free_port}", bearer_token="x"))
    try:
        h = await p.health()
    finally:
        await p.aclose()
    assert not h.ok and "unreachable" in h.detail


async def test_documented_settings_example(fake, monkeypatch):
    """The JSON example in docs/providers/bedrock.md resolves through the kernel and works."""
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[3] / "docs" / "providers" / "bedrock.md"
    block = re.search(r"```json\n(.*?)```", doc.read_text(), re.S).group(1)
    cfg = json.loads(block)["llm"]["providers"]["bedrock"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY)
    ps = ProviderSettings(**cfg, base_url=fake.url)
    resolved, unresolved = resolve_credentials({"bedrock": ps}, {"bedrock": BedrockProvider}, None, quiet=True)
    assert unresolved == {}  # vault:// is not configured here, so the env:// fallbacks answer
    p = BedrockProvider("bedrock", resolved["bedrock"])
    assert p.region == "us-west-2" and p.default_model == "us.anthropic.claude-sonnet-4-6-v1"
    assert "us.anthropic.claude-sonnet-4-6-v1" in {m.id for m in p.static_models()}
    await p.aclose()


async def test_pass_through_token_is_sent_as_the_bearer_key(provider, fake):
    """Gateway `pass_through`: the caller's own Bedrock API key replaces Legion's signature."""
    req = text_request("hi")
    req.pass_through_token = TEST_BEARER_TOKEN
    assert (await provider.chat(req, MODEL)).text == fake.reply_text
    assert fake.requests[-1]["headers"]["Authorization"] == f"Bearer {TEST_BEARER_TOKEN}"
    req.pass_through_token = "ABSK-callers-wrong-key"
    with pytest.raises(ProviderAuthError):
        await provider.chat(req, MODEL)
