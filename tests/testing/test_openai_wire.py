"""The shared OpenAI wire translation: kernel types <-> Chat Completions JSON, SSE, errors."""

from __future__ import annotations

import base64
import struct

import httpx
import pytest

from legion_core.errors import (
    ContentPolicy,
    ContextOverflow,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderUnavailable,
    RateLimited,
    StreamInterrupted,
)
from legion_core.providers.openai_wire import (
    StreamAssembler,
    build_chat_body,
    error_from_body,
    iter_sse,
    parse_completion,
    parse_embeddings,
    to_wire_messages,
)
from legion_core.types import (
    ChatRequest,
    DoneChunk,
    ImageBlock,
    Message,
    TextBlock,
    TextDelta,
    ThinkingBlock,
    ToolCallDelta,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    UsageChunk,
)


def test_system_images_and_tool_round_trip_to_wire() -> None:
    req = ChatRequest(system="Be brief.", messages=[
        Message(role="user", content=[TextBlock(text="Look"), ImageBlock(data="AAAA", media_type="image/jpeg"),
                                      ImageBlock(url="https://example.invalid/cat.png")]),
        Message(role="assistant", content=[ThinkingBlock(thinking="hmm"), TextBlock(text="Checking."),
                                           ToolUseBlock(id="c1", name="look", input={"q": 1})]),
        Message(role="user", content=[ToolResultBlock(tool_use_id="c1", content="found", is_error=False),
                                      TextBlock(text="and now?")]),
    ])
    wire = to_wire_messages(req)
    assert wire[0] == {"role": "system", "content": "Be brief."}
    assert wire[1]["content"][1] == {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}}
    assert wire[1]["content"][2]["image_url"]["url"] == "https://example.invalid/cat.png"
    assert wire[2] == {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "look", "arguments": '{"q":1}'}}]}
    # the tool result comes first (it must follow the tool call), then the rest of the user turn
    assert wire[3] == {"role": "tool", "tool_call_id": "c1", "content": "found"}
    assert wire[4] == {"role": "user", "content": "and now?"}


def test_tool_message_without_result_block_is_a_clear_error() -> None:
    req = ChatRequest(messages=[Message(role="tool", content="18C")])
    with pytest.raises(ProviderBadRequest, match=r"messages\[0\].*ToolResultBlock"):
        to_wire_messages(req)


def test_error_tool_result_is_marked() -> None:
    req = ChatRequest(messages=[Message(role="tool", content=[
        ToolResultBlock(tool_use_id="c", content=[TextBlock(text="boom")], is_error=True)])])
    assert to_wire_messages(req) == [{"role": "tool", "tool_call_id": "c", "content": "Error: boom"}]


def test_body_options() -> None:
    req = ChatRequest(messages=[Message(role="user", content="hi")], tools=[ToolSpec(name="t")],
                      tool_choice="t", temperature=0.2, top_p=0.9, max_tokens=5, stop=["\n"],
                      response_format={"type": "json_schema", "schema": {"type": "object"}})
    body = build_chat_body(req, "m", stream=True, max_tokens_field="max_completion_tokens")
    assert body["tool_choice"] == {"type": "function", "function": {"name": "t"}}
    assert body["max_completion_tokens"] == 5 and "max_tokens" not in body
    assert body["response_format"]["json_schema"]["schema"] == {"type": "object"}
    assert body["stream_options"] == {"include_usage": True}
    assert (body["temperature"], body["top_p"], body["stop"]) == (0.2, 0.9, ["\n"])
    lean = build_chat_body(req, "m", stream=False, sampling=False)
    assert "temperature" not in lean and "top_p" not in lean and "stream" not in lean


def test_parse_completion_with_reasoning_tools_and_missing_usage() -> None:
    data = {"model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "reasoning": "think",
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a": 2}'}}]}}]}
    req = ChatRequest(messages=[Message(role="user", content="x" * 40)])
    r = parse_completion(data, provider="p", tier="fleet", model="m", request=req)
    assert r.thinking == "think" and r.tool_calls[0].arguments == {"a": 2} and r.stop_reason == "tool_use"
    assert r.usage.estimated and r.usage.input_tokens == 10


def test_invalid_tool_arguments_are_kept_not_lost() -> None:
    data = {"choices": [{"finish_reason": "tool_calls", "message": {"tool_calls": [
        {"id": "c", "function": {"name": "f", "arguments": "{not json"}}]}}]}
    r = parse_completion(data, provider="p", tier="t", model="m")
    assert r.tool_calls[0].arguments == {"_raw_arguments": "{not json"}


def test_content_filter_without_text_is_content_policy() -> None:
    with pytest.raises(ContentPolicy):
        parse_completion({"choices": [{"finish_reason": "content_filter", "message": {"content": None}}]},
                         provider="p", tier="t", model="m")


def test_stream_assembler_order_and_premature_end() -> None:
    asm = StreamAssembler("p")
    chunks = asm.feed({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    assert chunks == []
    chunks += asm.feed({"choices": [{"index": 0, "delta": {"content": "Hi"}}]})
    chunks += asm.feed({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}]}}]})
    chunks += asm.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    chunks += asm.feed({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}})
    chunks += asm.finish()
    assert [type(c) for c in chunks] == [TextDelta, ToolCallDelta, UsageChunk, DoneChunk]
    assert chunks[2].usage.input_tokens == 3 and not chunks[2].usage.estimated
    assert chunks[3].stop_reason == "tool_use"
    broken = StreamAssembler("p")
    broken.feed({"choices": [{"index": 0, "delta": {"content": "Hi"}}]})
    with pytest.raises(StreamInterrupted):
        broken.finish()
    with pytest.raises(ProviderUnavailable):
        StreamAssembler("p").finish()


def test_stream_error_events_are_typed() -> None:
    with pytest.raises(RateLimited):  # OpenAI: an error object inside the stream
        StreamAssembler("p").feed({"error": {"message": "slow down", "type": "requests",
                                             "code": "rate_limit_exceeded"}})
    with pytest.raises(ContextOverflow):  # vLLM: its error object, with the HTTP status as `code`
        StreamAssembler("p").feed({"error": {"object": "error", "message": "maximum context length is 2048",
                                             "type": "BadRequestError", "code": 400}})
    with pytest.raises(ProviderUnavailable):
        StreamAssembler("p").feed({"error": {"message": "engine died", "type": "server_error"}})


async def test_iter_sse_handles_comments_multiline_and_done() -> None:
    raw = (b": keep-alive\n\nevent: message\ndata: {\"a\":\ndata: 1}\n\n"
           b"data: {\"b\": 2}\n\ndata: [DONE]\n\ndata: {\"after\": 1}\n\n")
    resp = httpx.Response(200, content=raw)
    assert [e async for e in iter_sse(resp)] == [{"a": 1}, {"b": 2}, None]


@pytest.mark.parametrize(("status", "body", "headers", "expected"), [
    (401, {"error": {"message": "Incorrect API key", "code": "invalid_api_key"}}, {}, ProviderAuthError),
    (429, {"error": {"message": "Rate limit", "code": "rate_limit_exceeded"}}, {"retry-after-ms": "1500"},
     RateLimited),
    (400, {"error": {"message": "too long", "code": "context_length_exceeded"}}, {}, ContextOverflow),
    (400, {"object": "error", "message": "This model's maximum context length is 8192 tokens.",
           "type": "BadRequestError", "code": 400}, {}, ContextOverflow),
    (400, {"error": {"message": "rejected by our safety system", "code": "content_policy_violation"}}, {},
     ContentPolicy),
    (400, {"error": {"message": "bad temperature", "param": "temperature"}}, {}, ProviderBadRequest),
    (503, b"<html>Bad gateway</html>", {}, ProviderUnavailable),
    (500, {"error": "plain string error"}, {}, ProviderUnavailable),
])
def test_error_mapping(status: int, body: object, headers: dict[str, str], expected: type) -> None:
    err = error_from_body(status, body, provider="p", headers=httpx.Headers(headers))
    assert type(err) is expected and err.provider == "p" and err.upstream_status == status
    if expected is RateLimited:
        assert err.retry_after == pytest.approx(1.5)


def test_ratelimit_reset_duration_header() -> None:
    err = error_from_body(429, {}, provider="p", headers=httpx.Headers({"x-ratelimit-reset-requests": "1m3s"}))
    assert isinstance(err, RateLimited) and err.retry_after == pytest.approx(63)


def test_embeddings_base64_sorted_and_token_level_pooled() -> None:
    b64 = base64.b64encode(struct.pack("<2f", 1.0, 2.0)).decode()
    r = parse_embeddings({"data": [{"index": 1, "embedding": [[1.0, 3.0], [3.0, 5.0]]},
                                   {"index": 0, "embedding": b64}], "usage": {"prompt_tokens": 4}},
                         provider="p", tier="t", model="m")
    assert r.embeddings == [[1.0, 2.0], [2.0, 4.0]] and r.usage.input_tokens == 4


async def test_iter_sse_crlf_and_frames_split_anywhere() -> None:
    raw = b'data: {"a": 1}\r\n\r\ndata: {"b":\r\ndata: 2}\r\n\r\ndata: [DONE]\r\n\r\n'

    class Pieces(httpx.AsyncByteStream):
        async def __aiter__(self):  # one byte at a time: frames split anywhere across reads
            for i in range(len(raw)):
                yield raw[i:i + 1]

    resp = httpx.Response(200, stream=Pieces())
    assert [e async for e in iter_sse(resp)] == [{"a": 1}, {"b": 2}, None]
    tail = httpx.Response(200, content=b'data: {"c": 3}')  # no final newline
    assert [e async for e in iter_sse(tail)] == [{"c": 3}]


def test_repeated_tool_call_id_and_name_are_sent_once() -> None:
    asm = StreamAssembler("p")
    got = []
    for piece in ('{"a"', ': 1}'):
        got += asm.feed({"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": piece}}]}}]})
    assert [(d.id, d.name, d.arguments_delta) for d in got] == [("c1", "f", '{"a"'), (None, None, ": 1}")]
