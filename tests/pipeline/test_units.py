"""Unit tests for the small parts: the batch writer, step helpers, quality checks, cache keys."""

import pytest

from legion_core.builtin import quality
from legion_core.hooktypes import RequestContext
from legion_core.pipeline.cache import ResponseCache, cache_key, cacheable, storable
from legion_core.pipeline.steps import Compress, Turn, candidates_of
from legion_core.pipeline.writer import BatchWriter
from legion_core.settings.models import CacheSettings
from legion_core.store.db import Store
from legion_core.types import (
    CandidateScore,
    ChatResponse,
    RoutingDecision,
    TextBlock,
    ToolSpec,
    ToolUseBlock,
    text_request,
)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "t.db")
    yield s
    s.close()


def count(store, table):
    with store.lock:
        return store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_writer_batches_and_flushes(store):
    w = BatchWriter(store, interval=5.0)  # the timer never fires during the test
    w.start()
    for i in range(300):
        w.put("INSERT INTO state (key, value) VALUES (?, ?)", (f"k{i}", "1"))
    assert count(store, "state") == 0, "nothing is written on the caller's thread"
    w.flush()
    assert count(store, "state") == 300
    w.put("INSERT INTO state (key, value) VALUES (?, ?)", ("last", "1"))
    w.close()
    assert count(store, "state") == 301, "close() drains the queue"


def test_writer_survives_a_bad_batch(store):
    w = BatchWriter(store)
    w.start()
    w.put("INSERT INTO nowhere VALUES (?)", (1,))
    w.flush()
    w.put("INSERT INTO state (key, value) VALUES (?, ?)", ("ok", "1"))
    w.close()
    assert w.errors == 1 and count(store, "state") == 1


def test_writer_groups_statements_by_table_and_keeps_each_tables_order(store):
    """A batch alternates tables (an audit row, a cache entry, per request): statements on one
    table run together, one executemany per run of the same SQL, in their order within the table
    (a later write to a row still wins); statements it cannot place keep their position."""
    from legion_core.pipeline.writer import plan_batch

    a = "INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)"
    u = "UPDATE state SET value = value || '+' WHERE key = ?"
    c = "INSERT OR REPLACE INTO conversations (id, messages) VALUES (?, ?)"
    other = "PRAGMA user_version = 7"
    batch = [(a, ("k", "1")), (c, ("x", "[]")), (u, ("k",)), (c, ("y", "[]")), (a, ("k", "2")),
             (other, ()), (a, ("z", "1")), (c, ("x", "[1]"))]
    assert plan_batch(batch) == [
        (a, [("k", "1")]), (u, [("k",)]), (a, [("k", "2")]), (c, [("x", "[]"), ("y", "[]")]),
        (other, [()]),
        (a, [("z", "1")]), (c, [("x", "[1]")])]
    w = BatchWriter(store)
    w.start()
    for sql, params in batch:
        w.put(sql, params)
    w.close()
    with store.lock:
        rows = dict(store.conn.execute("SELECT key, value FROM state").fetchall())
        convs = dict(store.conn.execute("SELECT id, messages FROM conversations").fetchall())
    assert rows == {"k": "2", "z": "1"} and convs == {"x": "[1]", "y": "[]"}


def test_writer_not_started_writes_inline(store):
    w = BatchWriter(store)
    w.put("INSERT INTO state (key, value) VALUES (?, ?)", ("k", "1"))
    assert count(store, "state") == 1


def test_candidates_of_puts_the_choice_first():
    cands = [CandidateScore(provider=p, model="m", tier="local") for p in ("x", "y", "z")]
    cands.append(CandidateScore(provider="w", model="m", tier="local", dropped="circuit open"))
    d = RoutingDecision(provider="y", model="m", tier="local", candidates=cands)
    assert [c.provider for c in candidates_of(d)] == ["y", "x", "z"]
    # the chosen model listed twice (two tiers): the first listing leads, the other keeps its place at the end
    twice = [*cands[:3], CandidateScore(provider="y", model="m", tier="fleet")]
    d = RoutingDecision(provider="y", model="m", tier="local", candidates=twice)
    assert [(c.provider, c.tier) for c in candidates_of(d)] == [("y", "local"), ("x", "local"), ("z", "local"),
                                                                ("y", "fleet")]


def test_compress_step_prefers_the_request_level():
    step = Compress()
    t = Turn(request=text_request("Please  go.", compress_level=0), context=RequestContext(request_id="r"),
             decision=RoutingDecision(compress_level=3))
    step.run(None, t)
    assert t.routed_request.messages[0].text == "Please  go."
    t2 = Turn(request=text_request("Please  go."), context=RequestContext(request_id="r"),
              decision=RoutingDecision(compress_level=2))
    step.run(None, t2)
    assert t2.routed_request.messages[0].text == "Go."


def resp(text="", tools=False):
    content = [TextBlock(text=text)]
    if tools:
        content.append(ToolUseBlock(id="c", name="f"))
    return ChatResponse(content=content)


@pytest.mark.parametrize("check,text,tools,fails", [
    (quality.empty, "", False, ["empty"]),
    (quality.empty, "  ", True, []),
    (quality.too_short, "a", False, ["too_short"]),
    (quality.too_short, "ab", False, []),
    (quality.repetition, "All work and no play. " * 8, False, ["repetition"]),
    (quality.repetition, "A normal answer that says one thing and then another thing entirely.", False, []),
])
def test_builtin_checks(check, text, tools, fails):
    assert check(text_request("q"), resp(text, tools)) == fails


def test_invalid_json_only_when_json_was_asked():
    assert quality.invalid_json(text_request("q"), resp("not json")) == []
    req = text_request("q", response_format={"type": "json_object"})
    assert quality.invalid_json(req, resp("not json")) == ["invalid_json"]
    assert quality.invalid_json(req, resp('{"a": 1}')) == []


def test_cacheability_rules():
    s = CacheSettings()
    assert cacheable(text_request("q"), s) == (True, "")
    assert cacheable(text_request("q", cache=False), s)[0] is False
    assert cacheable(text_request("q", tools=[ToolSpec(name="rm")]), s)[0] is False
    assert cacheable(text_request("q", tools=[ToolSpec(name="rm")]),
                     CacheSettings(cache_side_effect_tools=True))[0] is True
    assert not storable(resp(""))
    assert storable(resp("ok"))


def test_cache_key_is_stable_and_ignores_metadata():
    a = text_request("q", metadata={"trace": 1}, caller="a")
    b = text_request("q", metadata={"trace": 2}, caller="b")
    assert cache_key(a) == cache_key(b) and len(cache_key(a)) == 64
    assert cache_key(a) != cache_key(text_request("q "))


def test_cache_key_tells_a_zero_sampling_parameter_from_an_unset_one():
    """temperature=0 (greedy) and no temperature (the provider's default, often 1) are different
    requests; 0 == False made the key drop the zero as if it were unset."""
    assert cache_key(text_request("q", temperature=0.0)) != cache_key(text_request("q"))
    assert cache_key(text_request("q", top_p=0.0)) != cache_key(text_request("q"))
    assert cache_key(text_request("q", temperature=0.0)) != cache_key(text_request("q", temperature=0.7))
    assert cache_key(text_request("q", stop=[])) == cache_key(text_request("q"))  # empty is unset


def test_cache_lru_bound(store):
    c = ResponseCache(store, CacheSettings(), lru_size=2)
    for i in range(3):
        c.put(f"k{i}", resp(f"a{i}"))
    assert list(c._lru) == ["k1", "k2"]
    assert c.get("k0").text == "a0", "evicted from memory, still in SQLite"
    c.close()
