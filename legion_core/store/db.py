"""The one SQLite database (`$LEGION_HOME/data/legion.db`): audit log, tier-0 cache, spend,
conversations and shared state. Migrations are a list of functions, applied in order and
recorded in `_migrations` (the way simonw/llm does it). Append; never edit a shipped one.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import sqlite_utils

Migration = Callable[[sqlite_utils.Database], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_audit(db: sqlite_utils.Database) -> None:
    db.table("audit").create(
        {
            "request_id": str, "ts": float, "caller": str, "dialect": str, "intent": str,
            "provider": str, "model": str, "tier": str, "rule": str, "candidates": str,
            "attempts": str, "status": str, "error": str, "latency_ms": float,
            "overhead_ms": float, "input_tokens": int, "output_tokens": int, "cost_usd": float,
            "max_cost_usd": float, "cache_hit": int, "failovers": int, "escalated": int,
            "stream": int,
        },
        pk="request_id",
    )
    db.table("audit").create_index(["ts"])


@migration
def m002_cache(db: sqlite_utils.Database) -> None:
    db.table("cache").create(
        {"key": str, "response": str, "created": float, "expires": float, "hits": int},
        pk="key",
    )


@migration
def m003_state(db: sqlite_utils.Database) -> None:
    # Generic shared state (spend counters, circuit state, rate counters): see store/state.py.
    db.table("state").create({"key": str, "value": str, "expires": float}, pk="key")


@migration
def m004_conversations(db: sqlite_utils.Database) -> None:
    db.table("conversations").create(
        {"id": str, "instructions": str, "messages": str, "created": float, "updated": float},
        pk="id",
    )


@migration
def m005_audit_candidates(db: sqlite_utils.Database) -> None:
    # Each distinct candidate list once (most requests are routed over the same candidates, and
    # the list is most of a row: ~100 bytes per catalog model); audit rows point at it by id.
    db.table("audit_candidates").create({"id": str, "candidates": str}, pk="id")
    db.table("audit").add_column("candidates_id", str)


def cache_k64(key: str) -> int:
    """The cache table's index key: the first 60 bits of the entry's sha256 key (hex).

    An index of 64-character text keys put each new entry on a random page of a large index,
    and the SQLite writer's CPU followed the pages it dirtied: an integer index is a fifth of
    the size (14 → 10 µs per request written, batches of 200; 13 → 9 at 1000). Two keys that
    share the 60 bits (about 1 in 600,000 at two million entries) keep only the newer entry,
    and a lookup compares the whole key, so a collision evicts but never answers wrongly.
    A key that is not hex (callers of `ResponseCache` may choose their own) is hashed first."""
    try:
        if len(key) >= 15:
            return int(key[:15], 16)
    except ValueError:
        pass
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") >> 4


@migration
def m006_cache_integer_index(db: sqlite_utils.Database) -> None:
    # rows are appended in rowid order; only the small integer index takes random inserts
    # one transaction: a process stopped half-way leaves the old table, and the next start redoes it
    conn = db.conn
    conn.create_function("legion_cache_k64", 1, cache_k64, deterministic=True)
    conn.execute("BEGIN")
    try:
        conn.execute("CREATE TABLE cache_new (k64 INTEGER, key TEXT, response TEXT, created FLOAT, "
                     "expires FLOAT, hits INTEGER)")
        conn.execute("INSERT INTO cache_new (k64, key, response, created, expires, hits) "
                     "SELECT legion_cache_k64(key), key, response, created, expires, hits FROM cache "
                     "ORDER BY created")
        conn.execute("DROP TABLE cache")
        conn.execute("ALTER TABLE cache_new RENAME TO cache")
        conn.execute("DELETE FROM cache WHERE rowid NOT IN (SELECT max(rowid) FROM cache GROUP BY k64)")
        conn.execute("CREATE UNIQUE INDEX cache_k64 ON cache (k64)")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class Store:
    """Thread-safe access to the database. Writers batch; see `pipeline.audit`."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path and str(path) != ":memory:" else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
        else:
            conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self.lock = threading.RLock()
        self.migrate()

    def migrate(self) -> list[str]:
        """Apply pending migrations; returns the names applied now."""
        applied: list[str] = []
        with self.lock:
            if "_migrations" not in self.db.table_names():
                self.db.table("_migrations").create({"name": str, "applied": str}, pk="name")
            done = {r["name"] for r in self.db.table("_migrations").rows}
            for fn in MIGRATIONS:
                if fn.__name__ in done:
                    continue
                fn(self.db)
                self.db.table("_migrations").insert(
                    {"name": fn.__name__, "applied": sqlite_utils.db.datetime.datetime.utcnow().isoformat()}
                )
                applied.append(fn.__name__)
        return applied

    def close(self) -> None:
        with self.lock:
            self.conn.close()
