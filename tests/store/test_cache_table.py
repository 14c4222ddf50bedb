"""The tier-0 cache table: indexed by a 60-bit integer from the key (m006), whole key compared."""

from __future__ import annotations

import sqlite3

import sqlite_utils

from legion_core.pipeline.cache import ResponseCache
from legion_core.settings.models import CacheSettings
from legion_core.store import db as dbmod
from legion_core.store.db import MIGRATIONS, Store, cache_k64
from legion_core.types import ChatResponse, TextBlock

HEX_A = "a" * 15 + "0" * 49
HEX_B = "a" * 15 + "1" * 49  # the same first 60 bits as HEX_A, a different key


def resp(text: str) -> ChatResponse:
    return ChatResponse(content=[TextBlock(text=text)], model="m", provider="p", stop_reason="end_turn")


def test_k64_is_the_hex_prefix_and_any_other_key_is_hashed():
    assert cache_k64("0123456789abcdef" + "0" * 48) == 0x0123456789ABCDE
    assert cache_k64(HEX_A) == cache_k64(HEX_B)
    assert cache_k64("k0") != cache_k64("k1")
    assert 0 <= cache_k64("not hex at all, and long enough") < 2**63


def test_keys_sharing_the_index_value_evict_each_other_but_never_answer_for_each_other(tmp_path):
    store = Store(tmp_path / "x.db")
    c = ResponseCache(store, CacheSettings(), lru_size=1)
    c.put(HEX_A, resp("answer A"))
    c.put(HEX_B, resp("answer B"))  # same k64: replaces A's row
    c._lru.clear()  # from SQLite only
    assert c.get(HEX_B).text == "answer B"
    c._lru.clear()
    assert c.get(HEX_A) is None, "a collision must evict, never serve B's answer for A"
    c.close()
    store.close()


def test_m006_moves_a_text_keyed_cache_to_the_integer_index(tmp_path, monkeypatch):
    """A database from before m006 (cache keyed by text) keeps its entries."""
    path = tmp_path / "old.db"
    monkeypatch.setattr(dbmod, "MIGRATIONS", [m for m in MIGRATIONS if m.__name__ < "m006"])
    old = Store(path)
    old.conn.executemany("INSERT INTO cache (key, response, created, expires, hits) VALUES (?, ?, ?, ?, ?)",
                         [(HEX_A, resp("A").model_dump_json(), 1.0, None, 3),
                          ("c" * 64, resp("C").model_dump_json(), 2.0, None, 0),
                          (HEX_B, resp("B").model_dump_json(), 3.0, None, 1)])
    old.close()
    monkeypatch.setattr(dbmod, "MIGRATIONS", MIGRATIONS)
    new = Store(path)
    cols = [r[1] for r in new.conn.execute("PRAGMA table_info(cache)")]
    assert cols[:2] == ["k64", "key"]
    c = ResponseCache(new, CacheSettings())
    assert c.get("c" * 64).text == "C"
    assert c.get(HEX_B).text == "B"  # of the two colliding keys, the newer one stays
    assert c.get(HEX_A) is None
    assert new.conn.execute("SELECT count(*) FROM cache").fetchone()[0] == 2
    with sqlite3.connect(path) as raw:
        idx = raw.execute("SELECT sql FROM sqlite_master WHERE name = 'cache_k64'").fetchone()[0]
    assert "UNIQUE" in idx.upper()
    c.close()
    new.close()
    assert "m006_cache_integer_index" in {r["name"] for r in sqlite_utils.Database(path)["_migrations"].rows}


def test_m006_is_all_or_nothing(tmp_path, monkeypatch):
    """A failure half-way leaves the text-keyed table as it was, ready for the next start."""
    path = tmp_path / "old.db"
    monkeypatch.setattr(dbmod, "MIGRATIONS", [m for m in MIGRATIONS if m.__name__ < "m006"])
    old = Store(path)
    old.conn.execute("INSERT INTO cache (key, response, created, expires, hits) VALUES (?, ?, ?, ?, ?)",
                     (HEX_A, resp("A").model_dump_json(), 1.0, None, 0))
    old.close()

    def broken(key: str) -> int:
        raise RuntimeError("interrupted")

    monkeypatch.setattr(dbmod, "MIGRATIONS", MIGRATIONS)
    monkeypatch.setattr(dbmod, "cache_k64", broken)
    try:
        Store(path)
    except Exception:  # noqa: BLE001 - sqlite3 reports the user function's failure its own way
        pass
    with sqlite3.connect(path) as raw:
        cols = [r[1] for r in raw.execute("PRAGMA table_info(cache)")]
        assert cols[0] == "key" and raw.execute("SELECT count(*) FROM cache").fetchone()[0] == 1
        assert raw.execute("SELECT count(*) FROM sqlite_master WHERE name = 'cache_new'").fetchone()[0] == 0
    monkeypatch.undo()
    monkeypatch.setattr(dbmod, "MIGRATIONS", MIGRATIONS)
    again = Store(path)
    assert ResponseCache(again, CacheSettings()).get(HEX_A).text == "A"
    again.close()
