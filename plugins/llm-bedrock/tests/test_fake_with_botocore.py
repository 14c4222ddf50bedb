"""The fake, checked by the real AWS SDK: botocore's bedrock-runtime client (its own signer,
its own JSON and eventstream parsers, driven by the service model) must accept what the fake
serves, and the fake must accept botocore's signatures — and reject them with a wrong secret."""

from __future__ import annotations

import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

from legion_core.testing.fakes.bedrock import TEST_ACCESS_KEY, TEST_SECRET_KEY, FakeBedrock

MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
HI = [{"role": "user", "content": [{"text": "What day comes after Tuesday?"}]}]


@pytest.fixture
def fake(legion_fake_factory):
    return legion_fake_factory(FakeBedrock)


def client(fake, secret=TEST_SECRET_KEY):
    return botocore.session.get_session().create_client(
        "bedrock-runtime", region_name="us-east-2", endpoint_url=fake.url,
        aws_access_key_id=TEST_ACCESS_KEY, aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}))


def test_converse_parses_with_botocore(fake):
    r = client(fake).converse(modelId=MODEL, messages=HI, system=[{"text": "Be brief."}])
    assert r["output"]["message"] == {"role": "assistant", "content": [{"text": fake.reply_text}]}
    assert r["stopReason"] == "end_turn"
    assert r["usage"] == {"inputTokens": 12, "outputTokens": 7, "totalTokens": 19}
    assert fake.seen_system() == "Be brief." and fake.auth_failures == []
    assert fake.requests[-1]["path"].endswith("%3A0/converse")  # botocore escapes ":"; verified all the same


def test_converse_stream_parses_with_botocore(fake):
    fake.split_frames = 5
    events = list(client(fake).converse_stream(modelId=MODEL, messages=HI)["stream"])
    assert [next(iter(e)) for e in events] == [
        "messageStart", *["contentBlockDelta"] * 4, "contentBlockStop", "messageStop", "metadata"]
    assert "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e) \
        == fake.reply_text
    assert events[-1]["metadata"]["usage"]["outputTokens"] == 7


def test_tool_use_parses_with_botocore(fake):
    tools = {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]}
    r = client(fake).converse(modelId=MODEL, messages=HI, toolConfig=tools)
    [block] = r["output"]["message"]["content"]
    assert block["toolUse"]["name"] == "get_weather" and block["toolUse"]["input"] == fake.tool_arguments
    assert r["stopReason"] == "tool_use"
    events = list(client(fake).converse_stream(modelId=MODEL, messages=HI, toolConfig=tools)["stream"])
    start = next(e["contentBlockStart"] for e in events if "contentBlockStart" in e)
    assert start["start"]["toolUse"]["name"] == "get_weather"


def test_errors_parse_with_botocore(fake):
    c = client(fake)
    fake.fail_with("rate_limited")
    with pytest.raises(ClientError) as info:
        c.converse(modelId=MODEL, messages=HI)
    assert info.value.response["Error"]["Code"] == "ThrottlingException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    fake.fail_with("context_overflow")
    with pytest.raises(ClientError) as info:
        c.converse(modelId=MODEL, messages=HI)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    fake.stream_exception_next("rate_limited", after_deltas=1)
    with pytest.raises(EventStreamError, match="throttlingException"):
        list(c.converse_stream(modelId=MODEL, messages=HI)["stream"])


def test_wrong_secret_from_botocore_is_rejected(fake):
    with pytest.raises(ClientError) as info:
        client(fake, secret="wrong-secret").converse(modelId=MODEL, messages=HI)
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert fake.auth_failures == ["signature"]
