"""The SharedState contract, run against every backend: memory, SQLite (a real file, across a
restart) and Redis (the local server; skipped only when none is listening)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from legion_core.store.db import MIGRATIONS, Store
from legion_core.store.state import MemoryState, SQLiteState


def _redis():
    redis = pytest.importorskip("redis")
    client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1)
    try:
        client.ping()
    except Exception:  # noqa: BLE001
        pytest.skip("no Redis server on 127.0.0.1:6379")
    from legion_core.store.redis_state import RedisState

    return RedisState(client=client, prefix=f"legion-test-{uuid.uuid4().hex[:8]}:")


@pytest.fixture(params=["memory", "sqlite", "redis"])
def state(request, tmp_path):
    if request.param == "memory":
        return MemoryState()
    if request.param == "sqlite":
        return SQLiteState(Store(tmp_path / "legion.db"))
    return _redis()


def test_get_set_delete(state):
    assert state.get("k", "dflt") == "dflt"
    state.set("k", {"a": [1, 2]})
    assert state.get("k") == {"a": [1, 2]}
    state.delete("k")
    assert state.get("k") is None


def test_ttl_expires(state):
    state.set("t", 1, ttl=0.2)
    assert state.get("t") == 1
    time.sleep(0.35)
    assert state.get("t") is None


def test_incr_is_atomic_under_threads(state):
    def work():
        for _ in range(50):
            state.incr("spend", 0.5)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state.get("spend") == pytest.approx(200.0)


def test_incr_keeps_the_first_ttl(state):
    state.incr("period", 1.0, ttl=0.3)
    time.sleep(0.15)
    state.incr("period", 1.0, ttl=10)  # must not extend the period
    time.sleep(0.25)
    assert state.get("period") is None


def test_sqlite_state_survives_a_restart(tmp_path):
    db = tmp_path / "legion.db"
    SQLiteState(Store(db)).incr("spend:2026-11-25", 1.25)
    assert SQLiteState(Store(db)).get("spend:2026-11-25") == 1.25


def test_migrations_apply_once_to_an_empty_database(tmp_path):
    s = Store(tmp_path / "x.db")
    names = {r["name"] for r in s.db["_migrations"].rows}
    assert names == {m.__name__ for m in MIGRATIONS}
    assert {"audit", "cache", "state", "conversations"} <= set(s.db.table_names())
    assert Store(tmp_path / "x.db").migrate() == []


async def test_legion_uses_the_configured_redis_backend(tmp_path):
    _redis()  # skips when no server
    from legion_core.lifecycle import Legion
    from legion_core.plugins.manager import PluginManager
    from legion_core.store.redis_state import RedisState

    pm = PluginManager()
    pm.load(entry_points=False)
    legion = Legion(home=tmp_path, plugins=pm, settings={"llm": {"state": {
        "backend": "redis", "url": "redis://127.0.0.1:6379/0", "prefix": "legion-test-boot:"}}})
    await legion.start()
    try:
        assert isinstance(legion.state, RedisState)
        legion.state.set("ping", 1, ttl=5)
        assert legion.state.get("ping") == 1
    finally:
        await legion.shutdown()
