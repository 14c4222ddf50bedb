"""resolve_credentials (provider settings, once at boot) and resolve_api_keys (gateway auth)."""

from __future__ import annotations

import json

from legion_core.providers.base import Provider
from legion_core.secrets import resolve_api_keys, resolve_credentials
from legion_core.settings.models import ProviderSettings


class Cloud(Provider):
    kind = "cloud"
    needs_credentials = True
    credential_keys = ("api_key", "secret_access_key")

    async def chat(self, request, model):  # pragma: no cover - never called here
        raise NotImplementedError

    def stream(self, request, model):  # pragma: no cover
        raise NotImplementedError


class Local(Provider):
    kind = "local"

    async def chat(self, request, model):  # pragma: no cover
        raise NotImplementedError

    def stream(self, request, model):  # pragma: no cover
        raise NotImplementedError


CLASSES = {"cloud": Cloud, "local": Local}


def _events(logs) -> list[dict]:
    return [json.loads(line) for line in logs().splitlines()]


def test_references_become_values_in_copies(vault, monkeypatch, logs):
    monkeypatch.setenv("LEGION_T_KEY", "sk-env-value")
    vault.put("legion/cloud", {"secret": "vault-secret-value", "token": "vault-token-value"})
    providers = {
        "a": ProviderSettings(type="cloud", api_key="env://LEGION_T_KEY",
                              secret_access_key="vault://secret/legion/cloud#secret",
                              session_token="vault://secret/legion/cloud#token",
                              region="us-east-1"),
        "b": ProviderSettings(type="cloud", api_key="sk-literal-value"),
    }
    resolved, unresolved = resolve_credentials(providers, CLASSES, None)
    a = resolved["a"]
    assert a.api_key == "sk-env-value"
    assert a.extra_options() == {"secret_access_key": "vault-secret-value",
                                 "session_token": "vault-token-value",  # any reference is resolved
                                 "region": "us-east-1"}  # plain options are left alone
    assert resolved["b"].api_key == "sk-literal-value"
    assert unresolved == {}
    assert [e for e in _events(logs) if e["level"] == "warning"] == []
    # The inputs still hold references: only the copies carry values.
    assert providers["a"].api_key == "env://LEGION_T_KEY"
    assert providers["a"].extra_options()["secret_access_key"] == "vault://secret/legion/cloud#secret"


def test_unresolved_reference_is_reported_once_per_provider(monkeypatch, logs):
    monkeypatch.delenv("LEGION_T_MISSING", raising=False)
    monkeypatch.delenv("LEGION_T_MISSING2", raising=False)
    providers = {"c": ProviderSettings(type="cloud", api_key="env://LEGION_T_MISSING",
                                       secret_access_key="env://LEGION_T_MISSING2")}
    resolved, unresolved = resolve_credentials(providers, CLASSES, None)
    assert resolved["c"].api_key is None  # never the reference itself
    assert unresolved == {"c": ["env://LEGION_T_MISSING", "env://LEGION_T_MISSING2"]}
    warnings = [e for e in _events(logs) if e["level"] == "warning"]
    assert len(warnings) == 1
    assert warnings[0]["provider"] == "c"
    assert warnings[0]["reference"] == "env://LEGION_T_MISSING, env://LEGION_T_MISSING2"


def test_quiet_mode_reports_without_logging(monkeypatch, logs):
    monkeypatch.delenv("LEGION_T_MISSING", raising=False)
    providers = {"c": ProviderSettings(type="cloud", api_key="env://LEGION_T_MISSING")}
    _, unresolved = resolve_credentials(providers, CLASSES, None, quiet=True)
    assert unresolved == {"c": ["env://LEGION_T_MISSING"]}
    assert [e for e in _events(logs) if e["level"] == "warning"] == []


def test_a_provider_that_needs_credentials_but_has_none_configured(logs):
    providers = {"c": ProviderSettings(type="cloud"), "l": ProviderSettings(type="local")}
    _, unresolved = resolve_credentials(providers, CLASSES, None)
    assert unresolved == {"c": ["api_key or secret_access_key (not set)"]}


def test_disabled_providers_are_not_resolved(vault, logs):
    vault.put("legion/cloud", {"secret": "never-fetched"})
    providers = {"off": ProviderSettings(type="cloud", enabled=False,
                                         api_key="vault://secret/legion/cloud#secret")}
    resolved, unresolved = resolve_credentials(providers, CLASSES, None)
    assert vault.reads() == 0
    assert resolved["off"].api_key is None
    assert unresolved == {}


def test_chain_with_a_vault_failure_falls_through_with_one_warning(vault, monkeypatch, logs):
    monkeypatch.setenv("VAULT_TOKEN", "s.wrong")
    monkeypatch.setenv("LEGION_T_KEY", "sk-fallback-value")
    providers = {"c": ProviderSettings(
        type="cloud", api_key=["vault://secret/legion/cloud#key", "env://LEGION_T_KEY"])}
    resolved, unresolved = resolve_credentials(providers, CLASSES, None)
    assert resolved["c"].api_key == "sk-fallback-value"
    assert unresolved == {}
    warnings = [e for e in _events(logs) if e["level"] == "warning"]
    assert len(warnings) == 1 and warnings[0]["provider"] == "c"
    assert "vault://secret/legion/cloud#key" in warnings[0]["error"] and "403" in warnings[0]["error"]


def test_a_chain_that_fails_entirely_names_the_chain_not_the_literal(vault, monkeypatch, logs):
    monkeypatch.setenv("VAULT_TOKEN", "s.wrong")
    monkeypatch.delenv("LEGION_T_MISSING", raising=False)
    providers = {"c": ProviderSettings(type="cloud",
                                       api_key=["vault://secret/legion/cloud#key", "env://LEGION_T_MISSING"])}
    _, unresolved = resolve_credentials(providers, CLASSES, None)
    assert unresolved == {"c": ["vault://secret/legion/cloud#key | env://LEGION_T_MISSING"]}


def test_gateway_api_keys(monkeypatch, logs):
    monkeypatch.setenv("LEGION_T_GW1", "gw-key-one")
    monkeypatch.delenv("LEGION_T_GW2", raising=False)
    keys = resolve_api_keys(["env://LEGION_T_GW1", "env://LEGION_T_GW2", "gw-literal-key",
                             ["env://LEGION_T_GW2", "gw-chained-key"], "nope://x"])
    assert keys == ["gw-key-one", "gw-literal-key", "gw-chained-key"]
    refs = [e.get("reference") for e in _events(logs) if e["level"] == "warning"]
    assert refs == ["env://LEGION_T_GW2", "nope://x"]
