"""Fixtures for the settings tests (the settings directory and `write` live in tests/conftest.py)."""

from __future__ import annotations

import pytest


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is at the time (pytest swaps it per test), so logging
    configured by one test never points at another test's closed capture file."""

    def write(self, text: str) -> int:
        import sys

        return sys.stderr.write(text)

    def flush(self) -> None:
        import sys

        sys.stderr.flush()


@pytest.fixture(autouse=True)
def _logging_follows_stderr():
    yield
    from legion_core import log

    log.configure(stream=_CurrentStderr())
