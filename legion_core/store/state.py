"""Shared state: the small interface behind which cache-adjacent counters live (spend,
circuit state, rate counters), so one gateway uses SQLite and many replicas use Redis.

Values are JSON-able. `incr` is atomic within the backend (SQLite: one transaction under
the store's lock; Redis: INCRBYFLOAT), which is what keeps a budget from overshooting.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Protocol

from legion_core.store.db import Store


class SharedState(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...
    def set(self, key: str, value: Any, ttl: float | None = None) -> None: ...
    def incr(self, key: str, amount: float = 1.0, ttl: float | None = None) -> float: ...
    def delete(self, key: str) -> None: ...


class MemoryState:
    """Process-local state, for tests and embedded use."""

    def __init__(self) -> None:
        self._d: dict[str, tuple[Any, float | None]] = {}
        self._lock = threading.Lock()

    def _live(self, key: str) -> Any:
        v = self._d.get(key)
        if v is None:
            return None
        if v[1] is not None and v[1] < time.time():
            del self._d[key]
            return None
        return v

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            v = self._live(key)
            return default if v is None else v[0]

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        with self._lock:
            self._d[key] = (value, time.time() + ttl if ttl else None)

    def incr(self, key: str, amount: float = 1.0, ttl: float | None = None) -> float:
        with self._lock:
            v = self._live(key)
            new = (float(v[0]) if v else 0.0) + amount
            exp = v[1] if v else (time.time() + ttl if ttl else None)
            self._d[key] = (new, exp)
            return new

    def delete(self, key: str) -> None:
        with self._lock:
            self._d.pop(key, None)


_INCR_SQL = """
INSERT INTO state (key, value, expires) VALUES (:key, :first, :expires)
ON CONFLICT(key) DO UPDATE SET
  value = CASE WHEN state.expires IS NOT NULL AND state.expires < :now THEN excluded.value
               ELSE CAST(CAST(state.value AS REAL) + :amount AS TEXT) END,
  expires = CASE WHEN state.expires IS NOT NULL AND state.expires < :now THEN excluded.expires
                 ELSE state.expires END
RETURNING value
"""


class SQLiteState:
    """State persisted in the `state` table: survives a restart."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, key: str, default: Any = None) -> Any:
        with self.store.lock:
            row = self.store.conn.execute(
                "SELECT value, expires FROM state WHERE key = ?", (key,)).fetchone()
        if row is None or (row[1] is not None and row[1] < time.time()):
            return default
        return json.loads(row[0])

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        with self.store.lock:
            self.store.conn.execute(
                "INSERT OR REPLACE INTO state (key, value, expires) VALUES (?, ?, ?)",
                (key, json.dumps(value), time.time() + ttl if ttl else None))

    def incr(self, key: str, amount: float = 1.0, ttl: float | None = None) -> float:
        # One statement (SQLite >= 3.35): atomic, and 3-5x cheaper than a read-modify-write
        # transaction. An expired row restarts from `amount` with a fresh TTL; a live one keeps its TTL.
        now = time.time()
        with self.store.lock:
            row = self.store.conn.execute(_INCR_SQL, {
                "key": key, "first": json.dumps(float(amount)), "amount": float(amount),
                "expires": now + ttl if ttl else None, "now": now}).fetchone()
        return float(row[0])

    def delete(self, key: str) -> None:
        with self.store.lock:
            self.store.conn.execute("DELETE FROM state WHERE key = ?", (key,))
