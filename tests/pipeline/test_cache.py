"""Tier 0: hit, miss, bypass, restart, TTL, side-effect tools, streaming hits."""

import pytest

from legion_core.pipeline import cache as tier0
from legion_core.types import Message, TextBlock, ToolSpec, text_request

Q = "What day comes after Tuesday?"


async def test_second_identical_request_is_a_tier0_hit(make_legion, script):
    lg = await make_legion()
    r1 = await lg.pipeline.chat(text_request(Q))
    r2 = await lg.pipeline.chat(text_request(Q))
    assert script.total() == 1, "the second answer came from the cache, not a provider"
    assert r2.cache_hit and r2.tier == "tier-0" and not r1.cache_hit
    assert (r2.provider, r2.model, r2.text) == (r1.provider, r1.model, r1.text)
    assert r2.cost_usd == 0.0 and r2.attempts == []
    assert r2.request_id != r1.request_id


async def test_key_ignores_the_routed_model(make_legion, script):
    lg = await make_legion()
    await lg.pipeline.chat(text_request(Q))
    # the router would now pick another provider: the cache still answers
    lg.health.record_failure("loc", "unavailable", retry_after=600)
    r = await lg.pipeline.chat(text_request(Q))
    assert r.cache_hit and r.provider == "loc" and script.total() == 1


@pytest.mark.parametrize("change", [{"temperature": 0.9}, {"system": "Be terse."},
                                    {"max_tokens": 5}, {"stop": ["END"]},
                                    {"model": "cld/big"},
                                    {"intent": {"capability": "reasoning"}}])
async def test_answer_determining_fields_miss(make_legion, script, change):
    lg = await make_legion()
    await lg.pipeline.chat(text_request(Q))
    r = await lg.pipeline.chat(text_request(Q, **change))
    assert not r.cache_hit and script.total() == 2


async def test_auto_model_names_share_a_key():
    names = ["legion/auto", "auto", "default", "legion", "legion-auto", "", " Legion/Auto ", "Default"]
    keys = {tier0.cache_key(text_request(Q, model=n)) for n in names}
    assert keys == {tier0.cache_key(text_request(Q))}
    assert tier0.cache_key(text_request(Q, model="cld/big")) not in keys


@pytest.mark.parametrize("first,second", [("auto", "default"), ("default", "legion/auto"),
                                          ("Legion/Auto", "auto")])
async def test_auto_model_names_hit_each_others_cache_entry(make_legion, script, first, second):
    lg = await make_legion()
    await lg.pipeline.chat(text_request(Q, model=first))
    r = await lg.pipeline.chat(text_request(Q, model=second))
    assert r.cache_hit and script.total() == 1


async def test_per_request_bypass(make_legion, script):
    lg = await make_legion()
    await lg.pipeline.chat(text_request(Q))
    r = await lg.pipeline.chat(text_request(Q, cache=False))
    assert not r.cache_hit and script.total() == 2


async def test_survives_restart(make_legion, script, tmp_path):
    lg = await make_legion()
    await lg.pipeline.chat(text_request(Q))
    await lg.shutdown()
    lg2 = await make_legion()
    r = await lg2.pipeline.chat(text_request(Q))
    assert r.cache_hit and script.total() == 1


async def test_ttl_expiry(make_legion, script, monkeypatch):
    lg = await make_legion(cache={"ttl_seconds": 60})
    await lg.pipeline.chat(text_request(Q))
    real = tier0.time.time
    monkeypatch.setattr(tier0.time, "time", lambda: real() + 61)
    r = await lg.pipeline.chat(text_request(Q))
    assert not r.cache_hit and script.total() == 2


async def test_side_effect_tools_not_cached_by_default(make_legion, script):
    lg = await make_legion()
    tools = [ToolSpec(name="send_email")]
    await lg.pipeline.chat(text_request(Q, tools=tools))
    await lg.pipeline.chat(text_request(Q, tools=tools))
    assert script.total() == 2
    safe = [ToolSpec(name="get_time", side_effects=False)]
    await lg.pipeline.chat(text_request(Q, tools=safe))
    r = await lg.pipeline.chat(text_request(Q, tools=safe))
    assert r.cache_hit and script.total() == 3


async def test_cache_disabled_in_settings(make_legion, script):
    lg = await make_legion(cache={"enabled": False})
    await lg.pipeline.chat(text_request(Q))
    await lg.pipeline.chat(text_request(Q))
    assert script.total() == 2


async def test_failed_answers_are_not_cached(make_legion, script):
    lg = await make_legion()
    script.then("loc", "")  # empty: not worth replaying
    await lg.pipeline.chat(text_request(Q))
    r = await lg.pipeline.chat(text_request(Q))
    assert not r.cache_hit and script.total() == 2


async def test_streaming_request_is_served_from_cache(make_legion, script):
    lg = await make_legion()
    r1 = await lg.pipeline.chat(text_request(Q))
    chunks = [c async for c in lg.pipeline.stream(text_request(Q, stream=True))]
    assert chunks[0].type == "route" and chunks[0].cache_hit and chunks[0].tier == "tier-0"
    assert "".join(c.text for c in chunks if c.type == "text_delta") == r1.text
    assert chunks[-1].type == "done" and chunks[-1].response.cache_hit
    assert script.total() == 1


async def test_cache_hit_is_audited(make_legion, script):
    lg = await make_legion()
    await lg.pipeline.chat(text_request(Q))
    await lg.pipeline.chat(text_request(Q))
    rows = lg.pipeline.audit.recent(2)
    assert [r["cache_hit"] for r in rows] == [1, 0]
    assert rows[0]["tier"] == "tier-0" and rows[0]["input_tokens"] == 0


@pytest.mark.parametrize("message", [
    Message(role="user", content="What day follows Tuesday?"),
    Message(role="user", content="hi", name="alice"),
    Message(role="assistant", content=""),
    Message(role="user", content=[TextBlock(text="look"), TextBlock(text="again")]),
])
def test_message_key_document_is_pydantics_dump(message: Message) -> None:
    """Cache keys are stored: the hand-built document for plain text must be exactly pydantic's."""
    assert tier0._message_doc(message) == message.model_dump(mode="json", exclude_none=True)


# ------------------------------------------------------------------ the key filter
def _counting_fetch(cache, monkeypatch):
    reads = []
    real = cache._fetch

    def fetch(key):
        reads.append(key)
        return real(key)

    monkeypatch.setattr(cache, "_fetch", fetch)
    return reads


async def test_a_new_prompt_misses_without_reading_sqlite(make_legion, script, monkeypatch):
    lg = await make_legion()
    reads = _counting_fetch(lg.pipeline.cache, monkeypatch)
    await lg.pipeline.chat(text_request(Q))
    assert reads == [], "the key filter knew the key was never stored"
    lg.pipeline.cache._lru.clear()  # evicted from memory: only SQLite has it now
    lg.pipeline.writer.flush()
    r = await lg.pipeline.chat(text_request(Q))
    assert r.cache_hit and len(reads) == 1 and script.total() == 1


async def test_the_filter_is_rebuilt_from_the_table_at_start(make_legion, script, monkeypatch):
    lg = await make_legion()
    await lg.pipeline.chat(text_request(Q))
    await lg.shutdown()
    lg2 = await make_legion()
    assert lg2.pipeline.cache._filter is not None
    r = await lg2.pipeline.chat(text_request(Q))
    assert r.cache_hit and script.total() == 1


async def test_another_process_writing_turns_the_filter_off(make_legion, script, tmp_path):
    """A second connection stands for another process (`legion chat` beside `legion serve`):
    its entry must be found, though this process's filter never saw the key."""
    import sqlite3
    import time

    from legion_core.store.db import cache_k64

    lg = await make_legion()
    donor = await make_legion(home=tmp_path / "donor")  # produces a real cache row for Q
    await donor.pipeline.chat(text_request(Q))
    donor.pipeline.writer.flush()
    row = donor.store.conn.execute("SELECT key, response, created, expires, hits FROM cache").fetchone()
    await donor.shutdown()
    other = sqlite3.connect(str(lg.store.path), isolation_level=None)
    other.execute("INSERT INTO cache (k64, key, response, created, expires, hits) VALUES (?, ?, ?, ?, ?, ?)",
                  (cache_k64(row[0]), row[0], row[1], time.time(), time.time() + 3600, 0))
    other.close()
    lg.pipeline.writer.flush()  # a pass of the writer thread notices the foreign commit
    assert lg.pipeline.writer.foreign_writes
    r = await lg.pipeline.chat(text_request(Q))
    assert r.cache_hit and lg.pipeline.cache._filter is None
    assert script.total() == 1, "only the donor called a model"


def test_a_table_too_large_for_the_filter_keeps_reading_sqlite(tmp_path, monkeypatch):
    from legion_core.pipeline.writer import BatchWriter
    from legion_core.settings.models import CacheSettings
    from legion_core.store.db import Store
    from legion_core.types import ChatResponse, TextBlock, Usage

    store = Store(tmp_path / "legion.db")
    writer = BatchWriter(store)
    first = tier0.ResponseCache(store, CacheSettings(), writer)
    answer = ChatResponse(content=[TextBlock(text="Wednesday.")], stop_reason="end_turn", usage=Usage())
    for i in range(3):
        first.put(f"k{i}", answer)
    assert first._filter is not None and "k1" in first._filter and "never" not in first._filter
    first.close()
    monkeypatch.setattr(tier0, "KEY_FILTER_CAPACITY", 2)
    second = tier0.ResponseCache(store, CacheSettings(), writer)
    assert second._filter is None and second.get("k2").text == "Wednesday."
    second.close()


def test_key_filter_never_misses_a_stored_key_and_rarely_claims_one():
    """The filter's contract: every added key is reported present (a false negative would hide a
    cached answer); a key never added is reported present rarely (each such costs a SQLite read)."""
    import hashlib

    f = tier0.KeyFilter()
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(200_000)]
    for k in keys:
        f.add(k)
    assert all(k in f for k in keys)
    others = [hashlib.sha256(f"other {i}".encode()).hexdigest() for i in range(200_000)]
    false_positives = sum(k in f for k in others)
    assert false_positives / len(others) < 1 / 2000  # 200k keys: measured under 1 in 100,000
