"""Usage, cost, pricing overrides, max cost, session budgets, and the audit log."""

import json

import pytest

from legion_core.errors import NoProviderAvailable, ProviderUnavailable, RequestRefused
from legion_core.hookspecs import hookimpl
from legion_core.pipeline.metering import estimate_tokens
from legion_core.types import ChatResponse, TextBlock, Usage, text_request

Q = "Compare three database designs for a multi-tenant billing system, with trade-offs."


async def test_cost_from_catalog_prices_and_max_cost(make_legion, script):
    lg = await make_legion()
    script.usage["cld"] = Usage(input_tokens=1000, output_tokens=500)
    r = await lg.pipeline.chat(text_request("hi", provider="cld"))
    assert r.cost_usd == pytest.approx((1000 * 3 + 500 * 15) / 1e6)
    assert not r.usage.estimated
    row = lg.pipeline.audit.recent(1)[0]
    assert row["cost_usd"] == pytest.approx(r.cost_usd) and row["max_cost_usd"] >= row["cost_usd"]


async def test_max_cost_prices_the_most_expensive_viable_candidate(make_legion, script):
    lg = await make_legion()
    script.usage["loc"] = Usage(input_tokens=1000, output_tokens=1000)
    r = await lg.pipeline.chat(text_request("What day comes after Tuesday?"))
    assert r.provider == "loc" and r.cost_usd == 0.0
    row = lg.pipeline.audit.recent(1)[0]
    assert row["max_cost_usd"] == pytest.approx((1000 * 15 + 1000 * 75) / 1e6)  # frontier's price
    s = lg.pipeline.audit.stats()
    assert s["saved_usd"] == pytest.approx(row["max_cost_usd"])


async def test_pricing_override(make_legion, script):
    lg = await make_legion(pricing={"cld/big": {"input": 1.0, "output": 2.0}})
    script.usage["cld"] = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    r = await lg.pipeline.chat(text_request("hi", provider="cld"))
    assert r.cost_usd == pytest.approx(3.0)


async def test_usage_is_estimated_when_the_provider_reports_none(make_legion, script):
    lg = await make_legion()
    script.usage["loc"] = None
    script.then("loc", "x" * 40)
    r = await lg.pipeline.chat(text_request("What day comes after Tuesday?"))
    assert r.usage.estimated and r.usage.output_tokens == estimate_tokens("x" * 40) == 10
    assert r.usage.input_tokens > 0


async def test_session_token_budget(make_legion, script):
    lg = await make_legion(session={"token_budget": 20})
    r = await lg.pipeline.chat(text_request("one?", session_id="s1", cache=False))
    assert r.usage.total_tokens == 15
    await lg.pipeline.chat(text_request("two?", session_id="s1", cache=False))
    with pytest.raises(RequestRefused, match="token budget"):
        await lg.pipeline.chat(text_request("three?", session_id="s1", cache=False))
    await lg.pipeline.chat(text_request("other session", session_id="s2"))  # unaffected
    assert lg.pipeline.audit.recent(5, status="refused")[0]["request_id"]


async def test_audit_row_for_success(make_legion, script):
    lg = await make_legion()
    req = text_request("What day comes after Tuesday?", caller="alice")
    r = await lg.pipeline.chat(req)
    row = lg.pipeline.audit.recent(1, caller="alice")[0]
    assert row["request_id"] == req.request_id and row["status"] == "ok"
    assert (row["provider"], row["model"], row["tier"]) == ("loc", "small", "local")
    assert row["intent"]["privacy"] == "normal" and "complexity" in row["intent"]
    assert {c["provider"] for c in row["candidates"]} == {"loc", "cld", "fro"}
    assert row["attempts"][0]["outcome"] == "ok"
    assert row["latency_ms"] >= row["overhead_ms"] >= 0
    assert row["input_tokens"] == r.usage.input_tokens


async def test_audit_row_for_failure_and_dropped_reasons(make_legion, script):
    lg = await make_legion()
    req = text_request("hi", provider="loc")
    script.then("loc", ProviderUnavailable("down", provider="loc"))
    with pytest.raises(NoProviderAvailable):
        await lg.pipeline.chat(req)
    row = lg.pipeline.audit.recent(1)[0]
    assert row["request_id"] == req.request_id and row["status"] == "error"
    assert "no_provider" in row["error"]
    dropped = {c["provider"]: c.get("dropped") for c in row["candidates"]}
    assert dropped["loc"] is None and dropped["cld"], "why cld was dropped is recorded"


async def test_audit_is_written_off_the_request_path(make_legion, script):
    lg = await make_legion()
    await lg.pipeline.chat(text_request("hi"))
    # the row is queued for the background writer; recent() flushes before reading
    assert lg.pipeline.writer._thread is not None and lg.pipeline.writer._thread.is_alive()
    assert len(lg.pipeline.audit.recent(10)) == 1


async def test_stats(make_legion, script):
    lg = await make_legion()
    await lg.pipeline.chat(text_request("What day comes after Tuesday?"))
    await lg.pipeline.chat(text_request("What day comes after Tuesday?"))
    script.then("loc", ProviderUnavailable("x", provider="loc"))
    await lg.pipeline.chat(text_request("What day comes after Monday?"))
    s = lg.pipeline.audit.stats()
    assert s["requests"] == 3 and s["cache_hits"] == 1 and s["failovers"] == 1 and s["errors"] == 0
    assert {m["provider"] for m in s["by_model"]} == {"loc", "cld"}


async def test_unknown_audit_filter_is_a_clear_error(make_legion):
    lg = await make_legion()
    with pytest.raises(ValueError, match="unknown audit filter 'colour'"):
        lg.pipeline.audit.recent(5, colour="red")


class SpendGuard:
    def __init__(self):
        self.seen = []

    @hookimpl
    def legion_after_chat(self, request, response, context):
        self.seen.append((response.cost_usd, response.routing.provider, response.cache_hit))


async def test_after_chat_sees_cost_and_routing_and_cache_hits(make_legion, script):
    g = SpendGuard()
    lg = await make_legion(plugins=(g,))
    script.usage["cld"] = Usage(input_tokens=1000, output_tokens=0)
    await lg.pipeline.chat(text_request("hi", provider="cld"))
    await lg.pipeline.chat(text_request("hi", provider="cld"))
    assert g.seen == [(pytest.approx(0.003), "cld", False), (0.0, "cld", True)]


async def test_provider_response_without_model_gets_the_candidates(make_legion, script):
    lg = await make_legion()
    script.then("loc", ChatResponse(content=[TextBlock(text="ok")]))
    r = await lg.pipeline.chat(text_request("What day comes after Tuesday?"))
    assert (r.provider, r.model, r.tier) == ("loc", "small", "local")


async def test_prices_follow_catalog_changes(make_legion, script):
    from legion_core.types import ModelInfo

    lg = await make_legion()
    script.usage["cld"] = Usage(input_tokens=1_000_000, output_tokens=0)
    r1 = await lg.pipeline.chat(text_request("a", provider="cld"))
    lg.registry.set_discovered("cld", [ModelInfo(id="big", input_price=5.0, output_price=0.0)])
    r2 = await lg.pipeline.chat(text_request("b", provider="cld"))
    assert (r1.cost_usd, r2.cost_usd) == (pytest.approx(3.0), pytest.approx(5.0))


def test_audit_candidates_json_is_reused_only_for_the_same_frozen_candidates():
    """The `candidates` column is memoised by the candidates' identity (the router shares
    frozen ones between decisions); a different or a mutable candidate is never served from it."""
    import orjson

    from legion_core.pipeline.audit import _CandidatesJSON
    from legion_core.routing.router import FrozenCandidateScore
    from legion_core.types import CandidateScore

    memo = _CandidatesJSON()
    a = FrozenCandidateScore(provider="loc", model="small", tier="local", score=1.0)
    b = FrozenCandidateScore(provider="cld", model="big", tier="cloud", dropped="circuit open")
    first = memo([a, b])
    assert orjson.loads(first) == [{"provider": "loc", "model": "small", "tier": "local", "score": 1.0},
                                   {"provider": "cld", "model": "big", "tier": "cloud", "score": 0.0,
                                    "dropped": "circuit open"}]
    assert memo([a, b]) is first  # the same objects in the same order: the same text
    assert orjson.loads(memo([b, a]))[0]["provider"] == "cld"
    c = FrozenCandidateScore(provider="loc", model="small", tier="local", score=2.0)
    assert orjson.loads(memo([c, b]))[0]["score"] == 2.0
    m = CandidateScore(provider="loc", model="small", tier="local")
    assert orjson.loads(memo([m]))[0]["score"] == 0.0
    m.score = 5.0  # a mutable candidate changed in place: its new value is written
    assert orjson.loads(memo([m]))[0]["score"] == 5.0


async def test_prices_follow_pricing_overrides_and_catalog_versions(make_legion, script):
    """Prices are remembered per (provider, model); new settings or a catalog change re-read them."""
    from legion_core.settings.models import Price
    from legion_core.types import ModelInfo

    lg = await make_legion()
    m = lg.pipeline.meter
    assert m.prices("cld", "big") == (3.0, 15.0)
    lg.settings.llm.pricing = {"cld/big": Price(input=1.0, output=2.0)}
    assert m.prices("cld", "big") == (1.0, 2.0)
    lg.settings.llm.pricing = {}
    assert m.prices("cld", "big") == (3.0, 15.0)
    lg.registry.set_discovered("cld", [ModelInfo(id="big", input_price=7.0, output_price=8.0)])
    now = next(mi for mi in lg.registry.models("cld") if mi.id == "big")
    assert m.prices("cld", "big") == (now.input_price, now.output_price)


async def test_identical_candidate_lists_are_stored_once(make_legion, script):
    """Most requests are routed over the same candidates: the list (the largest part of a row,
    about 100 bytes per catalog model) is stored once in `audit_candidates` and referenced."""
    lg = await make_legion()
    for i in range(20):
        await lg.pipeline.chat(text_request(f"What day comes after Tuesday? #{i}", provider="loc"))
    await lg.pipeline.chat(text_request("hi", provider="cld"))  # another target: another list
    rows = lg.pipeline.audit.recent(50)
    assert len(rows) == 21
    assert all({c["provider"] for c in r["candidates"]} == {"loc", "cld", "fro"} for r in rows)
    assert rows[0]["candidates"] != rows[1]["candidates"]  # each row reads back its own list
    with lg.store.lock:
        conn = lg.store.conn
        assert conn.execute("SELECT count(*) FROM audit_candidates").fetchone()[0] == 2
        assert conn.execute("SELECT count(*) FROM audit WHERE candidates IS NOT NULL").fetchone()[0] == 0
    assert lg.pipeline.audit.recent(50, provider="cld")[0]["candidates"] == rows[0]["candidates"]


async def test_rows_written_before_the_candidates_table_still_read_back(make_legion, script):
    lg = await make_legion()
    old = [{"provider": "loc", "model": "small", "tier": "local", "score": 1.0}]
    with lg.store.lock:
        lg.store.conn.execute("INSERT INTO audit (request_id, ts, status, candidates) VALUES (?, ?, ?, ?)",
                              ("req-old", 1.0, "ok", json.dumps(old)))
    assert lg.pipeline.audit.recent(5, status="ok")[0]["candidates"] == old


async def test_a_failed_write_does_not_leave_rows_pointing_at_nothing(make_legion, script):
    lg = await make_legion()
    await lg.pipeline.chat(text_request("first", provider="loc"))
    lg.pipeline.writer.flush()
    with lg.store.lock:
        lg.store.conn.execute("DELETE FROM audit_candidates")  # as if that batch had failed
    lg.pipeline.writer.errors += 1
    await lg.pipeline.chat(text_request("second", provider="loc"))
    assert [len(r["candidates"] or []) for r in lg.pipeline.audit.recent(5)] == [3, 3]
