"""vault:// against a real HTTP server on loopback speaking the KV v2 API."""

from __future__ import annotations

import json

import httpx
import pytest

from legion_core import secrets
from legion_core.errors import SecretError
from legion_core.secrets import VaultClient, resolve, tls_verify
from legion_core.testing.fakes.base import _free_port


def _err(ref) -> str:
    with pytest.raises(SecretError) as info:
        resolve(ref)
    return str(info.value)


def test_fake_speaks_kv_v2_on_the_wire(vault):
    """The fake itself: the envelope real Vault returns, and its error bodies."""
    h = {"X-Vault-Token": vault.token}
    w = httpx.post(f"{vault.url}/v1/secret/data/legion/openai", headers=h,
                   json={"data": {"api_key": "sk-wire"}})
    assert w.status_code == 200 and w.json()["data"]["version"] == 1
    r = httpx.get(f"{vault.url}/v1/secret/data/legion/openai", headers=h).json()
    assert r["data"]["data"] == {"api_key": "sk-wire"}
    assert set(r["data"]["metadata"]) >= {"created_time", "deletion_time", "destroyed", "version"}
    assert {"request_id", "lease_id", "renewable", "lease_duration", "wrap_info", "warnings"} <= set(r)
    denied = httpx.get(f"{vault.url}/v1/secret/data/legion/openai", headers={"X-Vault-Token": "nope"})
    assert (denied.status_code, denied.json()) == (403, {"errors": ["permission denied"]})
    missing = httpx.get(f"{vault.url}/v1/secret/data/legion/none", headers=h)
    assert (missing.status_code, missing.json()) == (404, {"errors": []})


def test_reads_the_key_from_data_data(vault):
    vault.put("legion/openai", {"api_key": "sk-from-vault", "org": "org-1"})
    assert resolve("vault://secret/legion/openai#api_key") == "sk-from-vault"
    req = vault.requests[-1]
    assert req["path"] == "/v1/secret/data/legion/openai"
    assert req["headers"]["X-Vault-Token"] == vault.token


def test_the_first_segment_is_the_mount(vault):
    vault.mounts.add("kv")
    vault.put("team/anthropic", {"key": "sk-kv-mount"}, mount="kv")
    assert resolve("vault://kv/team/anthropic#key") == "sk-kv-mount"
    assert vault.requests[-1]["path"] == "/v1/kv/data/team/anthropic"


def test_values_are_cached_per_path(vault):
    vault.put("legion/openai", {"api_key": "sk-1", "org": "org-1"})
    assert resolve("vault://secret/legion/openai#api_key") == "sk-1"
    assert resolve("vault://secret/legion/openai#org") == "org-1"
    assert resolve("vault://secret/legion/openai#api_key") == "sk-1"
    assert vault.reads() == 1
    vault.put("legion/other", {"k": "v-other"})
    assert resolve("vault://secret/legion/other#k") == "v-other"
    assert vault.reads() == 2


def test_a_single_key_secret_needs_no_fragment(vault):
    vault.put("legion/single", {"token": "only-value"})
    assert resolve("vault://secret/legion/single") == "only-value"
    vault.put("legion/two", {"a": "1111", "b": "2222"})
    assert "name one with #<key>" in _err("vault://secret/legion/two")


def test_wrong_token_is_a_clear_403(vault, monkeypatch):
    vault.put("legion/openai", {"api_key": "sk-hidden-403"})
    monkeypatch.setenv("VAULT_TOKEN", "s.wrong")
    msg = _err("vault://secret/legion/openai#api_key")
    assert "vault://secret/legion/openai#api_key" in msg and "403" in msg and "permission denied" in msg
    assert "sk-hidden-403" not in msg and "s.wrong" not in msg


def test_missing_path_and_missing_key(vault):
    vault.put("legion/openai", {"api_key": "sk-hidden-404"})
    assert "no secret at secret/legion/nope" in _err("vault://secret/legion/nope#api_key")
    msg = _err("vault://secret/legion/openai#apikey")
    assert "key 'apikey' not found" in msg and "keys present: api_key" in msg
    assert "sk-hidden-404" not in msg


def test_deleted_latest_version(vault):
    vault.put("legion/gone", {"k": "old-value"})
    httpx.delete(f"{vault.url}/v1/secret/data/legion/gone", headers={"X-Vault-Token": vault.token})
    assert "deleted" in _err("vault://secret/legion/gone#k")


def test_server_errors_are_reported_with_vaults_message(vault):
    vault.put("legion/openai", {"api_key": "x-value"})
    vault.fail_next(503, {"errors": ["Vault is sealed"]})
    msg = _err("vault://secret/legion/openai#api_key")
    assert "HTTP 503" in msg and "Vault is sealed" in msg
    # Failures are not cached: the next boot (or retry) reads again.
    assert resolve("vault://secret/legion/openai#api_key") == "x-value"


def test_unreachable_vault(monkeypatch):
    addr = f"http://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("VAULT_ADDR", addr)
    monkeypatch.setenv("VAULT_TOKEN", "t")
    msg = _err("vault://secret/legion/openai#api_key")
    assert f"Vault at {addr} is unreachable" in msg
    assert "vault://secret/legion/openai#api_key" in msg


def test_timeout(vault, monkeypatch):
    vault.put("legion/slow", {"k": "slow-value"})
    vault.fail_next(None, delay=1.0)
    monkeypatch.setenv("LEGION_VAULT_TIMEOUT", "0.2")
    msg = _err("vault://secret/legion/slow#k")
    assert "did not answer within 0.2 s" in msg


def test_bad_timeout_setting(vault, monkeypatch):
    monkeypatch.setenv("LEGION_VAULT_TIMEOUT", "soon")
    assert "LEGION_VAULT_TIMEOUT must be a number" in _err("vault://secret/legion/x#k")


def test_missing_vault_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.vault-token either
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    assert "VAULT_ADDR is not set" in _err("vault://secret/legion/openai#api_key")
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:1")
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    assert "VAULT_TOKEN is not set" in _err("vault://secret/legion/openai#api_key")


def test_malformed_reference():
    assert "expected vault://<mount>/<path>#<key>" in _err("vault://openai#api_key")


def test_kv_v1_answer_is_explained(vault):
    vault.put("legion/v1", {"k": "v"})
    vault.fail_next(200, {"data": "not-an-object"})
    assert "not a KV v2 secret" in _err("vault://secret/legion/v1#k")


def test_namespace_header(vault, monkeypatch):
    vault.put("legion/ns", {"k": "ns-value"})
    monkeypatch.setenv("VAULT_NAMESPACE", "team-a")
    assert resolve("vault://secret/legion/ns#k") == "ns-value"
    assert vault.requests[-1]["headers"]["X-Vault-Namespace"] == "team-a"


def test_vault_failure_in_a_chain_falls_through_with_a_warning(vault, monkeypatch, logs):
    monkeypatch.setenv("VAULT_TOKEN", "s.wrong")
    monkeypatch.setenv("LEGION_FALLBACK", "from-env-fallback")
    value = resolve(["vault://secret/legion/openai#api_key", "env://LEGION_FALLBACK"])
    assert value == "from-env-fallback"
    events = [json.loads(line) for line in logs().splitlines()]
    warn = [e for e in events if e["level"] == "warning"]
    assert len(warn) == 1
    assert warn[0]["reference"] == "vault://secret/legion/openai#api_key"
    assert "403" in warn[0]["error"]


def test_explicit_client_configuration(vault, monkeypatch):
    monkeypatch.delenv("VAULT_ADDR")
    monkeypatch.delenv("VAULT_TOKEN")
    vault.put("legion/explicit", {"k": "explicit-value"})
    global_before = secrets.VAULT.requests
    client = VaultClient(addr=vault.url, token=vault.token, timeout=1.0)
    assert client.resolve("secret/legion/explicit#k") == "explicit-value"
    assert client.requests == 1
    assert secrets.VAULT.requests == global_before  # the process-wide client is separate
    assert client.resolve("secret/legion/explicit#k") == "explicit-value"
    assert client.requests == 1


def test_token_from_vault_login_file(vault, monkeypatch, tmp_path):
    monkeypatch.delenv("VAULT_TOKEN")
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".vault-token").write_text(vault.token + "\n")
    vault.put("legion/file-token", {"k": "via-token-file"})
    assert resolve("vault://secret/legion/file-token#k") == "via-token-file"
    assert vault.requests[-1]["headers"]["X-Vault-Token"] == vault.token


def test_tls_settings_follow_the_vault_cli(monkeypatch):
    monkeypatch.delenv("VAULT_CACERT", raising=False)
    monkeypatch.delenv("VAULT_SKIP_VERIFY", raising=False)
    assert tls_verify() is True
    monkeypatch.setenv("VAULT_CACERT", "/etc/vault/ca.pem")
    assert tls_verify() == "/etc/vault/ca.pem"
    monkeypatch.setenv("VAULT_SKIP_VERIFY", "true")
    assert tls_verify() is False
