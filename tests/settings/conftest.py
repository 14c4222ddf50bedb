"""Fixtures for the settings tests: a settings directory and a clean `LEGION__*` environment."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _no_env_overrides(monkeypatch):
    for var in list(os.environ):
        if var.upper().startswith("LEGION__"):
            monkeypatch.delenv(var)


@pytest.fixture
def home(_isolated_home) -> Path:
    return _isolated_home


@pytest.fixture
def write(home):
    """`write("10-llm.json", {...})` (or raw text) into the settings directory; returns the path."""

    def _write(name: str, doc: Any) -> Path:
        p = home / "settings" / name
        p.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=2))
        return p

    return _write


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
