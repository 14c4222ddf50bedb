"""The OpenAI-compatible fake speaks the wire format real clients expect: checked with the real
`openai` SDK (which validates shapes) and raw HTTP where the SDK hides details."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from legion_core.testing.fakes.openai import FakeOpenAI
from legion_core.testing.fault_kinds import ERROR_KINDS, RETRY_AFTER_SECONDS, STREAM_FAULTS

KEY = "sk-test-fake"
MSG = [{"role": "user", "content": "What day comes after Tuesday?"}]
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


@pytest.fixture
def fake(legion_fake_openai: FakeOpenAI) -> FakeOpenAI:
    return legion_fake_openai


@pytest.fixture
def client(fake: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.url + "/v1", api_key=KEY, max_retries=0)


def test_chat_completion_shape(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.usage = (30, 5)
    r = client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert r.object == "chat.completion" and r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == fake.reply_text
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (30, 5, 35)
    assert fake.calls["chat"] == 1


def test_stream_has_role_pieces_finish_usage_and_done(fake: FakeOpenAI) -> None:
    body = {"model": "gpt-4o-mini", "messages": MSG, "stream": True, "stream_options": {"include_usage": True}}
    raw = httpx.post(fake.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}).text
    frames = [f for f in raw.split("\n\n") if f]
    assert all(f.startswith("data: ") for f in frames)
    assert frames[-1] == "data: [DONE]"
    events = [json.loads(f[6:]) for f in frames[:-1]]
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    assert text == fake.reply_text
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert events[-1]["choices"] == [] and events[-1]["usage"]["total_tokens"] == sum(fake.usage)
    assert all(e["usage"] is None for e in events[:-1])


def test_stream_without_include_usage_has_no_usage(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True))
    assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)


def test_tool_call_deltas_reassemble(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.tool_arguments = {"city": "Oslo"}
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MSG, tools=[TOOL], stream=True))
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id and deltas[0].function.name == "get_weather" and deltas[0].function.arguments == ""
    assert all(d.id is None for d in deltas[1:]) and len(deltas) > 2
    assert json.loads("".join(d.function.arguments for d in deltas)) == {"city": "Oslo"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_result_must_answer_a_tool_call(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="preceeding message with 'tool_calls'"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[
            *MSG, {"role": "tool", "tool_call_id": "call_nope", "content": "18C"}])
    r = client.chat.completions.create(model="gpt-4o-mini", tools=[TOOL], messages=[
        *MSG, {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"}])
    assert r.choices[0].message.content == fake.reply_text  # after a tool result, it answers
    assert fake.seen_tool_results() == [("call_1", "18C")]


def test_reasoning_content_only_when_thinking_enabled(legion_fake_factory: Any) -> None:
    fake = legion_fake_factory(FakeOpenAI, api_key=None, flavor="vllm", models=["qwen3"])
    body = {"model": "qwen3", "messages": MSG}
    plain = httpx.post(fake.url + "/v1/chat/completions", json=body).json()
    assert "reasoning_content" not in plain["choices"][0]["message"]
    body["chat_template_kwargs"] = {"enable_thinking": True}
    thought = httpx.post(fake.url + "/v1/chat/completions", json=body).json()
    assert thought["choices"][0]["message"]["reasoning_content"] == fake.thinking_text


def test_embeddings_float_and_base64(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    e = client.embeddings.create(model="text-embedding-3-small", input=["a", "b", "a"])  # SDK asks base64
    vecs = [d.embedding for d in e.data]
    assert vecs[0] == pytest.approx(vecs[2]) and vecs[0] != pytest.approx(vecs[1])
    raw = httpx.post(fake.url + "/v1/embeddings", headers={"Authorization": f"Bearer {KEY}"},
                     json={"model": "text-embedding-3-small", "input": "a", "encoding_format": "float"}).json()
    assert raw["data"][0]["embedding"] == pytest.approx(vecs[0], abs=1e-5)


def test_models_vllm_style(legion_fake_factory: Any) -> None:
    fake = legion_fake_factory(FakeOpenAI, api_key=None, flavor="vllm", models=["m1"], max_model_len=4096)
    data = httpx.get(fake.url + "/v1/models").json()["data"]
    assert data[0]["id"] == "m1" and data[0]["max_model_len"] == 4096 and data[0]["owned_by"] == "vllm"


def test_auth_missing_and_wrong_key(fake: FakeOpenAI) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        openai.OpenAI(base_url=fake.url + "/v1", api_key="sk-wrong-0123456789", max_retries=0).models.list()
    assert info.value.code == "invalid_api_key"
    assert "sk-wrong-0123456789" not in str(info.value)  # masked, as OpenAI does
    r = httpx.get(fake.url + "/v1/models")
    assert r.status_code == 401 and "didn't provide an API key" in r.json()["error"]["message"]


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-0", messages=MSG)
    assert info.value.code == "model_not_found"


@pytest.mark.parametrize("kind", [k for k in ERROR_KINDS if k != "timeout"])
def test_every_error_kind_is_an_openai_error_object(fake: FakeOpenAI, client: openai.OpenAI, kind: str) -> None:
    fake.fail_with(kind)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    body = info.value.body
    assert isinstance(body, dict) and set(body) == {"message", "type", "param", "code"}
    if kind == "rate_limited":
        assert info.value.status_code == 429
        assert info.value.response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    if kind == "context_overflow":
        assert body["code"] == "context_length_exceeded"
    if kind == "content_policy":
        assert body["code"] == "content_policy_violation"
    # consumed: the next call succeeds
    assert client.chat.completions.create(model="gpt-4o-mini", messages=MSG).choices


def test_vllm_flavour_errors_are_top_level(legion_fake_factory: Any) -> None:
    fake = legion_fake_factory(FakeOpenAI, api_key=None, flavor="vllm", models=["m"])
    fake.fail_with("context_overflow")
    r = httpx.post(fake.url + "/v1/chat/completions", json={"model": "m", "messages": MSG})
    assert r.status_code == 400
    body = r.json()
    assert body["object"] == "error" and body["code"] == 400 and "maximum context length" in body["message"]


def test_drop_mid_stream_sends_some_text_then_breaks(fake: FakeOpenAI) -> None:
    fake.fail_with("drop_mid_stream")
    got = b""
    with pytest.raises(httpx.HTTPError):
        with httpx.stream("POST", fake.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                          json={"model": "gpt-4o-mini", "messages": MSG, "stream": True}) as r:
            for part in r.iter_bytes():
                got += part
    assert b'"content": "Wednesday "' in got and b"[DONE]" not in got


def test_fail_with_rejects_unknown_kinds(fake: FakeOpenAI) -> None:
    assert set(STREAM_FAULTS) <= {"drop_before_first", "drop_mid_stream"}
    with pytest.raises(ValueError, match="unknown fault kind"):
        fake.fail_with("gremlins")


def test_health_and_settable_metrics(legion_fake_factory: Any) -> None:
    fake = legion_fake_factory(FakeOpenAI, api_key=None, flavor="vllm", models=["m"])
    assert httpx.get(fake.url + "/health").status_code == 200
    fake.metrics["num_requests_waiting"] = 5
    text = httpx.get(fake.url + "/metrics").text
    assert '# TYPE vllm:num_requests_waiting gauge' in text
    assert 'vllm:num_requests_waiting{model_name="m"} 5.0' in text
    fake.healthy = False
    assert httpx.get(fake.url + "/health").status_code == 503


def test_fixed_reply_mode_answers_without_bookkeeping(legion_fake_factory: Any) -> None:
    fake = legion_fake_factory(FakeOpenAI, fixed_reply=True, reply_text="ok")
    c = openai.OpenAI(base_url=fake.url + "/v1", api_key="anything", max_retries=0)
    assert c.chat.completions.create(model="whatever", messages=MSG).choices[0].message.content == "ok"
    text = "".join(ch.choices[0].delta.content or "" for ch in
                   c.chat.completions.create(model="whatever", messages=MSG, stream=True) if ch.choices)
    assert text == "ok"
    assert fake.calls["chat"] == 2 and fake.requests == []


def test_latency_and_chunk_delay_simulate_model_time(fake: FakeOpenAI) -> None:
    """Ordering, not wall-clock: with a chunk delay, pieces arrive as separate reads."""
    fake.chunk_delay = 0.02
    pieces = []
    with httpx.stream("POST", fake.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                      json={"model": "gpt-4o-mini", "messages": MSG, "stream": True}) as r:
        for part in r.iter_raw():
            pieces.append(part)
    assert len(pieces) >= 4 and b"".join(pieces).endswith(b"data: [DONE]\n\n")
