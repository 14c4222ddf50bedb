"""Escalation on failed quality checks, its history, and exhaustion."""

import pytest

from legion_core.errors import EscalationExhausted
from legion_core.types import text_request

Q = "What day comes after Tuesday?"


async def test_empty_answer_escalates_to_the_next_tier(make_legion, script):
    lg = await make_legion()
    script.then("loc", "")
    script.then("cld", "Wednesday.")
    r = await lg.pipeline.chat(text_request(Q, escalate=True))
    assert r.text == "Wednesday." and r.provider == "cld"
    assert r.escalated is True
    hist = [(h.provider, h.tier, h.outcome, h.failures) for h in r.escalation_history]
    assert hist == [("loc", "local", "quality_failed", ["empty"]), ("cld", "cloud", "ok", [])]
    assert all(h.duration_ms >= 0 for h in r.escalation_history)
    assert "escalated 1" in r.final_resolution


async def test_passing_first_answer_is_not_escalated(make_legion, script):
    lg = await make_legion()
    r = await lg.pipeline.chat(text_request(Q, escalate=True))
    assert r.provider == "loc" and not r.escalated
    assert [h.outcome for h in r.escalation_history] == ["ok"]
    assert r.final_resolution.startswith("passed")


async def test_quality_check_callable_drives_escalation(make_legion, script):
    lg = await make_legion()
    script.then("loc", "meh").then("cld", "still meh").then("fro", "EXCELLENT")
    r = await lg.pipeline.chat(text_request(Q), quality_check=lambda req, resp: resp.text.isupper())
    assert r.provider == "fro" and r.escalated
    assert [h.outcome for h in r.escalation_history] == ["quality_failed", "quality_failed", "ok"]
    assert r.escalation_history[0].failures == ["quality_check"]


async def test_exhaustion_raises_with_history(make_legion, script):
    lg = await make_legion()
    script.then("loc", "").then("cld", "").then("fro", "")
    with pytest.raises(EscalationExhausted) as ei:
        await lg.pipeline.chat(text_request(Q, escalate=True, max_escalations=2))
    assert [h.provider for h in ei.value.history] == ["loc", "cld", "fro"]
    assert all(h.outcome == "quality_failed" for h in ei.value.history)
    assert lg.pipeline.audit.recent(1)[0]["status"] == "error"


async def test_max_escalations_limits_attempts(make_legion, script):
    lg = await make_legion()
    script.then("loc", "").then("cld", "")
    with pytest.raises(EscalationExhausted) as ei:
        await lg.pipeline.chat(text_request(Q, escalate=True, max_escalations=1))
    assert len(ei.value.history) == 2 and not script.calls["fro"]


async def test_repetition_and_too_short_checks(make_legion, script):
    lg = await make_legion()
    script.then("loc", "the same line\n" * 6).then("cld", "x").then("fro", "A real answer.")
    r = await lg.pipeline.chat(text_request(Q, escalate=True))
    assert [h.failures for h in r.escalation_history] == [["repetition"], ["too_short"], []]


async def test_invalid_json_check_when_json_was_asked(make_legion, script):
    lg = await make_legion()
    script.then("loc", "not json", "still not json").then("cld", '{"day": "Wednesday"}')
    r = await lg.pipeline.chat(text_request(Q, escalate=True, response_format={"type": "json_object"}))
    assert r.provider == "cld" and r.escalation_history[0].failures == ["invalid_json"]


async def test_escalation_enabled_in_settings(make_legion, script):
    lg = await make_legion(routing={"escalation": {"enabled": True, "max_escalations": 1}})
    script.then("loc", "")
    r = await lg.pipeline.chat(text_request(Q))
    assert r.escalated and r.provider == "cld"


async def test_no_escalation_when_off(make_legion, script):
    lg = await make_legion()
    script.then("loc", "")
    r = await lg.pipeline.chat(text_request(Q))
    assert r.provider == "loc" and r.text == "" and not r.escalated
