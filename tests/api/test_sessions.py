"""Sessions: instructions, history, LRU + SQLite persistence, resume after restart, budget."""

import pytest

import legion_core
from legion_core.errors import RequestRefused


def echo_history(request, model):
    return f"turn {len(request.messages) // 2 + 1}"


def test_session_keeps_history_and_instructions(boot, script):
    boot()
    s = legion_core.session(instructions="You are terse.")
    script.then("loc", echo_history, echo_history)
    assert s.ask("Hi").text == "turn 1"
    assert s.ask("And then?").text == "turn 2"
    _, sent = script.calls["loc"][-1]
    assert sent.system == "You are terse." and sent.session_id == s.id
    assert [m.role for m in sent.messages] == ["user", "assistant", "user"]
    assert [m.text for m in s.messages] == ["Hi", "turn 1", "And then?", "turn 2"]


def test_session_resumes_after_restart(boot, script, tmp_path):
    boot()
    s = legion_core.session(instructions="Be kind.", id="conv-42")
    s.ask("Remember the number 7.")
    legion_core.shutdown()
    boot()
    s2 = legion_core.session(id="conv-42")
    assert s2.instructions == "Be kind." and s2.messages[0].text == "Remember the number 7."
    s2.ask("What number?")
    _, sent = script.calls["loc"][-1]
    assert sent.messages[0].text == "Remember the number 7." and len(sent.messages) == 3


def test_unknown_id_starts_a_new_session(boot):
    boot()
    s = legion_core.session(id="fresh")
    assert s.id == "fresh" and s.messages == []


async def test_async_session(boot, script):
    boot()
    s = legion_core.session()
    r = await s.aask("hello")
    assert r.provider == "loc" and len(s.messages) == 2


def test_session_token_budget(boot, script):
    boot(session={"token_budget": 15})
    s = legion_core.session()
    s.ask("one")
    with pytest.raises(RequestRefused, match="token budget"):
        s.ask("two")


def test_lru_evicts_but_sqlite_keeps(boot, script):
    lg = boot(session={"lru_size": 1})
    a = legion_core.session(id="a")
    a.ask("first")
    legion_core.session(id="b").ask("second")
    from legion_core.sessions import store_for

    assert "a" not in store_for(lg)._lru
    assert legion_core.session(id="a").messages[0].text == "first"
