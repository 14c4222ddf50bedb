"""The step chain, guards (order, rewrite, refusal, system profile), tools loop, embeddings."""

import pytest

from legion_core.errors import BadRequest, NoProviderAvailable, ProviderUnavailable, RequestRefused
from legion_core.hookspecs import hookimpl
from legion_core.hooktypes import RequestContext
from legion_core.pipeline.steps import normalize
from legion_core.types import (
    ChatResponse,
    EmbedRequest,
    Message,
    ToolResult,
    ToolSpec,
    ToolUseBlock,
    Usage,
    text_request,
)
from tests.pipeline.pipeline_fakes import provider

Q = "What day comes after Tuesday?"


async def test_steps_are_ordered_named_and_described(make_legion):
    lg = await make_legion()
    names = [s.name for s in lg.pipeline.steps]
    assert names == ["normalize", "cache_lookup", "before_guards", "session_budget", "route", "compress",
                     "call", "quality", "meter", "after_guards", "audit", "cache_store"]
    d = lg.pipeline.describe()
    assert [x["name"] for x in d] == names and all(x["doc"] for x in d)
    assert lg.pipeline.step("route").phase == "pre"


async def test_a_step_may_be_a_plain_function_or_a_coroutine_function(make_legion, script):
    """Steps that never wait are plain functions (no coroutine per request); one that waits is
    awaited. Both kinds run, in order, for chat and for streams."""
    import asyncio

    from legion_core.pipeline.steps import Step

    seen: list[str] = []

    class Plain(Step):
        name, phase = "plain", "post"

        def run(self, p, turn):
            seen.append("plain")

    class Waits(Step):
        name, phase = "waits", "post"

        async def run(self, p, turn):
            await asyncio.sleep(0)
            seen.append("waits")

    lg = await make_legion()
    lg.pipeline.steps += [Waits(), Plain()]
    await lg.pipeline.chat(text_request(Q))
    assert seen == ["waits", "plain"]
    async for _ in lg.pipeline.stream(text_request(Q + " (streamed)")):
        pass
    assert seen == ["waits", "plain"] * 2


def test_normalize_moves_system_messages_and_drops_auto_model():
    req = text_request(Q, model="legion/auto")
    req.messages.insert(0, Message(role="system", content="Be brief."))
    n = normalize(req, RequestContext(request_id="r", caller="bob"))
    assert n.system == "Be brief." and [m.role for m in n.messages] == ["user"]
    assert n.model is None and n.caller == "bob"


@pytest.mark.parametrize("kw,msg", [({"messages": []}, "at least one message"),
                                    ({"compress_level": 7}, "compress_level must be 0-3")])
def test_normalize_rejects_bad_input_with_a_clear_error(kw, msg):
    req = text_request(Q).model_copy(update=kw)
    with pytest.raises(BadRequest, match=msg):
        normalize(req)


class Tagger:
    def __init__(self, tag, log):
        self.tag, self.log = tag, log

    @hookimpl
    def legion_before_chat(self, request, context):
        self.log.append(self.tag)
        return request.model_copy(update={"metadata": {**request.metadata, "tags": [
            *request.metadata.get("tags", []), self.tag]}})


class Refuser:
    @hookimpl(tryfirst=True)
    def legion_before_chat(self, request, context):
        if "forbidden" in request.last_user_text():
            raise RequestRefused("no forbidden things", status=403)
        assert context.route_preview(request).provider == "loc"  # priced without a model call
        assert context.state is not None


class Strict:
    @hookimpl
    def legion_before_chat(self, request, context):
        return request.model_copy(update={"intent": request.intent.model_copy(update={"privacy": "strict"})})


async def test_before_guards_chain_in_order(make_legion, script):
    log = []
    lg = await make_legion(plugins=(Tagger("a", log), Tagger("b", log), Refuser()))
    await lg.pipeline.chat(text_request(Q))
    model, seen = script.calls["loc"][0]
    assert seen.metadata["tags"] == ["b", "a"], "each guard saw the previous one's request (LIFO order)"


async def test_refusal_is_raised_and_audited(make_legion, script):
    lg = await make_legion(plugins=(Refuser(),))
    with pytest.raises(RequestRefused):
        await lg.pipeline.chat(text_request("something forbidden"))
    assert script.total() == 0
    assert lg.pipeline.audit.recent(1)[0]["status"] == "refused"


async def test_guard_rewrite_changes_routing(make_legion, script):
    lg = await make_legion(plugins=(Strict(),))
    with pytest.raises(NoProviderAvailable, match="privacy strict"):
        await lg.pipeline.chat(text_request(Q, provider="cld"))
    assert script.total() == 0


async def test_a_guard_registered_or_removed_at_runtime_takes_effect_at_once(make_legion, script):
    """The guard chain is cached per plugin generation: (un)registering must invalidate it."""
    lg = await make_legion()
    await lg.pipeline.chat(text_request(Q, cache=False))
    name = lg.plugins.register(Refuser())
    with pytest.raises(RequestRefused):
        await lg.pipeline.chat(text_request("something forbidden", cache=False))
    lg.plugins.unregister(name)
    r = await lg.pipeline.chat(text_request("something forbidden", cache=False))
    assert r.provider == "loc" and script.total() == 2


async def test_system_profile_skips_guards(make_legion, script):
    lg = await make_legion(plugins=(Refuser(),))
    r = await lg.pipeline.chat(text_request("something forbidden", profile="system"))
    assert r.provider == "loc"


# ------------------------------------------------------------------ tools
class Clock:
    def __init__(self):
        self.calls = []

    @hookimpl
    def legion_dispatch_tool(self, call, context):
        if call.name != "get_time":
            return None
        self.calls.append(call)
        return ToolResult(tool_use_id=call.id, content="12:00 UTC")


def tool_use(name, id="call_1"):
    return ChatResponse(content=[ToolUseBlock(id=id, name=name, input={})], stop_reason="tool_use",
                        usage=Usage(input_tokens=7, output_tokens=3))


async def test_tool_loop_executes_dispatched_tools(make_legion, script):
    clock = Clock()
    lg = await make_legion(plugins=(clock,))
    script.then("loc", tool_use("get_time"), "It is noon.")
    r = await lg.pipeline.chat(text_request("What time is it?", tools=[ToolSpec(name="get_time")]))
    assert r.text == "It is noon." and len(clock.calls) == 1
    _, second = script.calls["loc"][1]
    assert second.tools[0].name == "get_time", "tool definitions are forwarded"
    assert second.messages[-1].content[0].type == "tool_result"
    assert second.messages[-1].content[0].content == "12:00 UTC"
    assert (r.usage.input_tokens, r.usage.output_tokens) == (17, 8), "usage adds up over the loop"


async def test_undispatched_tool_calls_go_back_to_the_caller(make_legion, script):
    lg = await make_legion(plugins=(Clock(),))
    script.then("loc", tool_use("send_email"))
    r = await lg.pipeline.chat(text_request("Mail bob", tools=[ToolSpec(name="send_email")]))
    assert r.stop_reason == "tool_use" and r.tool_calls[0].name == "send_email"
    assert script.total() == 1


async def test_tool_loop_limit(make_legion, script):
    clock = Clock()
    lg = await make_legion(plugins=(clock,), tool_loop_limit=2)
    script.then("loc", *[tool_use("get_time", f"c{i}") for i in range(5)])
    r = await lg.pipeline.chat(text_request("time?", tools=[ToolSpec(name="get_time")]))
    assert len(clock.calls) == 2 and script.total() == 3 and r.stop_reason == "tool_use"


# ------------------------------------------------------------------ embeddings
EMBED = {
    "loc": provider("local", "small"),
    "emb1": provider("local", "e-small", caps=("embeddings",), model_extra={"embedding": True}),
    "emb2": provider("cloud", "e-big", price=(0.1, 0.0), caps=("embeddings",),
                     model_extra={"embedding": True}),
}


async def test_embed_is_routed_to_embedding_models(make_legion, script):
    lg = await make_legion(EMBED)
    r = await lg.pipeline.embed(EmbedRequest(input=["ab", "abcd"]))
    assert (r.provider, r.model) == ("emb1", "e-small")
    assert r.embeddings == [[2.0, 1.0], [4.0, 1.0]]
    assert not script.calls["loc"]


async def test_embed_fallback_chain(make_legion, script):
    lg = await make_legion(EMBED)
    script.then("emb1", ProviderUnavailable("down", provider="emb1"))
    r = await lg.pipeline.embed(EmbedRequest(input=["ab"]))
    assert r.provider == "emb2" and r.usage.estimated


async def test_embed_all_fail(make_legion, script):
    lg = await make_legion(EMBED)
    script.then("emb1", ProviderUnavailable("down", provider="emb1"))
    script.then("emb2", ProviderUnavailable("down", provider="emb2"))
    with pytest.raises(NoProviderAvailable, match="no embedding provider answered"):
        await lg.pipeline.embed(EmbedRequest(input=["ab"]))


class ClockTools(Clock):
    @hookimpl
    def legion_register_tools(self, register):
        register(ToolSpec(name="get_time", description="Current UTC time", side_effects=False))


async def test_registered_tools_complete_named_tools_and_loop(make_legion, script):
    plugin = ClockTools()
    lg = await make_legion(plugins=(plugin,))
    assert set(lg.pipeline.tools) == {"get_time"}
    script.then("loc", tool_use("get_time"), "Noon.")
    r = await lg.pipeline.chat(text_request("What time is it?", tools=[ToolSpec(name="get_time")]))
    _, first = script.calls["loc"][0]
    assert first.tools[0].description == "Current UTC time" and first.tools[0].side_effects is False
    assert r.text == "Noon." and len(plugin.calls) == 1


def two_calls(first, second):
    return ChatResponse(content=[ToolUseBlock(id="call_1", name=first, input={}),
                                 ToolUseBlock(id="call_2", name=second, input={})],
                        stop_reason="tool_use", usage=Usage(input_tokens=7, output_tokens=3))


async def test_a_round_mixing_plugin_and_caller_tools_executes_none_of_them(make_legion, script):
    """The caller gets every call back; had the plugin's run first, its side effect would happen
    here and again when the caller's next turn makes the model call it once more."""
    plugin = ClockTools()
    lg = await make_legion(plugins=(plugin,))
    script.then("loc", two_calls("get_time", "send_email"))
    r = await lg.pipeline.chat(text_request("Time, then mail bob", tools=[
        ToolSpec(name="get_time"), ToolSpec(name="send_email", description="Send mail")]))
    assert r.stop_reason == "tool_use" and [c.name for c in r.tool_calls] == ["get_time", "send_email"]
    assert plugin.calls == [], "nothing ran: the round goes back whole"
    assert script.total() == 1


async def test_a_round_of_registered_tools_runs_every_call(make_legion, script):
    plugin = ClockTools()
    lg = await make_legion(plugins=(plugin,))
    script.then("loc", two_calls("get_time", "get_time"), "Noon twice.")
    r = await lg.pipeline.chat(text_request("time?", tools=[ToolSpec(name="get_time")]))
    assert r.text == "Noon twice." and len(plugin.calls) == 2
    _, second = script.calls["loc"][1]
    assert [b.tool_use_id for b in second.messages[-1].content] == ["call_1", "call_2"]


class RegistersButDeclines(ClockTools):
    @hookimpl
    def legion_register_tools(self, register):
        register(ToolSpec(name="get_time", description="Current UTC time", side_effects=False))
        register(ToolSpec(name="get_date", description="Today", side_effects=False))


async def test_a_registered_tool_nobody_executes_gets_an_error_result(make_legion, script):
    """Both calls are declared, the first has run: the round completes, the model is told."""
    plugin = RegistersButDeclines()
    lg = await make_legion(plugins=(plugin,))
    script.then("loc", two_calls("get_time", "get_date"), "Sorry, no date.")
    r = await lg.pipeline.chat(text_request("time and date?", tools=[ToolSpec(name="get_time")]))
    assert r.text == "Sorry, no date." and len(plugin.calls) == 1
    _, second = script.calls["loc"][1]
    results = second.messages[-1].content
    assert results[0].content == "12:00 UTC" and not results[0].is_error
    assert results[1].is_error and "get_date" in results[1].content


class Wrapper:
    def __init__(self):
        self.wrapped = 0

    @hookimpl(wrapper=True)
    def legion_before_chat(self, request, context):
        self.wrapped += 1
        result = yield
        return result


async def test_guard_wrappers_fall_back_to_pluggys_call_loop(make_legion, script):
    log, w = [], Wrapper()
    lg = await make_legion(plugins=(Tagger("a", log), w))
    await lg.pipeline.chat(text_request(Q))
    _, seen = script.calls["loc"][0]
    assert w.wrapped == 1 and seen.metadata["tags"] == ["a"]
