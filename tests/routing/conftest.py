"""Fixtures for router tests: in-test provider classes registered through the real plugin
manager, a `ProviderRegistry` built from `LLMSettings`, a steppable clock."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.routing.routing_fakes import Clock, build


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_router(clock: Clock) -> Any:
    """`make_router(providers={...}, routing={...}, plugins=(...), now=..., memory=...)`."""

    def factory(providers: dict[str, Any], *, now: dt.datetime | None = None, **kw: Any) -> Any:
        return build(providers, clock=clock, now=now, **kw)

    return factory
