"""The smart-alerts example (docs/examples/smart_alerts.py) in a real, booted Legion: it loads when
a provider is ready, is skipped with one log line when none is, triages through `llm_chat` /
`llm_session`, and its tool is executed in the pipeline's tool loop, also through the gateway
with the real OpenAI SDK."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from legion_core.hookspecs import hookimpl
from legion_core.lifecycle import Legion
from legion_core.plugins.manager import PluginManager
from legion_core.providers.base import Provider
from legion_core.types import (
    ChatRequest,
    ChatResponse,
    DoneChunk,
    Message,
    TextBlock,
    TextDelta,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    Usage,
    UsageChunk,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "smart_alerts.py"


def load_example():
    spec = importlib.util.spec_from_file_location("smart_alerts_example", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


sa = load_example()
SEEN: list[ChatRequest] = []


def answer(request: ChatRequest) -> tuple[list, str]:
    last = request.messages[-1]
    results = [b for b in last.blocks() if isinstance(b, ToolResultBlock)]
    if results:
        return [TextBlock(text=f"Current alerts: {results[0].text}")], "end_turn"
    text = last.text
    if request.tools:
        return [ToolUseBlock(id="call_1", name=request.tools[0].name, input={"severity": "critical"})], "tool_use"
    if "Classify this monitoring alert" in text:
        if "disk" in text:
            return [TextBlock(text="critical: disk 97% full on db-1")], "end_turn"
        if "cpu" in text.lower():
            return [TextBlock(text="warning: CPU above 90% on web-3")], "end_turn"
        return [TextBlock(text="info: nightly backup finished")], "end_turn"
    return [TextBlock(text=f"digest ({len(request.messages)} messages)")], "end_turn"


class TinyProvider(Provider):
    kind = "tiny-test"
    default_tier = "local"

    async def chat(self, request, model):
        SEEN.append(request)
        content, stop = answer(request)
        return ChatResponse(model=model, content=content, stop_reason=stop,
                            usage=Usage(input_tokens=10, output_tokens=5))

    async def stream(self, request, model):
        SEEN.append(request)
        content, stop = answer(request)
        for b in content:
            if isinstance(b, TextBlock):
                yield TextDelta(text=b.text)
        yield UsageChunk(usage=Usage(input_tokens=10, output_tokens=5))
        yield DoneChunk(stop_reason=stop)


class TinyPlugin:
    @hookimpl
    def legion_register_providers(self, register):
        register(TinyProvider)


TINY = {"tiny": {"type": "tiny-test", "default_model": "t1",
                 "models": {"t1": {"capabilities": ["streaming", "tools"], "context_window": 32000}}}}


def make_legion(home, providers):
    pm = PluginManager()
    pm.load(entry_points=False)
    pm.register(TinyPlugin(), name="tiny")
    plugin = sa.SmartAlertsPlugin()
    pm.register(plugin, name="smart-alerts")
    lg = Legion(home=home, plugins=pm, load_entry_points=False,
                settings={"llm": {"providers": providers, "discovery": {"enabled": False}}})
    return lg, plugin.extension


@pytest.fixture(autouse=True)
def _clear_seen():
    SEEN.clear()


async def test_loads_and_triages_when_a_provider_is_ready(tmp_path):
    lg, ext = make_legion(tmp_path, TINY)
    await lg.start()
    try:
        assert ext in lg.extensions and ext.running
        ext.submit("prometheus", "disk usage 97% on db-1")
        ext.submit("prometheus", "cpu 93% on web-3 for 10m")
        ext.submit("cron", "backup done")
        await ext.drain()
        assert [(a.severity, a.summary) for a in ext.alerts] == [
            ("critical", "disk 97% full on db-1"), ("warning", "CPU above 90% on web-3"),
            ("info", "nightly backup finished")]
        # llm_chat: each triage is a routed request from the extension's caller name.
        triage = [r for r in SEEN if "Classify" in r.last_user_text()]
        assert len(triage) == 3 and all(r.caller == "smart-alerts" for r in triage)
        # llm_session: the digest remembers earlier turns (2 non-info alerts -> 2 turns).
        assert len(ext.digest.messages) == 4 and ext.digest.responses[-1].text == "digest (3 messages)"
        digest_reqs = [r for r in SEEN if r.system == sa.DIGEST_SYSTEM]
        assert [len(r.messages) for r in digest_reqs] == [1, 3]
        assert len({r.session_id for r in digest_reqs}) == 1
    finally:
        await lg.shutdown()
    assert not ext.running


async def test_skipped_with_exactly_one_log_line_when_no_provider_is_ready(tmp_path, capsys):
    lg, ext = make_legion(tmp_path, {})
    capsys.readouterr()
    await lg.start()  # boot configures logging onto the (captured) stderr
    try:
        assert ext not in lg.extensions and not ext.running
        assert lg.skipped_extensions == {"smart-alerts": "llm_required and no provider is ready"}
        err = capsys.readouterr().err
        mentions = [line for line in err.splitlines() if "smart-alerts" in line]
        assert len(mentions) == 1, err
        assert "warning" in mentions[0] and "extension skipped" in mentions[0]
        with pytest.raises(RuntimeError, match="not started"):
            ext.submit("x", "y")
    finally:
        await lg.shutdown()


async def test_tool_is_dispatched_in_the_pipeline_tool_loop(tmp_path):
    lg, ext = make_legion(tmp_path, TINY)
    await lg.start()
    try:
        ext.submit("prometheus", "disk usage 97% on db-1")
        ext.submit("cron", "backup done")
        await ext.drain()
        SEEN.clear()
        # The caller names the tool only; the pipeline completes it from legion_register_tools.
        req = ChatRequest(messages=[Message(role="user", content="Anything critical right now?")],
                          tools=[ToolSpec(name="list_alerts")])
        resp = await lg.pipeline.chat(req)
        assert SEEN[0].tools[0].description == sa.LIST_ALERTS.description
        rows = json.loads(resp.text.removeprefix("Current alerts: "))
        assert [(r["severity"], r["summary"]) for r in rows] == [("critical", "disk 97% full on db-1")]
        assert len(SEEN) == 2  # tool call, then the answer built on the tool's result
    finally:
        await lg.shutdown()


def test_tool_dispatch_rejects_bad_arguments():
    from legion_core.testing.plugin_helpers import dispatch_tool
    from legion_core.types import ToolCall

    p = sa.SmartAlertsPlugin()
    bad = dispatch_tool(p, ToolCall(id="c", name="list_alerts", arguments={"severity": "meh"}))
    assert bad.is_error and "severity must be one of" in bad.content
    assert dispatch_tool(p, ToolCall(id="c", name="other_tool")) is None


def test_parse_triage_is_forgiving():
    assert sa.parse_triage("**Critical**: db down") == ("critical", "db down")
    assert sa.parse_triage("no idea what this is") == ("warning", "no idea what this is")


def test_tool_reaches_a_model_through_the_gateway(tmp_path):
    """An OpenAI SDK client names the tool; Legion executes it server-side and answers."""
    openai = pytest.importorskip("openai")
    from legion_core.server import ServerThread, create_app

    lg, ext = make_legion(tmp_path, TINY)
    ext.alerts.append(sa.Alert(id=1, source="prometheus", raw="disk 97%", severity="critical",
                               summary="disk 97% full on db-1"))
    with ServerThread(create_app(lg)) as st:
        client = openai.OpenAI(base_url=st.url + "/v1", api_key="unused", max_retries=0)
        out = client.chat.completions.create(
            model="legion/auto", messages=[{"role": "user", "content": "Anything critical?"}],
            tools=[{"type": "function", "function": {"name": "list_alerts"}}])
    msg = out.choices[0].message
    assert not msg.tool_calls and out.choices[0].finish_reason == "stop"
    rows = json.loads(msg.content.removeprefix("Current alerts: "))
    assert rows[0]["summary"] == "disk 97% full on db-1"
    assert SEEN[0].tools[0].description == sa.LIST_ALERTS.description
