"""Batched SQLite writes off the request path.

The pipeline never waits for the disk: audit rows, cache entries and conversation turns are
queued here and a background thread commits them in batches (one transaction per batch).
`flush()` waits for everything queued so far; `close()` flushes and stops the thread.

It also notices another process writing to the same database (`foreign_writes`), which the
tier-0 cache needs to know (see `pipeline.cache.KeyFilter`).
"""

from __future__ import annotations

import re
import threading
from collections import deque
from typing import Any

from legion_core.log import get_logger
from legion_core.store.db import Store

log = get_logger("legion.writer")

Write = tuple[str, tuple[Any, ...]]  # (sql, params)


_TABLE = re.compile(r"\s*(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?|DELETE\s+FROM)"
                    r"\s+([A-Za-z_][\w]*)", re.IGNORECASE)
_tables: dict[str, str | None] = {}


def _table(sql: str) -> str | None:
    """The one table a plain INSERT/UPDATE/DELETE writes, else None (remembered per statement)."""
    t = _tables.get(sql, "")
    if t == "":
        m = _TABLE.match(sql)
        t = _tables[sql] = m.group(1).lower() if m else None
        if len(_tables) > 1024:
            _tables.clear()
    return t


def plan_batch(batch: list[Write]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """The batch as (sql, rows) runs for `executemany`. The request path queues an audit row
    and a cache entry by turns, so runs of the same statement were one row long; statements on
    different tables commute (no triggers or foreign keys here), so each table's statements are
    gathered, in their order, and then split into runs. A statement on no single table (or an
    unknown shape) is a barrier: what came before it runs first, what came after, after."""
    out: list[tuple[str, list[tuple[Any, ...]]]] = []
    groups: dict[str, list[tuple[str, list[tuple[Any, ...]]]]] = {}  # table -> its runs
    for sql, params in batch:
        table = _table(sql)
        if table is None:
            for earlier in groups.values():
                out += earlier
            groups.clear()
            out.append((sql, [params]))
            continue
        runs = groups.get(table)
        if runs is None:
            groups[table] = [(sql, [params])]
        elif runs[-1][0] == sql:
            runs[-1][1].append(params)
        else:
            runs.append((sql, [params]))
    for rest in groups.values():
        out += rest
    return out


class BatchWriter:
    """Statements are appended to a deque (no lock, no wake-up on the request path); the thread
    wakes every `interval` seconds, or on `flush()`, and commits what accumulated."""

    def __init__(self, store: Store, *, batch_size: int = 512, interval: float = 0.05) -> None:
        self.store = store
        self.batch_size = batch_size
        self.interval = interval
        self._q: deque[Write] = deque()
        self._wake = threading.Event()
        self._stop = False
        self._flushed = threading.Condition()
        self._generation = 0  # batches fully committed
        self._thread: threading.Thread | None = None
        self.written = 0
        self.errors = 0
        #: Set (for good) once a connection other than this writer's committed to the database:
        #: another process shares it. SQLite's `data_version` moves only for such commits.
        self.foreign_writes = False
        self._data_version = self._read_data_version()

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="legion-writer", daemon=True)
            self._thread.start()

    def put(self, sql: str, params: tuple[Any, ...]) -> None:
        """Queue one statement; returns at once. Within a batch, statements on different tables
        may run in another order than queued (see `plan_batch`); on one table, never."""
        if self._thread is None:  # not started (e.g. a bare pipeline in a test): write now
            self._commit([(sql, params)])
            return
        self._q.append((sql, params))

    def flush(self, timeout: float = 10.0) -> None:
        """Block until everything queued before this call is committed."""
        if self._thread is None or not self._thread.is_alive():
            self._drain()
            return
        with self._flushed:
            # the pass running now may have started before this call: wait for the next one too
            target = self._generation + 2
            self._waiters += 1
        self._wake.set()
        with self._flushed:
            self._flushed.wait_for(lambda: self._generation >= target, timeout)
            self._waiters -= 1

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._stop = True
            self._wake.set()
            self._thread.join(10)
        self._thread = None
        self._drain()

    # ------------------------------------------------------------ internals
    _waiters = 0

    def _drain(self) -> None:
        while self._q:
            batch = [self._q.popleft() for _ in range(min(len(self._q), self.batch_size))]
            self._commit(batch)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                if self._q:
                    self._drain()  # each commit checks for foreign writes first
                else:
                    self._check_foreign()  # idle: still notice another process writing
            finally:
                with self._flushed:
                    self._generation += 1
                    self._flushed.notify_all()
                    if self._waiters:
                        self._wake.set()
            if self._stop:
                self._drain()
                return

    def _read_data_version(self) -> int | None:
        try:
            with self.store.lock:
                return int(self.store.conn.execute("PRAGMA data_version").fetchone()[0])
        except Exception:  # noqa: BLE001 - without it, foreign writes go unnoticed: assume some
            self.foreign_writes = True
            return None

    def _check_foreign(self) -> None:
        """Called before each commit, and on every idle pass of the thread (every `interval` s)."""
        if self.foreign_writes:
            return
        v = self._read_data_version()
        if v != self._data_version:
            self.foreign_writes = True
            log.info("another process writes to the database; the tier-0 key filter is off")

    def _commit(self, batch: list[Write]) -> None:
        self._check_foreign()
        try:
            with self.store.lock:
                c = self.store.conn
                c.execute("BEGIN")
                try:
                    # one executemany per run of identical statements: the loop stays in C, so
                    # this thread holds the GIL as little as possible (the request path needs it)
                    for sql, rows in plan_batch(batch):
                        c.executemany(sql, rows)
                    c.execute("COMMIT")
                except BaseException:
                    c.execute("ROLLBACK")
                    raise
            self.written += len(batch)
        except Exception as e:  # noqa: BLE001 - a failed batch must not kill the writer
            self.errors += 1
            log.warning("batched write failed", error=f"{type(e).__name__}: {e}", rows=len(batch))
