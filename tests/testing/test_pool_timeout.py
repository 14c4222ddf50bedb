"""`PooledProvider._bounded`: the `timeout_total` cap on a whole provider call, told apart from
a cancellation that comes from elsewhere (a client that went away)."""

from __future__ import annotations

import asyncio
import time

import pytest

from legion_core.errors import ProviderTimeout
from legion_core.providers.pool import PooledProvider
from legion_core.settings.models import ProviderSettings


class Bare(PooledProvider):
    async def chat(self, request, model):  # type: ignore[no-untyped-def]  # pragma: no cover
        raise NotImplementedError

    async def stream(self, request, model):  # type: ignore[no-untyped-def]  # pragma: no cover
        raise NotImplementedError


def provider(total: float | None) -> PooledProvider:
    return Bare("p", ProviderSettings(base_url="http://127.0.0.1:9", timeout_total=total))


async def test_a_call_over_the_total_becomes_a_provider_timeout() -> None:
    with pytest.raises(ProviderTimeout, match="timeout_total=0.05s"):
        await provider(0.05)._bounded(asyncio.sleep(5))
    assert asyncio.current_task().cancelling() == 0  # the timer's cancellation was taken back


async def test_an_answer_in_time_is_returned_and_the_timer_never_fires_later() -> None:
    async def answer() -> str:
        await asyncio.sleep(0.01)
        return "ok"

    assert await provider(0.1)._bounded(answer()) == "ok"
    await asyncio.sleep(0.2)  # a timer left behind would cancel this task here


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    task = asyncio.ensure_future(provider(5)._bounded(asyncio.sleep(5)))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_outside_cancellation_racing_the_timer_is_not_swallowed() -> None:
    """The timer fires and the caller cancels before the call resumes: the caller's cancellation
    must win (`uncancel()` leaves one pending), not turn into a timeout."""
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(5)

    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(provider(0.05)._bounded(slow()))
    await started.wait()  # the timer is set
    loop.call_at(loop.time() + 0.06, task.cancel)  # due just after it
    time.sleep(0.1)  # block the loop: both are due when it next runs, the timer first
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_no_total_means_no_cap() -> None:
    assert await provider(None)._bounded(asyncio.sleep(0.01, result=3)) == 3
