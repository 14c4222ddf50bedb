"""The official `anthropic` SDK against the running gateway."""

from __future__ import annotations

import anthropic
import pytest


@pytest.fixture
def client(gateway):
    return anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0)


def test_messages_plain(client, rec):
    m = client.messages.create(model="legion/auto", max_tokens=64, system="be brief",
                               messages=[{"role": "user", "content": "hello"}])
    assert m.type == "message" and m.role == "assistant"
    assert m.content[0].type == "text" and m.content[0].text == "echo: hello"
    assert m.stop_reason == "end_turn"
    assert m.usage.input_tokens == 7 and m.usage.output_tokens == 3
    _, _, seen = rec.requests[-1]
    assert seen.system == "be brief" and seen.max_tokens == 64


def test_messages_raw_headers(client):
    raw = client.messages.with_raw_response.create(model="gw-model", max_tokens=10,
                                                   messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-legion-provider"] == "gw"
    assert raw.headers["x-legion-tier"] == "local"
    assert raw.headers["x-request-id"]


def test_streaming_text(client):
    with client.messages.stream(model="legion/auto", max_tokens=64,
                                messages=[{"role": "user", "content": "stream this"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text.strip() == "echo: stream this"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 3


def test_streaming_event_order_with_thinking(client):
    types = []
    with client.messages.stream(model="legion/auto", max_tokens=64,
                                thinking={"type": "enabled", "budget_tokens": 1024},
                                messages=[{"role": "user", "content": "think hard"}]) as s:
        for ev in s:
            types.append(ev.type)
        final = s.get_final_message()
    assert types[0] == "message_start"
    assert types[-1] == "message_stop"
    assert "content_block_start" in types and "content_block_stop" in types and "message_delta" in types
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "Let me think."
    assert final.content[1].text.strip() == "42"


TOOLS = [{"name": "get_weather", "description": "Weather in a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]


def test_tool_round_trip(client, rec):
    msgs = [{"role": "user", "content": "please use the tool"}]
    m = client.messages.create(model="legion/auto", max_tokens=64, tools=TOOLS, messages=msgs,
                               tool_choice={"type": "any"})
    assert m.stop_reason == "tool_use"
    tu = next(b for b in m.content if b.type == "tool_use")
    assert tu.name == "get_weather" and tu.input == {"city": "Paris"}
    assert rec.requests[-1][2].tool_choice == "required"
    msgs += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tu.id,
                                           "content": "sunny, 21C"}]}]
    m2 = client.messages.create(model="legion/auto", max_tokens=64, tools=TOOLS, messages=msgs)
    assert m2.content[0].text == "tool said: sunny, 21C"


def test_tool_use_streamed(client):
    with client.messages.stream(model="legion/auto", max_tokens=64, tools=TOOLS,
                                messages=[{"role": "user", "content": "use the tool now"}]) as s:
        final = s.get_final_message()
    tu = final.content[0]
    assert tu.type == "tool_use" and tu.input == {"city": "Paris"}
    assert final.stop_reason == "tool_use"


def test_count_tokens(client):
    short = client.messages.count_tokens(model="gw-model", messages=[{"role": "user", "content": "hi"}])
    long = client.messages.count_tokens(model="gw-model",
                                        messages=[{"role": "user", "content": "hello there " * 100}])
    assert 0 < short.input_tokens < long.input_tokens


def test_errors_use_anthropic_shape(client):
    with pytest.raises(anthropic.NotFoundError) as ei:
        client.messages.create(model="claude-none", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert ei.value.body["type"] == "error"
    assert ei.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model="legion/auto", max_tokens=5,
                               messages=[{"role": "user", "content": "fail rate_limited"}])
    with pytest.raises(anthropic.BadRequestError) as ei2:
        client.messages.create(model="legion/auto", max_tokens=0, messages=[{"role": "user", "content": "x"}])
    assert "max_tokens" in ei2.value.message


def test_auth_failure_raises_authentication_error(serve_legion, monkeypatch):
    monkeypatch.setenv("GW_TEST_KEY", "sk-legion-good")
    st = serve_legion(api={"auth": {"enabled": True, "api_keys": ["env://GW_TEST_KEY"]}})
    bad = anthropic.Anthropic(base_url=st.url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as ei:
        bad.messages.create(model="legion/auto", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert ei.value.body["error"]["type"] == "authentication_error"
    good = anthropic.Anthropic(base_url=st.url, api_key="sk-legion-good", max_retries=0)  # x-api-key
    assert good.messages.create(model="legion/auto", max_tokens=5,
                                messages=[{"role": "user", "content": "x"}]).content[0].text == "echo: x"


def test_stream_broken_mid_way_raises_in_the_sdk(client):
    got = ""
    with pytest.raises(anthropic.APIError):
        with client.messages.stream(model="legion/auto", max_tokens=20,
                                    messages=[{"role": "user", "content": "break"}]) as s:
            for t in s.text_stream:
                got += t
    assert got == "partial answer "


def test_models_list_in_anthropic_shape(client):
    ids = [m.id for m in client.models.list()]
    assert ids[0] == "legion/auto" and "gw-model" in ids
    assert client.models.retrieve("gw-model").type == "model"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("nope")
