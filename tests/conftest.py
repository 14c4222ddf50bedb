"""Shared test fixtures for the kernel's tests."""

from __future__ import annotations

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
