"""env://, literals, fallback chains and the scheme registry (plugins add schemes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import legion_core.builtin.secrets as builtin_secrets
from legion_core.errors import SecretError
from legion_core.hookspecs import hookimpl
from legion_core.log import scrub
from legion_core.plugins.manager import PluginManager
from legion_core.secrets import describe_ref, is_reference, parse_ref, resolve, schemes_for


def test_env_set(monkeypatch):
    monkeypatch.setenv("LEGION_TEST_KEY", "value-from-env")
    assert resolve("env://LEGION_TEST_KEY") == "value-from-env"


def test_env_unset_or_empty_is_none(monkeypatch):
    monkeypatch.delenv("LEGION_TEST_KEY", raising=False)
    assert resolve("env://LEGION_TEST_KEY") is None
    monkeypatch.setenv("LEGION_TEST_KEY", "")
    assert resolve("env://LEGION_TEST_KEY") is None


def test_env_without_a_name_is_an_error():
    with pytest.raises(SecretError, match="needs a variable name"):
        resolve("env://")


def test_literals_and_none():
    assert resolve("sk-literal-value") == "sk-literal-value"
    assert resolve("") is None
    assert resolve(None) is None


def test_resolved_values_are_registered_for_redaction(monkeypatch):
    monkeypatch.setenv("LEGION_TEST_KEY", "redact-me-please-77")
    resolve("env://LEGION_TEST_KEY")
    assert scrub("token=redact-me-please-77") == "token=***"


def test_chain_first_non_empty_wins(monkeypatch):
    monkeypatch.delenv("LEGION_A", raising=False)
    monkeypatch.setenv("LEGION_B", "")
    monkeypatch.setenv("LEGION_C", "from-c")
    monkeypatch.setenv("LEGION_D", "from-d")
    assert resolve(["env://LEGION_A", "env://LEGION_B", "env://LEGION_C", "env://LEGION_D"]) == "from-c"
    assert resolve(["env://LEGION_A", "literal-fallback"]) == "literal-fallback"


def test_chain_with_nothing_set_is_none(monkeypatch):
    monkeypatch.delenv("LEGION_A", raising=False)
    assert resolve(["env://LEGION_A", ""]) is None
    assert resolve([]) is None


def test_unknown_scheme_is_an_error_naming_the_reference():
    with pytest.raises(SecretError) as info:
        resolve("gopass://team/openai")
    assert "unknown secret scheme 'gopass'" in str(info.value)
    assert "env, vault" in str(info.value)


def test_unknown_scheme_inside_a_chain_falls_through(monkeypatch, logs):
    monkeypatch.setenv("LEGION_B", "from-b")
    assert resolve(["gopass://team/openai", "env://LEGION_B"]) == "from-b"
    events = [json.loads(line) for line in logs().splitlines()]
    assert any(e.get("reference") == "gopass://team/openai" and e["level"] == "warning" for e in events)


def test_reference_helpers():
    assert parse_ref("vault://secret/a#k") == ("vault", "secret/a#k")
    assert parse_ref("sk-123") is None
    assert is_reference("env://X") and is_reference(["lit", "env://X"])
    assert not is_reference("https://example.com", schemes=["env", "vault"])
    assert describe_ref(["env://X", "sk-literal"]) == "env://X | <literal>"
    assert describe_ref("sk-literal") == "<literal>"


# ------------------------------------------------------------------ scheme registry
class FileSchemePlugin:
    @hookimpl
    def legion_secret_schemes(self, register):
        register("file", lambda path: Path(path).read_text().strip() or None)


def test_builtin_plugin_registers_env_and_vault():
    pm = PluginManager()
    pm.register(builtin_secrets, name="legion_core.builtin.secrets")
    found: dict = {}
    pm.hook.legion_secret_schemes(register=found.__setitem__)
    assert set(found) == {"env", "vault"}


def test_plugin_scheme_resolves(tmp_path, monkeypatch):
    secret_file = tmp_path / "key.txt"
    secret_file.write_text("from-a-file\n")
    pm = PluginManager()
    pm.register(builtin_secrets, name="legion_core.builtin.secrets")
    pm.register(FileSchemePlugin(), name="legion-secret-file")
    schemes = schemes_for(pm)
    assert {"env", "vault", "file"} <= set(schemes)
    assert resolve(f"file://{secret_file}", schemes) == "from-a-file"
    monkeypatch.delenv("LEGION_A", raising=False)
    assert resolve(["env://LEGION_A", f"file://{secret_file}"], schemes) == "from-a-file"
    # Without the plugin the scheme is unknown.
    with pytest.raises(SecretError, match="unknown secret scheme 'file'"):
        resolve(f"file://{secret_file}")


def test_a_raising_plugin_scheme_becomes_a_secret_error_without_details(tmp_path):
    pm = PluginManager()
    pm.register(FileSchemePlugin(), name="legion-secret-file")
    with pytest.raises(SecretError) as info:
        resolve(f"file://{tmp_path}/missing.txt", schemes_for(pm))
    assert "FileNotFoundError" in str(info.value)
    assert f"file://{tmp_path}/missing.txt" in str(info.value)


def test_builtins_are_present_even_without_the_builtin_plugin():
    assert {"env", "vault"} <= set(schemes_for(PluginManager()))


def test_misspelt_scheme_gets_a_hint():
    with pytest.raises(SecretError, match=r"did you mean env://\?"):
        resolve("evn://OPENAI_API_KEY")


def test_ordinary_urls_are_literals_with_their_password_masked():
    assert resolve("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    url = "rediss://:url-password-2718@cache.internal:6380/0"
    assert resolve(url) == url
    assert describe_ref(url) == "<literal>"  # warnings never print it
    assert scrub(f"connecting to {url}") == "connecting to ***"
    assert scrub("the password is url-password-2718") == "the password is ***"


def test_a_plugin_may_claim_a_url_scheme():
    class HttpsScheme:
        @hookimpl
        def legion_secret_schemes(self, register):
            register("https", lambda rest: "fetched:" + rest)

    pm = PluginManager()
    pm.register(HttpsScheme(), name="legion-secret-https")
    assert resolve("https://secrets.internal/openai", schemes_for(pm)) == "fetched:secrets.internal/openai"


def test_a_broken_scheme_plugin_does_not_take_the_others_down(monkeypatch):
    class Broken:
        @hookimpl
        def legion_secret_schemes(self, register):
            raise RuntimeError("boom")

    class BadName:
        @hookimpl
        def legion_secret_schemes(self, register):
            register("not a scheme!", lambda rest: rest)

    pm = PluginManager()
    pm.register(Broken(), name="legion-broken")
    pm.register(BadName(), name="legion-bad-name")
    pm.register(FileSchemePlugin(), name="legion-secret-file")
    assert set(schemes_for(pm)) == {"env", "vault", "file"}
