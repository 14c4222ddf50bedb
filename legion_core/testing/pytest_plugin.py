"""The `legion_conformance` pytest plugin (entry point `pytest11`): fixtures for provider tests.

Loaded by every pytest session in an environment where legion-core is installed, so this
module imports nothing heavy at import time; the fakes load inside the fixtures.

Fixtures:
- `free_port`: a loopback port nothing listens on (for "connection refused").
- `legion_fake_openai`: a started OpenAI-compatible fake (`legion_core.testing.fakes.openai`).
- `legion_fake_factory`: start any `FakeServer` subclass, stopped at teardown:
  `fake = legion_fake_factory(MyFake, api_key="k")`.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def free_port() -> int:
    """A loopback port that was free a moment ago: connecting to it is refused."""
    return _closed_port()


@pytest.fixture
def legion_fake_factory() -> Iterator[Callable[..., Any]]:
    started: list[Any] = []

    def start(cls: type, **kw: Any) -> Any:
        fake = cls(**kw).start()
        started.append(fake)
        return fake

    yield start
    for fake in reversed(started):
        fake.stop()


@pytest.fixture
def legion_fake_openai(legion_fake_factory: Callable[..., Any]) -> Any:
    """An OpenAI-compatible fake upstream, started on loopback (`.url`; API under `/v1`)."""
    from legion_core.testing.fakes.openai import FakeOpenAI

    return legion_fake_factory(FakeOpenAI)
