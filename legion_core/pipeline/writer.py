"""Batched SQLite writes off the request path.

The pipeline never waits for the disk: audit rows, cache entries and conversation turns are
queued here and a background thread commits them in batches (one transaction per batch).
`flush()` waits for everything queued so far; `close()` flushes and stops the thread.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from legion_core.log import get_logger
from legion_core.store.db import Store

log = get_logger("legion.writer")

Write = tuple[str, tuple[Any, ...]]  # (sql, params)


class BatchWriter:
    def __init__(self, store: Store, *, batch_size: int = 256, interval: float = 0.2) -> None:
        self.store = store
        self.batch_size = batch_size
        self.interval = interval
        self._q: queue.Queue[Write | threading.Event | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.errors = 0

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="legion-writer", daemon=True)
            self._thread.start()

    def put(self, sql: str, params: tuple[Any, ...]) -> None:
        """Queue one statement; returns at once."""
        if self._thread is None:  # not started (e.g. a bare pipeline in a test): write now
            self._commit([(sql, params)])
            return
        self._q.put((sql, params))

    def flush(self, timeout: float = 10.0) -> None:
        """Block until everything queued before this call is committed."""
        if self._thread is None or not self._thread.is_alive():
            self._drain_inline()
            return
        ev = threading.Event()
        self._q.put(ev)
        ev.wait(timeout)

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._q.put(None)
            self._thread.join(10)
        self._thread = None
        self._drain_inline()

    # ------------------------------------------------------------ internals
    def _drain_inline(self) -> None:
        batch: list[Write] = []
        while True:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, threading.Event):
                item.set()
            elif item is not None:
                batch.append(item)
        if batch:
            self._commit(batch)

    def _run(self) -> None:
        while True:
            try:
                item = self._q.get(timeout=self.interval)
            except queue.Empty:
                continue
            batch: list[Write] = []
            events: list[threading.Event] = []
            stop = False
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    events.append(item)
                else:
                    batch.append(item)
                if len(batch) >= self.batch_size:
                    break
                try:
                    item = self._q.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._commit(batch)
            for ev in events:
                ev.set()
            if stop:
                return

    def _commit(self, batch: list[Write]) -> None:
        try:
            with self.store.lock:
                c = self.store.conn
                c.execute("BEGIN")
                try:
                    for sql, params in batch:
                        c.execute(sql, params)
                    c.execute("COMMIT")
                except BaseException:
                    c.execute("ROLLBACK")
                    raise
            self.written += len(batch)
        except Exception as e:  # noqa: BLE001 - a failed batch must not kill the writer
            self.errors += 1
            log.warning("batched write failed", error=f"{type(e).__name__}: {e}", rows=len(batch))
