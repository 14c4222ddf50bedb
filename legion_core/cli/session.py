"""A booted Legion driven from synchronous CLI code.

The kernel runs on an event loop in a background thread; the CLI's main thread reads input
and waits on futures. That keeps Ctrl-C in the main thread, where it can cancel the current
answer without tearing the session down.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from legion_core.lifecycle import Legion

T = TypeVar("T")


class CliSession:
    def __init__(self, legion: Legion) -> None:
        self.legion = legion
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="legion-cli-loop", daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run to completion; Ctrl-C cancels the coroutine and re-raises KeyboardInterrupt."""
        fut = self.submit(coro)
        try:
            return fut.result(timeout)
        except KeyboardInterrupt:
            fut.cancel()
            raise

    def start(self, probe_timeout: float = 2.0) -> Legion:
        self.run(self.legion.start())
        if self.legion.discovery is not None:
            try:
                self.run(self.legion.discovery.refresh(timeout=probe_timeout))
            except Exception:  # noqa: BLE001 - a failed probe is reported per provider, not fatal
                pass
        return self.legion

    def close(self) -> None:
        try:
            self.run(self.legion.shutdown(), timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)

    def __enter__(self) -> CliSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def booted(probe: bool = True, **legion_kw: Any) -> CliSession:
    from legion_core.cli.context import make_legion

    s = CliSession(make_legion(**legion_kw))
    try:
        if probe:
            s.start()
        else:
            s.run(s.legion.start())
    except BaseException:
        s.loop.call_soon_threadsafe(s.loop.stop)
        raise
    return s

