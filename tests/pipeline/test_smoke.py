from legion_core.types import text_request


async def test_simple_chat_goes_local(make_legion, script):
    lg = await make_legion()
    r = await lg.pipeline.chat(text_request("What day comes after Tuesday?"))
    assert r.provider == "loc" and r.tier == "local"
    assert r.text == "loc:small says hello"
    assert r.routing is not None and r.routing.provider == "loc"
    assert [a.outcome for a in r.attempts] == ["ok"]
