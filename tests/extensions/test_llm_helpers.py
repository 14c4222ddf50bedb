"""`llm_chat` / `llm_session` over a given Legion, and over the process-wide Python API
(`legion=None`), whose kernel runs on its own loop thread."""

from __future__ import annotations

import pytest

import legion_core
from legion_core.errors import NoProviderAvailable
from legion_core.extensions import llm_chat, llm_session
from legion_core.hookspecs import hookimpl
from legion_core.lifecycle import Legion
from legion_core.plugins.manager import PluginManager
from legion_core.providers.base import Provider
from legion_core.types import ChatResponse, DoneChunk, Message, TextBlock, Usage

SEEN = []


class CountingProvider(Provider):
    """Answers with how many messages it saw and the last user text."""

    kind = "counting-test"
    default_tier = "local"

    async def chat(self, request, model):
        SEEN.append(request)
        return ChatResponse(model=model, content=[TextBlock(
            text=f"{len(request.messages)}:{request.last_user_text()}")], usage=Usage(input_tokens=1, output_tokens=1))

    async def stream(self, request, model):
        yield DoneChunk()


class CountingPlugin:
    @hookimpl
    def legion_register_providers(self, register):
        register(CountingProvider)


def plugins():
    pm = PluginManager()
    pm.load(entry_points=False)
    pm.register(CountingPlugin(), name="counting")
    return pm


SETTINGS = {"llm": {"providers": {"c": {"type": "counting-test", "default_model": "m"}},
                    "discovery": {"enabled": False}, "cache": {"enabled": False}}}


async def test_chat_and_session_over_a_running_legion(tmp_path):
    SEEN.clear()
    lg = await Legion(home=tmp_path, settings=SETTINGS, plugins=plugins(), load_entry_points=False).start()
    try:
        r = await llm_chat(lg, "hello", system="be brief", caller="ext", max_tokens=5)
        assert r.text == "1:hello" and SEEN[-1].system == "be brief" and SEEN[-1].caller == "ext"
        s = llm_session(lg, caller="ext")
        assert (await s.say("one")).text == "1:one"
        assert (await s.say("two")).text == "3:two"  # it remembers: user, assistant, user
        assert [m.role for m in s.messages] == ["user", "assistant", "user", "assistant"]
        assert SEEN[-1].session_id == SEEN[-2].session_id == s.session_id
        r = await llm_chat(lg, [Message(role="user", content="a"), {"role": "user", "content": "b"}])
        assert r.text == "2:b"
    finally:
        await lg.shutdown()


async def test_a_stopped_legion_is_a_clear_error(tmp_path):
    lg = Legion(home=tmp_path, settings=SETTINGS, plugins=plugins(), load_entry_points=False)
    with pytest.raises(NoProviderAvailable, match="not started"):
        await llm_chat(lg, "hello")


async def test_legion_none_uses_the_process_wide_api(tmp_path):
    SEEN.clear()
    legion_core.start(home=tmp_path, settings=SETTINGS, plugins=plugins(), load_entry_points=False)
    try:
        r = await llm_chat(None, "hi", caller="ext")
        assert r.text == "1:hi" and SEEN[-1].caller == "ext"
        s = llm_session(None)
        await s.say("x")
        assert (await s.say("y")).text == "3:y"
    finally:
        legion_core.shutdown()
