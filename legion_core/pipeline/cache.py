"""Tier 0: the exact-match response cache.

Keyed by a hash of the *normalized request* (messages, system, tools, sampling parameters,
response format and any model the caller explicitly named) and never by the model the router
picked, so the second identical question is answered without routing or calling anyone.
An in-memory LRU sits in front of the SQLite `cache` table (lookups stay in microseconds),
and a Bloom filter of the stored keys (`KeyFilter`) answers most misses without reading
SQLite; writes go through the batch writer. Entries expire after `llm.cache.ttl_seconds`.
"""

from __future__ import annotations

import hashlib
import mmap
import sqlite3
import threading
import time
from collections import OrderedDict
from typing import Any

import orjson

from legion_core.settings.models import CacheSettings
from legion_core.store.db import Store, cache_k64
from legion_core.types import ChatRequest, ChatResponse, Message, is_auto_model

_KEY_FIELDS = ("system", "tools", "tool_choice", "temperature", "top_p", "max_tokens", "stop",
               "response_format", "thinking", "provider", "tier")


_NOT_CACHED = {"attempts", "escalation_history", "routing"}


def _message_doc(m: Message) -> dict[str, Any]:
    """`m.model_dump(mode="json", exclude_none=True)`; built by hand for plain-text messages
    (the common case, at a fraction of pydantic's cost). Keys must not change: they are stored."""
    if type(m.content) is str:
        d: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.name is not None:
            d["name"] = m.name
        return d
    return m.model_dump(mode="json", exclude_none=True)


def cache_key(request: ChatRequest) -> str:
    """sha256 of the request's answer-determining fields, canonically serialized."""
    doc: dict[str, Any] = {"messages": [_message_doc(m) for m in request.messages]}
    fields = request.__dict__
    for f in _KEY_FIELDS:
        v = fields[f]
        # unset: None, False or an empty list/dict (not `v in (None, [], {}, False)`: 0 == False)
        if v is None or v is False or (not v and type(v) in (list, dict)):
            continue
        doc[f] = [t.model_dump(mode="json") for t in v] if f == "tools" else v
    if not is_auto_model(request.model):  # "route for me" in any spelling: one key
        doc["model"] = request.model
    if request.intent.capability:  # asking for "reasoning" must not get a "basic" answer back
        doc["capability"] = request.intent.capability
    raw = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()


def cacheable(request: ChatRequest, settings: CacheSettings) -> tuple[bool, str]:
    """(may this request use the cache, why not)."""
    if not settings.enabled:
        return False, "cache disabled"
    if not request.cache:
        return False, "bypassed by the request"
    if not settings.cache_side_effect_tools and any(t.side_effects for t in request.tools):
        return False, "request has tools with side effects"
    return True, ""


class KeyFilter:
    """Which keys the `cache` table may hold: a Bloom filter over the keys present when the
    process started and every key it stored since. A key it never saw is a miss without a
    SQLite read (a new prompt: most requests); "maybe" reads SQLite as before, so a false
    positive (measured: about 1 in 5,000 at a million keys, 1 in 400 at two million) costs only
    that read. It cannot see keys another process stores, so `ResponseCache` drops it as soon as
    the batch writer notices one (`BatchWriter.foreign_writes`); a key can be missed in the
    moment before that. Fixed size (4 MiB, allocated at once): memory does not grow with it.

    Blocked: a key's four bits lie in one 64-byte block (one cache line). Spread over the whole
    4 MiB, each lookup and store touched three or four random lines and pages; on this
    project's VM hosts those misses cost ~10 µs per request under load (measured with the adds
    taken out)."""

    BLOCKS = 1 << 16  # × 64 bytes = 4 MiB
    _BLOCK_MASK = BLOCKS - 1

    def __init__(self) -> None:
        # anonymous memory: zero-filled and page-aligned, so a block is exactly one cache line
        self.bits = mmap.mmap(-1, self.BLOCKS * 64)

    def _positions(self, key: str) -> tuple[int, int, int, int, int]:
        """The block's first byte and four bit numbers (0-511) inside it."""
        h = hash(key) & 0xFFFF_FFFF_FFFF_FFFF  # a str caches its hash
        return (h & self._BLOCK_MASK) << 6, (h >> 16) & 511, (h >> 25) & 511, (h >> 34) & 511, (h >> 43) & 511

    def add(self, key: str) -> None:
        bits = self.bits
        base, *ps = self._positions(key)
        for p in ps:
            bits[base + (p >> 3)] |= 1 << (p & 7)

    def __contains__(self, key: str) -> bool:
        bits = self.bits
        base, *ps = self._positions(key)
        for p in ps:
            if not bits[base + (p >> 3)] & (1 << (p & 7)):
                return False
        return True


#: A table with more live keys than this at start keeps reading SQLite for every miss.
KEY_FILTER_CAPACITY = 2_000_000


def storable(response: ChatResponse) -> bool:
    """Only complete, non-empty answers are worth replaying."""
    return response.stop_reason in ("end_turn", "stop_sequence", "max_tokens") and bool(
        response.text.strip() or response.tool_calls)


class ResponseCache:
    def __init__(self, store: Store, settings: CacheSettings, writer: Any = None,
                 lru_size: int = 2048) -> None:
        self.store = store
        self.settings = settings
        self.writer = writer
        self.lru_size = lru_size
        self._lru: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self.hits = 0
        self.misses = 0
        # A read-only connection of its own: a lookup never waits for the writer's transaction
        # (WAL lets readers run beside it). In-memory stores share the one connection.
        self._read_lock = threading.Lock()
        self._reader: sqlite3.Connection | None = None
        if store.path is not None:
            self._reader = sqlite3.connect(str(store.path), check_same_thread=False)
            self._reader.execute("PRAGMA query_only=1")
        # Only with a writer that reports other processes' writes (see KeyFilter).
        self._filter: KeyFilter | None = None
        if writer is not None and not getattr(writer, "foreign_writes", True):
            self._filter = self._load_filter()

    def _load_filter(self) -> KeyFilter | None:
        sql = "SELECT key FROM cache WHERE expires IS NULL OR expires > ? LIMIT ?"
        args = (time.time(), KEY_FILTER_CAPACITY + 1)
        if self._reader is not None:
            with self._read_lock:
                keys = self._reader.execute(sql, args).fetchall()
        else:
            with self.store.lock:
                keys = self.store.conn.execute(sql, args).fetchall()
        if len(keys) > KEY_FILTER_CAPACITY:
            return None
        f = KeyFilter()
        for (k,) in keys:
            f.add(k)
        return f

    def _may_hold(self, key: str) -> bool:
        """False when the table certainly does not hold `key` (no SQLite read needed)."""
        f = self._filter
        if f is None:
            return True
        if self.writer.foreign_writes:
            self._filter = None  # another process writes here: its keys are not in the filter
            return True
        return key in f

    def _fetch(self, key: str) -> tuple[Any, ...] | None:
        sql = "SELECT response, expires FROM cache WHERE k64 = ? AND key = ?"
        args = (cache_k64(key), key)
        if self._reader is not None:
            with self._read_lock:
                return self._reader.execute(sql, args).fetchone()
        with self.store.lock:
            return self.store.conn.execute(sql, args).fetchone()

    def close(self) -> None:
        if self._reader is not None:
            with self._read_lock:
                self._reader.close()
            self._reader = None

    def get(self, key: str) -> ChatResponse | None:
        now = time.time()
        hit = self._lru.get(key)
        if hit is not None:
            self._lru.move_to_end(key)
        elif self._may_hold(key):
            row = self._fetch(key)
            if row is not None:
                hit = (row[1] or float("inf"), row[0])
                self._remember(key, hit)
        if hit is None or hit[0] < now:
            if hit is not None:
                self._lru.pop(key, None)
            self.misses += 1
            return None
        self.hits += 1
        if self.writer is not None:
            self.writer.put("UPDATE cache SET hits = hits + 1 WHERE k64 = ? AND key = ?", (cache_k64(key), key))
        return ChatResponse.model_validate_json(hit[1])

    def put(self, key: str, response: ChatResponse, ttl: float | None = None) -> None:
        ttl = self.settings.ttl_seconds if ttl is None else ttl
        now = time.time()
        expires = now + ttl
        # how this answer was routed is not part of it: a hit gets its own tier-0 routing
        raw = response.model_dump_json(exclude=_NOT_CACHED)
        self._remember(key, (expires, raw))
        if self._filter is not None:
            self._filter.add(key)
        sql = ("INSERT OR REPLACE INTO cache (k64, key, response, created, expires, hits) "
               "VALUES (?, ?, ?, ?, ?, 0)")
        row = (cache_k64(key), key, raw, now, expires)
        if self.writer is not None:
            self.writer.put(sql, row)
        else:
            with self.store.lock:
                self.store.conn.execute(sql, row)

    def clear(self) -> int:
        self._lru.clear()  # the key filter keeps its bits: a cleared key is only a false positive
        with self.store.lock:
            return self.store.conn.execute("DELETE FROM cache").rowcount

    def _remember(self, key: str, value: tuple[float, str]) -> None:
        self._lru[key] = value
        self._lru.move_to_end(key)
        while len(self._lru) > self.lru_size:
            self._lru.popitem(last=False)
