"""The official `openai` SDK against the running gateway."""

from __future__ import annotations

import json

import openai
import pytest


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)


def test_chat_plain(client, rec):
    r = client.chat.completions.create(model="legion/auto",
                                       messages=[{"role": "system", "content": "be brief"},
                                                 {"role": "user", "content": "hello"}])
    assert r.choices[0].message.content == "echo: hello"
    assert r.choices[0].finish_reason == "stop"
    assert r.model == "gw-model"
    assert r.usage.prompt_tokens == 7 and r.usage.completion_tokens == 3 and r.usage.total_tokens == 10
    _, _, seen = rec.requests[-1]
    assert seen.system == "be brief"


def test_chat_concrete_model_and_raw_headers(client):
    raw = client.chat.completions.with_raw_response.create(
        model="gw-model", messages=[{"role": "user", "content": "headers please"}])
    assert raw.headers["x-legion-provider"] == "gw"
    assert raw.headers["x-legion-model"] == "gw-model"
    assert raw.headers["x-legion-tier"] == "local"
    assert raw.headers["x-legion-cache"] == "miss"
    assert float(raw.headers["x-legion-overhead-ms"]) >= 0
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.parse().choices[0].message.content == "echo: headers please"


def test_streaming_with_usage(client):
    stream = client.chat.completions.create(
        model="legion/auto", messages=[{"role": "user", "content": "stream me please"}], stream=True,
        stream_options={"include_usage": True})
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for ch in chunk.choices:
            text += ch.delta.content or ""
            finish = ch.finish_reason or finish
    assert text.strip() == "echo: stream me please"
    assert finish == "stop"
    assert usage is not None and usage.prompt_tokens == 7 and usage.completion_tokens == 3


def test_streaming_without_usage_has_no_usage_chunk(client):
    chunks = list(client.chat.completions.create(
        model="legion/auto", messages=[{"role": "user", "content": "no usage"}], stream=True))
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def test_tool_round_trip(client, rec):
    msgs = [{"role": "user", "content": "please use the tool"}]
    r = client.chat.completions.create(model="legion/auto", messages=msgs, tools=TOOLS, tool_choice="auto")
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    _, _, seen = rec.requests[-1]
    assert seen.tools[0].name == "get_weather" and seen.tool_choice == "auto"
    msgs += [choice.message.model_dump(exclude_none=True),
             {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"}]
    r2 = client.chat.completions.create(model="legion/auto", messages=msgs, tools=TOOLS)
    assert r2.choices[0].message.content == "tool said: sunny, 21C"
    _, _, seen2 = rec.requests[-1]
    assert [m.role for m in seen2.messages] == ["user", "assistant", "tool"]


def test_tool_call_streamed(client):
    stream = client.chat.completions.create(
        model="legion/auto", messages=[{"role": "user", "content": "use the tool, streaming"}],
        tools=TOOLS, stream=True)
    name, args, finish = None, "", None
    for chunk in stream:
        for ch in chunk.choices:
            for tc in ch.delta.tool_calls or []:
                name = tc.function.name or name
                args += tc.function.arguments or ""
            finish = ch.finish_reason or finish
    assert name == "get_weather"
    assert json.loads(args) == {"city": "Paris"}
    assert finish == "tool_calls"


def test_response_format_is_passed_to_the_pipeline(client, rec):
    client.chat.completions.create(
        model="legion/auto", messages=[{"role": "user", "content": "json please"}],
        response_format={"type": "json_schema", "json_schema": {
            "name": "answer", "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}})
    _, _, seen = rec.requests[-1]
    assert seen.response_format == {"type": "json_schema", "name": "answer", "strict": False,
                                    "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}


def test_embeddings_float_and_default_base64(client):
    r = client.embeddings.create(model="legion/auto", input=["abc", "hello"], encoding_format="float")
    assert [d.embedding for d in r.data] == [[3.0, 1.0, 0.5], [5.0, 1.0, 0.5]]
    # without encoding_format the SDK asks for base64 and decodes it itself
    r2 = client.embeddings.create(model="gw-model-embed", input="abcd")
    assert r2.data[0].embedding == [4.0, 1.0, 0.5]
    assert r2.model == "gw-model-embed"


def test_models_list_and_retrieve(client):
    ids = [m.id for m in client.models.list()]
    assert ids[0] == "legion/auto"
    assert "gw-model" in ids
    assert client.models.retrieve("gw-model").owned_by == "gw"
    assert client.models.retrieve("legion/auto").owned_by == "legion"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_unknown_model_is_404_naming_the_fix(client):
    with pytest.raises(openai.NotFoundError) as ei:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    assert "GET /v1/models" in ei.value.message
    assert ei.value.body["code"] == "model_not_found"


def test_bad_parameter_is_400(client):
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model="legion/auto", messages=[{"role": "user", "content": "hi"}],
                                       n=3)
    assert "n=1" in ei.value.message


@pytest.mark.parametrize(("kind", "exc", "status"), [
    ("rate_limited", openai.RateLimitError, 429),
    ("content_policy", openai.BadRequestError, 400),
    ("unavailable", openai.InternalServerError, 503),
])
def test_provider_errors_map_to_sdk_exceptions(client, kind, exc, status):
    with pytest.raises(exc) as ei:
        client.chat.completions.create(model="legion/auto", messages=[{"role": "user", "content": f"fail {kind}"}])
    assert ei.value.status_code == status
    assert ei.value.response.headers["x-request-id"]


def test_provider_bug_ends_in_a_typed_error_with_request_id(client):
    with pytest.raises(openai.InternalServerError) as ei:
        client.chat.completions.create(model="legion/auto", messages=[{"role": "user", "content": "boom"}],
                                       extra_headers={"x-request-id": "trace-me-123"})
    # a provider that raises a bare exception is failed over like an outage: 503, not a bare 500
    assert ei.value.status_code == 503
    assert ei.value.response.headers["x-request-id"] == "trace-me-123"
    assert ei.value.response.json()["request_id"] == "trace-me-123"


def test_auth_failure_raises_authentication_error(serve_legion, monkeypatch):
    monkeypatch.setenv("GW_TEST_KEY", "sk-legion-good")
    st = serve_legion(api={"auth": {"enabled": True, "api_keys": ["env://GW_TEST_KEY"]}})
    bad = openai.OpenAI(base_url=st.url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as ei:
        bad.chat.completions.create(model="legion/auto", messages=[{"role": "user", "content": "hi"}])
    assert "sk-legion-good" not in ei.value.response.text
    good = openai.OpenAI(base_url=st.url + "/v1", api_key="sk-legion-good", max_retries=0)
    assert good.chat.completions.create(model="legion/auto", messages=[{"role": "user", "content": "hi"}]
                                        ).choices[0].message.content == "echo: hi"


def test_stream_broken_mid_way_raises_in_the_sdk(client):
    stream = client.chat.completions.create(model="legion/auto", stream=True,
                                            messages=[{"role": "user", "content": "break"}])
    got = ""
    with pytest.raises(openai.APIError):
        for chunk in stream:
            got += "".join(c.delta.content or "" for c in chunk.choices)
    assert got == "partial answer "
