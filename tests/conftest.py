"""Shared test fixtures for the kernel's tests."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own LEGION_HOME and no plugin-selection env from the developer's shell."""
    home = tmp_path / "legion-home"
    (home / "settings").mkdir(parents=True)
    monkeypatch.setenv("LEGION_HOME", str(home))
    for var in ("LEGION_PLUGINS", "LEGION_DISABLE_PLUGINS", "LEGION_STRICT_PLUGINS",
                "LEGION_TRACE_PLUGINS", "OPENAI_API_KEY", "ANTHROPIC_API_KEY",
                "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_BEARER_TOKEN_BEDROCK",
                "OLLAMA_HOST", "VAULT_ADDR", "VAULT_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    yield home


@pytest.fixture(autouse=True)
def _no_env_overrides(monkeypatch):
    """`LEGION__*` variables from the developer's shell would override test settings."""
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
