"""Fixtures for the secrets tests: a clean environment, a fake Vault on loopback, captured logs."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fresh_vault_cache(monkeypatch):
    from legion_core import secrets

    secrets.VAULT.clear_cache()
    monkeypatch.delenv("LEGION_VAULT_TIMEOUT", raising=False)
    monkeypatch.delenv("VAULT_NAMESPACE", raising=False)
    yield
    secrets.VAULT.clear_cache()


@pytest.fixture(scope="module")
def _vault_server():
    from legion_core.testing.fakes.vault import FakeVault

    with FakeVault(token="s.test-root-token") as server:
        yield server


@pytest.fixture
def vault(_vault_server, monkeypatch):
    """A real KV v2 server on loopback, with VAULT_ADDR and VAULT_TOKEN pointing at it."""
    v = _vault_server
    v.store.clear()
    v.faults.clear()
    v.calls.clear()
    v.requests.clear()
    monkeypatch.setenv("VAULT_ADDR", v.url)
    monkeypatch.setenv("VAULT_TOKEN", v.token)
    return v


@pytest.fixture
def logs():
    """Everything structlog writes, as one string (call it); restores stderr logging after."""
    import io

    from legion_core import log

    buf = io.StringIO()
    log.configure("debug", "json", stream=buf)
    yield buf.getvalue
    log.configure()


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
