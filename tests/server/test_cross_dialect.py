"""Across dialects, through the real provider plugins and protocol-faithful upstream fakes:
a Claude-style client (anthropic SDK, /v1/messages) answered by an OpenAI model, and an
OpenAI client (/v1/chat/completions) answered by a Claude model."""

from __future__ import annotations

import json

import anthropic
import httpx
import legion_llm_anthropic.plugin as anthropic_plugin
import legion_llm_openai.plugin as openai_plugin
import openai
import pytest

from legion_core.testing.fakes.anthropic import FakeAnthropic
from legion_core.testing.fakes.openai import FakeOpenAI
from tests.server.conftest import make_legion

OAI_KEY = "sk-test-fake"
ANT_KEY = "sk-ant-test"


@pytest.fixture
def fakes():
    with FakeOpenAI(api_key=OAI_KEY) as oai, FakeAnthropic(api_key=ANT_KEY) as ant:
        yield oai, ant


def _providers(oai, ant, ant_key=ANT_KEY, **ant_extra):
    return {"oai": {"type": "openai", "tier": "cloud", "base_url": oai.url + "/v1", "api_key": OAI_KEY},
            "ant": {"type": "anthropic", "tier": "frontier", "base_url": ant.url, "api_key": ant_key,
                    **ant_extra}}


@pytest.fixture
def cross(tmp_path, serve_legion, fakes):
    oai, ant = fakes
    lg = make_legion(tmp_path / "x", _providers(oai, ant), extra_plugins=(openai_plugin, anthropic_plugin))
    return serve_legion(legion=lg), oai, ant


def test_claude_client_talks_to_an_openai_model(cross):
    st, oai, ant = cross
    c = anthropic.Anthropic(base_url=st.url, api_key="x", max_retries=0)
    raw = c.messages.with_raw_response.create(model="gpt-4o-mini", max_tokens=50, system="be terse",
                                              messages=[{"role": "user", "content": "what day follows Tuesday?"}])
    m = raw.parse()
    assert raw.headers["x-legion-provider"] == "oai"
    assert m.content[0].type == "text" and m.content[0].text == oai.reply_text
    assert m.model == "gpt-4o-mini"
    assert oai.calls and not ant.calls
    sent = oai.chat_bodies[-1]
    assert sent["messages"][0] == {"role": "system", "content": "be terse"}
    # streaming through the same path
    with c.messages.stream(model="gpt-4o-mini", max_tokens=50,
                           messages=[{"role": "user", "content": "again, streamed"}]) as s:
        assert "".join(s.text_stream) == oai.reply_text


def test_claude_client_tool_round_trip_on_openai_model(cross):
    st, oai, _ = cross
    c = anthropic.Anthropic(base_url=st.url, api_key="x", max_retries=0)
    tools = [{"name": "get_weather", "description": "weather",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    msgs = [{"role": "user", "content": "weather in Paris? use the tool"}]
    m = c.messages.create(model="gpt-4o-mini", max_tokens=50, tools=tools, messages=msgs,
                          tool_choice={"type": "tool", "name": "get_weather"})
    tu = next(b for b in m.content if b.type == "tool_use")
    assert m.stop_reason == "tool_use" and tu.name == "get_weather"
    assert tu.input == oai.tool_arguments
    msgs += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tu.id, "content": "sunny"}]}]
    c.messages.create(model="gpt-4o-mini", max_tokens=50, tools=tools, messages=msgs)
    wire = oai.chat_bodies[-1]["messages"]
    assert wire[-1]["role"] == "tool" and wire[-1]["tool_call_id"] == tu.id and wire[-1]["content"] == "sunny"
    assert wire[-2]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_openai_client_talks_to_a_claude_model(cross):
    st, oai, ant = cross
    c = openai.OpenAI(base_url=st.url + "/v1", api_key="x", max_retries=0)
    raw = c.chat.completions.with_raw_response.create(
        model="claude-sonnet-4-6", messages=[{"role": "system", "content": "be terse"},
                                             {"role": "user", "content": "what day follows Tuesday?"}])
    r = raw.parse()
    assert raw.headers["x-legion-provider"] == "ant" and raw.headers["x-legion-tier"] == "frontier"
    assert r.choices[0].message.content == ant.reply_text
    assert ant.calls and not oai.calls
    assert ant.chat_bodies[-1]["system"] in ("be terse", [{"type": "text", "text": "be terse"}])
    stream = c.chat.completions.create(model="claude-sonnet-4-6", stream=True,
                                       stream_options={"include_usage": True},
                                       messages=[{"role": "user", "content": "streamed"}])
    text, usage = "", None
    for ch in stream:
        usage = ch.usage or usage
        text += "".join(x.delta.content or "" for x in ch.choices)
    assert text == ant.reply_text
    assert usage is not None and usage.completion_tokens > 0


def test_openai_client_tool_call_on_claude_model(cross):
    st, _, ant = cross
    c = openai.OpenAI(base_url=st.url + "/v1", api_key="x", max_retries=0)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    r = c.chat.completions.create(model="claude-sonnet-4-6", tools=tools, tool_choice="required",
                                  messages=[{"role": "user", "content": "weather in Paris?"}])
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == ant.tool_arguments


def test_upstream_credentials_never_leave_the_gateway(cross):
    st, _, _ = cross
    c = httpx.Client(base_url=st.url)
    for path in ("/api/llm/providers", "/api/llm/providers/oai", "/api/llm/providers/ant",
                 "/api/llm/models", "/v1/models", "/ready", "/metrics", "/openapi.json"):
        body = c.get(path).text
        assert OAI_KEY not in body and ANT_KEY not in body, path
    ant_info = c.get("/api/llm/providers/ant").json()
    assert ant_info["type"] == "anthropic" and "api_key" not in ant_info
    assert any(m["id"] == "claude-sonnet-4-6" for m in ant_info["models"])


def test_pass_through_forwards_the_client_token(tmp_path, serve_legion, fakes):
    oai, ant = fakes
    # Legion's own key for the Anthropic upstream is wrong; the client's token is the right one.
    lg = make_legion(tmp_path / "pt", _providers(oai, ant, ant_key="sk-ant-legions-own-wrong-key"),
                     extra_plugins=(openai_plugin, anthropic_plugin),
                     api={"auth": {"pass_through": True}})
    st = serve_legion(legion=lg)
    c = anthropic.Anthropic(base_url=st.url, api_key=ANT_KEY, max_retries=0)
    m = c.messages.create(model="claude-sonnet-4-6", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    assert m.content[0].text == ant.reply_text
    assert ant.requests[-1]["headers"].get("x-api-key") == ANT_KEY
