"""The Python API: sync and async forms, sessions, structured output, embeddings."""

import asyncio
import threading

import pytest

import legion_core
from legion_core.errors import BadRequest, ContextOverflow
from legion_core.pipeline.structured import StructuredOutputInvalid
from legion_core.types import text_request
from tests.pipeline.pipeline_fakes import provider

Q = "What day comes after Tuesday?"


def test_exports():
    for name in ("start", "shutdown", "started", "ask", "chat", "embed", "structured", "session",
                 "aask", "achat", "aembed", "astructured", "get_legion"):
        assert callable(getattr(legion_core, name)), name


def test_ask_carries_its_routing_decision(boot, script):
    boot()
    assert legion_core.started()
    r = legion_core.ask(Q)
    assert r.provider == "loc" and r.routing.provider == "loc" and r.routing.reason
    assert r.text == "loc:small says hello"


def test_sync_form_works_repeatedly_and_from_threads(boot, script):
    boot()
    texts = [legion_core.ask(f"What comes after {i}?").provider for i in range(5)]
    out = []
    ts = [threading.Thread(target=lambda i=i: out.append(legion_core.ask(f"thread {i}?").provider))
          for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert texts == ["loc"] * 5 and out == ["loc"] * 4


def test_sync_form_works_inside_a_running_loop(boot, script):
    boot()

    async def main():
        return legion_core.ask(Q)  # blocking, but must not deadlock

    assert asyncio.run(main()).provider == "loc"


async def test_async_forms(boot, script):
    boot()
    r = await legion_core.aask(Q, tier="cloud")
    assert r.provider == "cld"
    r2 = await legion_core.achat(messages=[{"role": "system", "content": "Be brief."},
                                           {"role": "user", "content": "Hi"}])
    _, sent = script.calls["loc"][-1]
    assert sent.system == "Be brief." and r2.provider == "loc"


def test_chat_routing_kwargs_and_intent_shortcuts(boot, script):
    boot()
    r = legion_core.chat(message="Write a detailed, multi-part analysis.", privacy="strict",
                         capability="reasoning")
    assert r.tier not in ("cloud", "frontier"), "privacy=strict never reaches the cloud"
    assert legion_core.chat(message=Q, provider="fro").provider == "fro"


@pytest.mark.parametrize("name", ["legion/auto", "auto", "default", "legion-auto", "Legion/Auto", " DEFAULT "])
def test_every_auto_model_name_routes(boot, script, name):
    boot()
    r = legion_core.chat(message=Q, model=name, cache=False)
    assert (r.provider, r.routing.provider) == ("loc", "loc")
    assert not any("request asks for" in (c.dropped or "") for c in r.routing.candidates)


def test_a_request_no_model_can_hold_raises_context_overflow(boot, script):
    lg = boot()
    with pytest.raises(ContextOverflow, match="largest context window is 32000") as ei:
        legion_core.chat(message=Q, max_tokens=100_000)
    assert ei.value.status == 400 and ei.value.decision.provider is None
    assert script.total() == 0
    lg.pipeline.writer.flush()
    with lg.store.lock:
        row = lg.store.conn.execute("SELECT status, error FROM audit ORDER BY ts DESC LIMIT 1").fetchone()
    assert row[0] == "error" and row[1].startswith("context_overflow:")


@pytest.mark.parametrize("kw,msg", [
    ({}, "exactly one of message"),
    ({"message": "a", "messages": []}, "exactly one of message"),
    ({"message": "a", "colour": "red"}, "unknown argument 'colour'"),
    ({"message": "a", "privacy": "secret"}, "privacy"),
])
def test_bad_arguments_are_clear(boot, kw, msg):
    boot()
    with pytest.raises(BadRequest, match=msg):
        legion_core.chat(**kw)


def test_quality_check_passes_through(boot, script):
    boot()
    script.then("loc", "no").then("cld", "YES")
    r = legion_core.ask(Q, quality_check=lambda req, resp: resp.text == "YES")
    assert r.escalated and r.provider == "cld"


def test_structured(boot, script):
    boot()
    script.then("loc", 'Here: {"day": "Wednesday", "index": 3}')
    schema = {"type": "object", "properties": {"day": {"type": "string"}, "index": {"type": "integer"}},
              "required": ["day", "index"]}
    res = legion_core.structured("Which day comes after Tuesday, and its index?", schema)
    assert res.data == {"day": "Wednesday", "index": 3} and res.routing.provider == "loc"
    script.then("loc", "no", "still no")
    with pytest.raises(StructuredOutputInvalid):
        legion_core.structured("Again?", schema)


async def test_astructured(boot, script):
    boot()
    script.then("cld", '{"ok": true}')
    res = await legion_core.astructured("ok?", {"type": "object"}, provider="cld")
    assert res.data == {"ok": True}
    assert script.calls["cld"][0][1].response_format["type"] == "json_schema"


EMBED = {"loc": provider("local", "small"),
         "emb": provider("local", "e1", caps=("embeddings",), model_extra={"embedding": True})}


def test_embed(boot, script):
    boot(EMBED)
    r = legion_core.embed(["a", "bcd"])
    assert r.provider == "emb" and r.embeddings == [[1.0, 1.0], [3.0, 1.0]]
    assert legion_core.embed("one").embeddings == [[3.0, 1.0]]


async def test_aembed(boot, script):
    boot(EMBED)
    r = await legion_core.aembed(["xy"])
    assert r.model == "e1"


def test_start_is_idempotent_and_shutdown_resets(boot, script):
    lg = boot()
    assert legion_core.start() is lg and legion_core.get_legion() is lg
    legion_core.shutdown()
    assert not legion_core.started()


async def test_async_forms_run_on_the_kernels_loop(boot, script):
    boot()
    script.then("loc", lambda req, model: threading.current_thread().name)
    script.then("loc", lambda req, model: threading.current_thread().name)
    assert (await legion_core.aask("where?")).text == "legion-api-loop"
    s = legion_core.session()
    assert (await s.aask("and here?")).text == "legion-api-loop"


def test_tools_true_offers_every_registered_tool(tmp_path, script):
    from legion_core.hookspecs import hookimpl
    from legion_core.types import ToolResult, ToolSpec
    from tests.pipeline.pipeline_fakes import THREE_TIERS, make_plugins

    class Tools:
        @hookimpl
        def legion_register_tools(self, register):
            register(ToolSpec(name="get_time", description="UTC time", side_effects=False))

        @hookimpl
        def legion_dispatch_tool(self, call, context):
            return ToolResult(tool_use_id=call.id, content="noon")

    legion_core.start(home=tmp_path, settings={"llm": {"providers": THREE_TIERS}},
                      plugins=make_plugins(Tools()), load_entry_points=False)
    try:
        legion_core.ask("time?", tools=True)
        _, sent = script.calls["loc"][0]
        assert [t.name for t in sent.tools] == ["get_time"]
    finally:
        legion_core.shutdown()


def test_a_script_that_never_calls_shutdown_still_flushes_its_audit_row(tmp_path):
    import sqlite3
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    here = Path(__file__).resolve().parents[2]  # the repo root, for `tests.pipeline...`
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(here)!r})
        from tests.pipeline.pipeline_fakes import THREE_TIERS, make_plugins
        import legion_core
        legion_core.start(home={str(tmp_path)!r}, settings={{"llm": {{"providers": THREE_TIERS}}}},
                          plugins=make_plugins(), load_entry_points=False)
        print(legion_core.ask("hello?").text)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "loc:small says hello"
    db = sqlite3.connect(tmp_path / "data" / "legion.db")
    assert db.execute("SELECT count(*) FROM audit").fetchone()[0] == 1


def test_api_call_from_an_extension_during_start_raises_instead_of_deadlocking(tmp_path, script):
    from legion_core.hookspecs import hookimpl
    from legion_core.hooktypes import Extension
    from tests.pipeline.pipeline_fakes import THREE_TIERS, make_plugins

    seen = []

    class Eager(Extension):
        name = "eager"

        async def start(self, legion):
            try:
                await legion_core.aask("too early?")
            except RuntimeError as e:
                seen.append(str(e))
            seen.append((await legion.pipeline.chat(text_request("fine?"))).provider)

    class Plugin:
        @hookimpl
        def legion_register_extensions(self, register):
            register(Eager())

    legion_core.start(home=tmp_path, settings={"llm": {"providers": THREE_TIERS}},
                      plugins=make_plugins(Plugin()), load_entry_points=False)
    try:
        assert "still starting" in seen[0] and seen[1] == "loc"
    finally:
        legion_core.shutdown()
